"""Child processes: a clean stop, and no orphan left when a child dies before its own child."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

from demo.children import Children, marked_processes
from tests.support import wait_for


def _children(tmp_path: Path) -> Children:
    return Children(f"test-{uuid.uuid4().hex[:8]}", tmp_path, tmp_path)


def _embedded_broker(children: Children) -> int:
    """Start ``fedge broker --embedded``: it runs amqtt in a session of its own. Returns the
    pid of that grandchild once the broker listens."""
    broker = children.start("broker", ["broker", "--embedded", "--port", "0", "--data-dir", "b"])
    assert wait_for(lambda: "listening on" in broker.log_path.read_text(), 30), broker.log_tail()
    [grandchild] = [pid for pid in marked_processes(children.run_id) if pid != broker.pid]
    assert os.getpgid(grandchild) != os.getpgid(broker.pid)  # out of reach of killpg
    return grandchild


def test_stop_lets_a_child_shut_down_its_own_children(tmp_path: Path) -> None:
    """SIGTERM reaches `fedge broker`, which stops its broker and exits 0: nothing is left."""
    children = _children(tmp_path)
    _embedded_broker(children)

    children.stop(["broker"], grace_s=15)
    swept = children.close()

    [broker] = children.children
    assert broker.returncode() == 0
    assert swept == []
    assert marked_processes(children.run_id) == []


def test_close_kills_the_orphan_of_a_child_that_died(tmp_path: Path) -> None:
    """A child SIGKILLed before it could stop its broker leaves an orphan in another session;
    close() finds it by the run's environment marker and kills it."""
    children = _children(tmp_path)
    orphan = _embedded_broker(children)
    [broker] = children.children
    os.kill(broker.pid, signal.SIGKILL)
    broker.proc.wait()
    alive_before = orphan in marked_processes(children.run_id)

    swept = children.close()

    assert alive_before
    assert orphan in swept
    assert marked_processes(children.run_id) == []
