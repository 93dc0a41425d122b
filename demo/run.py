"""One demo run: start the platform's processes in order, watch them, stop them all.

The order matters. The broker comes first (its log says where it listens). The observer
subscribes next, so it sees every message from the first one. The aggregator follows and the
run waits for its version 0: only then does the aggregator's persistent session exist at the
broker, so no node update can be published before anyone will keep it. Then the edge nodes,
and the simulator once every node is online, so calibration starts together everywhere.

The simulator then plays the warm-up (``demo.plan``), again and again until the rounds have
closed, and then the scenario. The run ends by itself once the scenario's data is through and
every trigger firing has its fine-tune outcome, after a short tail for the last events. Whatever
ends it (that, Ctrl-C, SIGTERM, a child that dies, a timeout, a bug), ``shutdown`` stops the
simulator, then the nodes and the aggregator, then the broker, and kills anything left,
grandchildren included (``demo.children``).
"""

from __future__ import annotations

import re
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Final

from demo import plan
from demo.children import Child, Children
from demo.observer import Observer, monotonic_clock
from demo.plan import DemoSettings, RunFiles
from demo.status import StatusLine, status_text
from demo.tally import Tally
from fedge.endpoint import BrokerUrl
from fedge.errors import FedgeError
from fedge.mqtt import Protocol
from fedge.topics import TopicRoot

_BROKER_LINE: Final = re.compile(
    r"fedge broker: (\w+) \(MQTT ([\d.]+), pid \d+\) listening on (\S+)"
)
BROKER_START_S: Final = 20.0
AGGREGATOR_START_S: Final = 90.0  # imports torch and exports the bootstrap model's ONNX graph
NODES_START_S: Final = 60.0
FINETUNE_WAIT_S: Final = 60.0  # after the data ends, for a fine-tune that is still training
TAIL_S: Final = 2.0
STOP_GRACE_S: Final = 15.0  # a node finishing a training job needs a few seconds
TICK_S: Final = 0.1


class DemoFailedError(FedgeError):
    """The run could not complete: a child died, or the rounds did not close in time."""


