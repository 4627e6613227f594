import pytest

from explorer.core.errors import Cancelled
from explorer.core.progress import TaskState


def test_sub_task_maps_progress_range_and_cancel_raises():
    seen = []
    flag = {"cancel": False}
    task = TaskState(report=lambda f, m: seen.append((f, m)), is_cancel_requested=lambda: flag["cancel"])
    sub = task.sub(0.5, 1.0)
    sub.progress(0.5, "half")
    assert seen == [(0.75, "half")]
    flag["cancel"] = True
    with pytest.raises(Cancelled):
        sub.progress(0.9, "late")
    assert len(seen) == 1


def test_throttled_passes_the_first_report_completion_and_one_per_interval():
    from explorer.core.progress import throttled

    seen = []
    moments = iter([0.0, 0.01, 0.05, 0.12, 0.15, 0.16, 0.3])
    report = throttled(lambda f, m: seen.append(f), interval=0.1, clock=lambda: next(moments))
    for fraction in (0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 0.9):
        report(fraction, "")
    assert seen == [0.1, 0.4, 1.0, 0.9]  # 0.2/0.3 and 0.5 fall inside an interval
    seen.clear()
    moments = iter([0.0, 0.01, 0.02, 0.03])
    report = throttled(lambda f, m: seen.append(m), interval=0.1, clock=lambda: next(moments))
    for fraction, message in ((0.1, "layer 1"), (0.2, "layer 1"), (0.3, "layer 2"), (0.4, "layer 2")):
        report(fraction, message)
    assert seen == ["layer 1", "layer 2"]  # a new stage is always passed on
