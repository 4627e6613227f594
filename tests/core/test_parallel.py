"""parallel_map: same results as a loop, BLAS held to one thread only while it runs."""

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from explorer.core import parallel
from explorer.core.parallel import parallel_map


def blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_results_in_order_and_equal_to_a_loop():
    rng = np.random.default_rng(0)
    mats = [rng.standard_normal((64, 32)) for _ in range(9)]
    work = lambda m: (m @ m.T).sum(axis=1)  # noqa: E731
    got_all = parallel_map(work, mats, workers=3)
    assert len(got_all) == len(mats)
    for got, want in zip(got_all, [work(m) for m in mats], strict=True):
        np.testing.assert_allclose(got, want)


def test_exceptions_reach_the_caller_and_the_limit_is_lifted():
    before = blas_threads()

    def work(i):
        if i == 3:
            raise ValueError("bad item")
        return i

    with pytest.raises(ValueError, match="bad item"):
        parallel_map(work, range(6), workers=2)
    assert blas_threads() == before
    assert parallel._active == 0


def test_blas_is_one_thread_inside_until_the_last_concurrent_call_ends():
    if not blas_threads():
        pytest.skip("numpy has no BLAS that threadpoolctl can see")
    before = blas_threads()
    inside_first, release_first = threading.Event(), threading.Event()
    seen: dict[str, list[int]] = {}

    def slow(i):  # the first call stays inside until told to leave
        inside_first.set()
        release_first.wait(10)
        seen.setdefault("first", blas_threads())
        return i

    first = threading.Thread(target=parallel_map, args=(slow, range(2)), kwargs={"workers": 2})
    first.start()
    assert inside_first.wait(10)
    parallel_map(lambda i: seen.setdefault("second", blas_threads()), range(2), workers=2)
    release_first.set()  # the second call has ended: the first still works with one thread
    first.join(10)
    assert seen["first"] == seen["second"] == [1] * len(before), (seen, before)
    assert blas_threads() == before
