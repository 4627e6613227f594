"""Where the window's thread spends a long run when it is not answering: a reader of
``perf`` scheduler traces (Linux, root or ``perf_event_paranoid`` <= 1).

    # optional: contended glibc locks, with the lock's address
    perf probe -x /lib/x86_64-linux-gnu/libc.so.6 --add '__lll_lock_wait futex'
    perf record -a -e sched:sched_switch,sched:sched_wakeup [-e probe_libc:__lll_lock_wait] \\
        -o run.perf -- .venv/bin/python docs/benchmark_long.py --child gui --tokens 8192
    perf script -i run.perf -F comm,pid,tid,time,event,trace > run.txt
    .venv/bin/python docs/trace_window.py run.txt [--min-ms 15] [--maps maps.txt]

The window's thread is the main thread of the traced Python process. The report lists
its stretches of at least ``--min-ms``:

- off the processor: how it left (S: asleep, D: waiting for the disk or a kernel lock, R:
  preempted), how long until something woke it and who (command, thread, priority: 120 is
  nice 0, 130 nice 10), how long it then waited for a core, and whether it went to sleep
  on a contended glibc lock (its address);
- on the processor without a break (painting, Python, or a burst of events);
- the contended locks it slept on, per address: how often, and the longest and total time
  until the holder woke it. ``--maps`` (a copy of ``/proc/<pid>/maps`` taken during the
  run) names the mapping an address lies in (in the traces of docs/long-prompts.md, the
  address in libpython's data was, by its place there, the interpreter lock's mutex).

A waker seen in a timer interrupt is whatever thread that interrupt fell on: a poll or
timed wait that ran out shows a random waker.
"""

from __future__ import annotations

import argparse
import collections
import re
from dataclasses import dataclass, field

LINE = re.compile(r"\s*(.+?)\s+(\d+)/(-?\d+)\s+([\d.]+):\s+(\S+):\s*(.*)")
LOCK_SLEEP_S = 0.0005
"""A switch this soon after entering ``__lll_lock_wait`` is that lock's sleep."""


@dataclass
class Event:
    comm: str
    pid: str
    tid: str
    time: float
    name: str
    trace: str


@dataclass
class Stretch:
    start: float
    ms: float
    how: str  # S, D, R (off the processor) or "on"
    woken_after_ms: float | None = None
    waker: str = ""
    lock: str = ""


@dataclass
class Report:
    thread: str
    first: float
    stretches: list[Stretch] = field(default_factory=list)
    lock_sleeps: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))


def read_events(lines: list[str]) -> list[Event]:
    events = []
    for line in lines:
        match = LINE.match(line)
        if match:
            comm, pid, tid, time, name, trace = match.groups()
            events.append(Event(comm, pid, tid, float(time), name, trace))
    return events


def window_thread(events: list[Event]) -> str:
    """The main thread of the Python process with the most events."""
    counts = collections.Counter(e.pid for e in events if e.pid == e.tid and e.comm == "python")
    if not counts:
        raise SystemExit("no Python main thread in this trace")
    return counts.most_common(1)[0][0]


def _field(trace: str, name: str) -> str:
    match = re.search(rf"\b{name}=(\S+)", trace)
    return match.group(1) if match else ""


def analyse(events: list[Event], min_ms: float) -> Report:
    thread = window_thread(events)
    report = Report(thread, events[0].time if events else 0.0)
    priority: dict[str, str] = {}
    off: Stretch | None = None
    on_since: float | None = None
    lock: tuple[float, str] | None = None
    for event in events:
        if event.name == "sched:sched_switch":
            leaving = _field(event.trace, "prev_pid")
            priority[leaving] = _field(event.trace, "prev_prio")
            if leaving == thread:
                ran_ms = None if on_since is None else (event.time - on_since) * 1000
                if ran_ms is not None and ran_ms >= min_ms:
                    report.stretches.append(Stretch(on_since, ran_ms, "on"))
                state = _field(event.trace, "prev_state")[:1] or "?"
                held = lock[1] if lock and event.time - lock[0] < LOCK_SLEEP_S else ""
                off, on_since, lock = Stretch(event.time, 0.0, state, lock=held), None, None
            elif _field(event.trace, "next_pid") == thread:
                if off is not None:
                    off.ms = (event.time - off.start) * 1000
                    if off.ms >= min_ms:
                        report.stretches.append(off)
                    if off.lock and off.woken_after_ms is not None:
                        report.lock_sleeps[off.lock].append(off.woken_after_ms)
                off, on_since = None, event.time
        elif event.name == "sched:sched_wakeup" and _field(event.trace, "pid") == thread:
            if off is not None and off.woken_after_ms is None:
                off.woken_after_ms = (event.time - off.start) * 1000
                off.waker = f"{event.comm} {event.tid} prio {priority.get(event.tid, '?')}"
        elif event.name.endswith("__lll_lock_wait") and event.tid == thread:
            lock = (event.time, _field(event.trace, "futex"))
    return report


def mapping_of(address: str, maps: list[str]) -> str:
    value = int(address, 16)
    for line in maps:
        parts = line.split()
        low, high = (int(x, 16) for x in parts[0].split("-"))
        if low <= value < high:
            return " ".join(parts[5:]) or "anonymous"
    return "?"


def print_report(report: Report, maps: list[str], top: int) -> None:
    print(f"window thread {report.thread}")
    for s in sorted(report.stretches, key=lambda s: -s.ms)[:top]:
        at = f"{s.ms:6.1f} ms at {s.start - report.first:8.3f} s"
        if s.how == "on":
            print(f"{at}  on the processor")
            continue
        woken = "" if s.woken_after_ms is None else \
            f", woken after {s.woken_after_ms:.1f} ms by {s.waker}, " \
            f"then {s.ms - s.woken_after_ms:.1f} ms waiting for a core"
        lock = f", on lock {s.lock}" if s.lock else ""
        print(f"{at}  off ({s.how}){lock}{woken}")
    for address, sleeps in sorted(report.lock_sleeps.items(), key=lambda kv: -sum(kv[1])):
        where = f" ({mapping_of(address, maps)})" if maps else ""
        print(f"lock {address}{where}: {len(sleeps)} sleeps, longest {max(sleeps):.1f} ms "
              f"until woken, {sum(sleeps) / 1000:.3f} s in all")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("script", help="perf script -F comm,pid,tid,time,event,trace output")
    parser.add_argument("--min-ms", type=float, default=15.0)
    parser.add_argument("--maps", help="a copy of /proc/<pid>/maps taken during the run")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    with open(args.script, errors="replace") as handle:
        events = read_events(handle.readlines())
    maps: list[str] = []
    if args.maps:
        with open(args.maps) as handle:
            maps = handle.readlines()
    print_report(analyse(events, args.min_ms), maps, args.top)


if __name__ == "__main__":
    main()
