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
