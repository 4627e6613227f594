"""docs/trace_window.py: the window thread's stretches read from a perf scheduler trace."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "trace_window.py"


@pytest.fixture(scope="module")
def trace_window():
    spec = importlib.util.spec_from_file_location("trace_window", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["trace_window"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["trace_window"]


def switch(comm: str, pid: int, tid: int, at: float, prev: int, state: str, nxt: int,
           prev_prio: int = 120) -> str:
    return (f"{comm} {pid}/{tid} {at:.6f}: sched:sched_switch: prev_comm=x prev_pid={prev} "
            f"prev_prio={prev_prio} prev_state={state} ==> next_comm=y next_pid={nxt} next_prio=120")


def wakeup(comm: str, pid: int, tid: int, at: float, woken: int) -> str:
    return f"{comm} {pid}/{tid} {at:.6f}: sched:sched_wakeup: comm=python pid={woken} prio=120 target_cpu=000"


# the window thread is 100 (pid 100); a background thread 101 runs ten nice steps down
TRACE = [
    switch("engine-worker", 100, 101, 0.995, 101, "S", 100, prev_prio=130),
    "python 100/100 1.000000: probe_libc:__lll_lock_wait: (7f00) futex=0x7f00aa",
    switch("python", 100, 100, 1.0001, 100, "S", 101),  # sleeps on the lock
    wakeup("engine-worker", 100, 101, 1.0051, 100),  # woken 5 ms later by 101
    switch("engine-worker", 100, 101, 1.0201, 101, "R", 100, prev_prio=130),  # a core 15 ms after
    switch("python", 100, 100, 1.0601, 100, "S", 0),  # 40 ms on the processor
    wakeup("swapper", 0, 0, 1.0621, 100),
    switch("swapper", 0, 0, 1.0622, 0, "R", 100),  # a 2 ms sleep: under the threshold
]


def test_the_stretches_of_the_window_thread(trace_window) -> None:
    report = trace_window.analyse(trace_window.read_events(TRACE), min_ms=10)
    assert report.thread == "100"
    off, on = sorted(report.stretches, key=lambda s: s.start)
    assert (off.how, off.lock) == ("S", "0x7f00aa")
    assert off.ms == pytest.approx(20.0, abs=0.01)
    assert off.woken_after_ms == pytest.approx(5.0, abs=0.01)
    assert off.waker == "engine-worker 101 prio 130"
    assert (on.how, on.ms) == ("on", pytest.approx(40.0, abs=0.01))
    assert list(report.lock_sleeps) == ["0x7f00aa"]
    assert report.lock_sleeps["0x7f00aa"] == [pytest.approx(5.0, abs=0.01)]


def test_a_lock_address_is_named_by_its_mapping(trace_window) -> None:
    maps = ["7f0000000000-7f0000001000 rw-p 00443000 fe:00 1 /usr/lib/libpython3.11.so.1.0\n",
            "7f0000001000-7f0000002000 rw-p 00000000 00:00 0\n"]
    assert trace_window.mapping_of("0x7f0000000800", maps) == "/usr/lib/libpython3.11.so.1.0"
    assert trace_window.mapping_of("0x7f0000001800", maps) == "anonymous"
    assert trace_window.mapping_of("0x10", maps) == "?"