class DemoRun:
    """Runs the platform once, as configured, and leaves a filled ``Tally`` behind."""

    def __init__(
        self,
        settings: DemoSettings,
        files: RunFiles,
        status: StatusLine,
        *,
        embedded_broker: bool = False,
        topic_prefix: str | None = None,
        protocol: Protocol | None = None,
        log_level: str = "info",
    ) -> None:
        self.settings = settings
        self.files = files
        self.status = status
        self.embedded_broker = embedded_broker
        self.topics = TopicRoot(topic_prefix) if topic_prefix else TopicRoot()
        self.topic_prefix = topic_prefix
        self.log_level = log_level
        self.protocol = protocol  # None: the broker's best (MQTT 5 on Mosquitto)
        self.run_id = f"{uuid.uuid4().hex[:12]}:{files.root}"
        self.children = Children(self.run_id, files.root, files.logs)
        self.tally = Tally(settings.node_ids, plan.WINDOW / plan.RATE_HZ)
        self.clock: Callable[[], float] = monotonic_clock()
        self.broker_kind = ""
        self.elapsed_s = 0.0
        self.leftovers: list[int] = []
        self.observer: Observer | None = None
        self._common: list[str] = []
        self._sim_runs = 0
        self._next_sample = 0.0
        self.sim_started: float | None = None  # demo time the first simulator run began
        self._data_start = float(int(time.time()))  # data time of the next simulator run
        self.scenario_started: float | None = None  # demo time the scenario began
        self._readings_before_scenario = 0

    # -- the run ---------------------------------------------------------------------------------

    def execute(self) -> None:
        """Run to the end; always shut everything down before returning or raising."""
        self.clock = monotonic_clock()
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._prepare()
            self._start_platform()
            self._watch()
        except KeyboardInterrupt:
            self.status.say(
                "interrupted: stopping the simulator, the nodes, the aggregator and the broker "
                "(Ctrl-C again to skip the grace period)"
            )
            raise
        finally:
            for sig in previous:  # while stopping, another Ctrl-C only means "no more grace"
                signal.signal(sig, self._hurry)
            try:
                self.shutdown()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
                self.elapsed_s = self.clock()

    def _prepare(self) -> None:
        files = self.files
        files.logs.mkdir(parents=True, exist_ok=True)
        files.aggregator_config.write_text(plan.AGGREGATOR_TABLE, encoding="utf-8")
        files.edge_config.write_text(plan.EDGE_TABLE, encoding="utf-8")

    def _start_platform(self) -> None:
        settings, files = self.settings, self.files
        broker = self.children.start("broker", plan.broker_command(self.embedded_broker))
        url, protocol = self._broker_address(broker)
        self.status.say(f"broker      {self.broker_kind} (MQTT {protocol}) on {url}")
        self._common = plan.mqtt_flags(str(url), protocol, self.topic_prefix, self.log_level)
        self.observer = Observer(url, protocol, self.topics, self.tally, self.clock)
        self.observer.start()
        self.children.start(
            "aggregator", [*plan.aggregator_command(settings, files), *self._common]
        )
        self._wait("the aggregator's version 0", lambda: 0 in self.tally.versions,
                   AGGREGATOR_START_S)  # fmt: skip
        self.status.say(
            f"aggregator  version 0 published; {settings.rounds} round(s) of "
            f"{settings.nodes} node(s) to run"
        )
        for node in settings.node_ids:
            self.children.start(node, [*plan.edge_command(node, files), *self._common])
        self._wait(f"{settings.nodes} edge node(s) online", self._all_online, NODES_START_S)
        self.status.say(f"edge nodes  {', '.join(settings.node_ids)} online")

    def _watch(self) -> None:
        """Warm up until the rounds have closed, then play the scenario; show progress all
        along; fail on a child that dies or on the timeout."""
        settings = self.settings
        sim = self._start_sim(scenario_run=False)
        self.status.say(
            f"simulator   {settings.nodes * settings.devices} pumps at {settings.warmup_speed:g}x: "
            f"{plan.WARMUP_S / 60:.1f} min of normal data to calibrate on, replayed until "
            f"{settings.rounds} round(s) have trained the model"
        )
        data_done_at: float | None = None
        while True:
            now = self.clock()
            self._sample()
            if self.status.due():
                self.status.show(self._status_text(now))
            self._check_children()
            rounds_done = self.tally.rounds_closed() >= settings.rounds
            if self.scenario_started is None and rounds_done:
                self.children.stop([sim.name], STOP_GRACE_S)
                sim = self._start_sim(scenario_run=True)
                self.status.say(self._scenario_line())
            elif sim.returncode() == 0 and self.scenario_started is None:
                sim = self._start_sim(scenario_run=False)  # the rounds need more time
            elif sim.returncode() == 0 and data_done_at is None:
                data_done_at = now
            if data_done_at is not None and (
                self.tally.pending_finetunes() == 0 or now - data_done_at > FINETUNE_WAIT_S
            ):
                break
            if now > settings.timeout_s and not rounds_done:
                raise DemoFailedError(self._timeout_message(now))
            if self._overdue(now):
                raise DemoFailedError(
                    f"the scenario did not finish in {now:.0f} s (the machine may be "
                    f"overloaded); the logs are in {self.files.logs}"
                )
            time.sleep(TICK_S)
        time.sleep(TAIL_S)  # the last events (episodes closing, an async version) arrive
        self.tally.sample(self.clock())
        self.status.show(self._status_text(self.clock()))
        self.status.end()

    def _start_sim(self, *, scenario_run: bool) -> Child:
        """The next simulator run, starting where the previous one's data ended."""
        settings = self.settings
        self._sim_runs += 1
        start = self._data_start
        self._data_start += (plan.SCENARIO_S if scenario_run else plan.WARMUP_S) + 1.0
        if self.sim_started is None:
            self.sim_started = self.clock()
        if scenario_run:
            self.scenario_started = self.clock()
            self._readings_before_scenario = self.tally.snapshot().readings
        command = plan.sim_command(settings, self.files, start=start, scenario_run=scenario_run)
        name = "sim-scenario" if scenario_run else f"sim-warmup-{self._sim_runs}"
        return self.children.start(name, [*command, *self._common])

    def _overdue(self, now: float) -> bool:
        """The scenario has taken four times its planned wall time, plus the fine-tune wait."""
        if self.scenario_started is None:
            return False
        budget = 4 * self.settings.scenario_wall_s + FINETUNE_WAIT_S + 30.0
        return now - self.scenario_started > budget

    def _scenario_line(self) -> str:
        settings = self.settings
        injected = plan.scenario(settings)
        return (
            f"scenario    {plan.SCENARIO_S / 60:.0f} min of data at {settings.speed:g}x (about "
            f"{settings.scenario_wall_s:.0f} s): {len(injected) - 1} anomalies and "
            f"a +30 % pressure drift on {'/'.join(settings.drift_device)}"
        )

    def shutdown(self) -> None:
        """Stop the simulator, then nodes and aggregator, then the broker; kill what is left."""
        self.status.end()
        children = self.children
        try:
            children.stop([c.name for c in children.children if c.name.startswith("sim")],
                          STOP_GRACE_S)  # fmt: skip
            children.stop([*self.settings.node_ids, "aggregator"], STOP_GRACE_S)
            if self.observer is not None:
                self.observer.close()  # after the nodes' offline statuses, before the broker
            children.stop(["broker"], STOP_GRACE_S)
        finally:
            self.leftovers = children.close()

    # -- helpers ---------------------------------------------------------------------------------

    def _hurry(self, signum: int, frame: FrameType | None) -> None:
        self.children.hurry = True
        self.status.say("stopping now: killing what is still running")

    def _broker_address(self, broker: Child) -> tuple[BrokerUrl, Protocol]:
        """Where ``fedge broker`` listens, from the one line it prints once it accepts."""
        deadline = time.monotonic() + BROKER_START_S
        while time.monotonic() < deadline:
            match = _BROKER_LINE.search(_read(broker.log_path))
            if match:
                self.broker_kind = match[1]
                protocol: Protocol = "5" if match[2] == "5" else "3.1.1"
                if self.protocol is not None:
                    protocol = self.protocol
                return BrokerUrl.parse(match[3]), protocol
            if broker.returncode() is not None:
                break
            time.sleep(TICK_S)
        raise DemoFailedError(self._child_failure(broker, "did not start"))

    def _wait(self, what: str, done: Callable[[], bool], timeout: float) -> None:
        deadline = self.clock() + timeout
        while not done():
            self._check_children()
            self._sample()
            if self.clock() > deadline:
                raise DemoFailedError(
                    f"no {what} after {timeout:g} s; the logs are in {self.files.logs}"
                )
            time.sleep(TICK_S)

    def _sample(self) -> None:
        """Record cumulative traffic once a second, for the report's plot."""
        now = self.clock()
        if now >= self._next_sample:
            self.tally.sample(now)
            self._next_sample = now + 1.0

    def _all_online(self) -> bool:
        online = self.tally.snapshot().nodes_online
        return online >= self.settings.nodes

    def _check_children(self) -> None:
        """Raise if a child ended that should still run (a simulator may finish its data)."""
        for child in self.children.children:
            code = child.returncode()
            if code is None:
                continue
            if child.stopped or (child.name.startswith("sim") and code == 0):
                continue
            raise DemoFailedError(self._child_failure(child, f"exited with code {code}"))

    def _child_failure(self, child: Child, what: str) -> str:
        return (
            f"{child.name} {what}; its log is {child.log_path}, which ends with:\n"
            f"{child.log_tail()}"
        )

    def _timeout_message(self, now: float) -> str:
        closed = self.tally.rounds_closed()
        return (
            f"only {closed} of {self.settings.rounds} round(s) closed in {now:.0f} s "
            f"(--timeout {self.settings.timeout_s:g}); the logs are in {self.files.logs}"
        )

    def _status_text(self, now: float) -> str:
        snap = self.tally.snapshot()
        return status_text(now, snap, self.settings.rounds, self.settings.nodes, self._phase(now))

    def _phase(self, now: float) -> str:
        """What the run is doing: calibrating, training, or how far the scenario has come."""
        if self.scenario_started is not None:
            settings = self.settings
            planned = plan.SCENARIO_S * plan.RATE_HZ * settings.nodes * settings.devices
            seen = self.tally.snapshot().readings - self._readings_before_scenario
            return f"scenario {100 * min(1.0, seen / planned):3.0f} %"
        if not self.tally.rounds:
            return "calibrating"
        return "training"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
