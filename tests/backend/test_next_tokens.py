"""A long run shown early: the last position's next-token row first, the others computed
step by step, and the complete result equal to the one-pass run."""

import numpy as np
import pytest

from explorer.backend.engine import analyze, analyze_first
from explorer.backend.next_tokens import NextTokenArrays, next_token_arrays
from explorer.core.errors import ResultIncompleteError
from explorer.core.export import write_probabilities_csv
from explorer.core.result_io import full_dict, save_npz
from tests.support.tiny_models import loaded

PROMPT = "The cat sat on the mat. The dog sat on the log. Attention is all you need."


@pytest.mark.parametrize("kind", ["llama", "gemma3"])
@pytest.mark.parametrize("mode", ["lazy", "none"])
def test_the_first_result_has_the_last_row_and_the_steps_complete_it(kind, mode):
    lm = loaded(kind)
    whole = analyze(lm, PROMPT, top_k=7, attention=mode)
    first, rest = analyze_first(lm, PROMPT, top_k=7, attention=mode)
    assert first.next_tokens_pending and rest is not None and not rest.done
    n = first.num_tokens
    # the last position is there at once, as in the complete run
    np.testing.assert_array_equal(first.topk_ids[-1], whole.topk_ids[-1])
    np.testing.assert_allclose(first.topk_probs[-1], whole.topk_probs[-1], atol=1e-6)
    np.testing.assert_allclose(first.last_probs, whole.last_probs, atol=1e-6)
    assert first.topk_tokens[-1] == whole.topk_tokens[-1]
    # the others are marked as not computed
    assert np.all(first.topk_ids[:-1] == -1) and np.all(np.isnan(first.topk_probs[:-1]))
    assert np.all(np.isnan(first.actual_next_probs)) and np.all(first.actual_next_ranks == -1)
    assert all(row == () for row in first.topk_tokens[:-1])
    rest.chunk = 5  # several steps
    steps = 1
    while not rest.step():
        steps += 1
    assert steps == -(-(n - 1) // 5)
    done = rest.result()
    assert not done.next_tokens_pending and done.timings["next_tokens_s"] > 0
    np.testing.assert_array_equal(done.topk_ids, whole.topk_ids)
    np.testing.assert_allclose(done.topk_probs, whole.topk_probs, atol=1e-6)
    np.testing.assert_allclose(done.topk_logits, whole.topk_logits, atol=1e-5)
    np.testing.assert_allclose(done.actual_next_probs, whole.actual_next_probs, atol=1e-6)
    np.testing.assert_array_equal(done.actual_next_ranks, whole.actual_next_ranks)
    assert done.topk_tokens == whole.topk_tokens
    # attention is the very same data in both results
    if mode == "lazy":
        assert done.queries is first.queries and done.keys is first.keys
    # the first result was not changed by the steps
    assert np.all(first.topk_ids[:-1] == -1)


def test_a_full_run_is_complete_at_once():
    first, rest = analyze_first(loaded("llama"), PROMPT, attention="full")
    assert rest is None and not first.next_tokens_pending
    assert np.all(first.topk_ids >= 0)


def test_arrays_filled_in_any_chunks_equal_one_pass():
    import torch

    torch.manual_seed(0)
    logits = torch.randn(23, 50) * 3
    ids = torch.randint(0, 50, (23,)).tolist()
    (ids1, probs1, logits1), last1, p1, r1 = next_token_arrays(logits, ids, 5)
    arrays = NextTokenArrays(lambda s, e: logits[s:e], ids, 5)
    assert arrays.filled == 0 and arrays.top_ids[-1, 0] == int(logits[-1].argmax())
    while not arrays.fill_next(4):
        pass
    (ids2, probs2, logits2), last2, p2, r2 = arrays.arrays
    np.testing.assert_array_equal(ids1, ids2)
    np.testing.assert_allclose(probs1, probs2, atol=1e-7)
    np.testing.assert_array_equal(r1, r2)
    # ranks against a direct count
    expected = [(logits[i] > logits[i, ids[i + 1]]).sum().item() + 1 for i in range(22)]
    assert r2[:-1].tolist() == expected and r2[-1] == -1 and np.isnan(p2[-1])


def test_a_pending_result_is_not_exported(tmp_path):
    first, _rest = analyze_first(loaded("llama"), PROMPT, attention="lazy")
    with pytest.raises(ResultIncompleteError, match="still being computed"):
        save_npz(first, tmp_path / "run.npz")
    with pytest.raises(ResultIncompleteError):
        full_dict(first)
    with pytest.raises(ResultIncompleteError, match="after token #0"):
        write_probabilities_csv(first, 0, tmp_path / "p.csv")
    write_probabilities_csv(first, first.num_tokens - 1, tmp_path / "last.csv")  # ready
    assert not (tmp_path / "run.npz").exists()


def test_one_token_and_one_big_chunk():
    import torch

    logits = torch.randn(1, 30)
    arrays = NextTokenArrays(logits, [4], 3)
    assert arrays.done and arrays.fill_next(10)  # nothing left: the last row is all
    (ids, probs, _), last, p, r = arrays.arrays
    assert ids[0, 0] == int(logits[0].argmax()) and np.isnan(p[0]) and r[0] == -1
    logits = torch.randn(9, 30)
    arrays = NextTokenArrays(logits, list(range(9)), 3)
    assert arrays.fill_next(100) and arrays.filled == 8  # one chunk past the end
    np.testing.assert_array_equal(arrays.top_ids, next_token_arrays(logits, list(range(9)), 3)[0][0])


def test_out_of_memory_while_filling_rows_is_reported_with_advice():
    from explorer.core.errors import DeviceMemoryError

    first, rest = analyze_first(loaded("llama"), PROMPT, attention="lazy")

    def no_room(start, end):
        raise RuntimeError("CPU out of memory: tried to allocate 9 GB")

    rest.arrays._rows = no_room
    with pytest.raises(DeviceMemoryError, match="Out of memory on the CPU while computing the "
                                                "next-token probabilities.*shorter prompt"):
        rest.step()


def test_a_step_takes_a_share_of_logits_and_never_fewer_than_32_positions(monkeypatch):
    """Every step reads the whole output head: a large vocabulary still gets 32 positions
    a step (Gemma 3's 262,144 tokens: 16 a step cost a third more time)."""
    from explorer.backend import engine

    lm = loaded("llama")
    vocab = lm.info.vocab_size
    monkeypatch.setattr(engine, "STEP_LOGITS", 100 * vocab)
    assert analyze_first(lm, PROMPT, attention="lazy")[1].chunk == 100
    monkeypatch.setattr(engine, "STEP_LOGITS", 4 * vocab)  # as 4 M logits for 1 M tokens
    assert analyze_first(lm, PROMPT, attention="lazy")[1].chunk == 32


@pytest.mark.parametrize("kind", ["llama", "gemma3"])
def test_the_output_head_projects_each_position_once(kind):
    """The head's row for the last position, computed to check the head against the
    model's own logits, is the row the run shows: it is not projected a second time."""
    lm = loaded(kind)
    head = lm.model.get_output_embeddings()
    seen: list[int] = []

    def count(_module, args, _output):
        (states,) = args
        if states.dim() == 2:  # our rows [n, hidden]; the model's own call is 3-d
            seen.append(states.shape[0])

    handle = head.register_forward_hook(count)
    try:
        first, rest = analyze_first(lm, PROMPT, top_k=5, attention="lazy")
        n = first.num_tokens
        assert seen == [1]  # the check's row, served as the last position's
        rest.chunk = n  # the other n - 1 rows in one step
        rest.step()
    finally:
        handle.remove()
    assert seen == [1, n - 1]
    whole = analyze(lm, PROMPT, top_k=5, attention="full")
    done = rest.result()
    np.testing.assert_array_equal(done.topk_ids, whole.topk_ids)
    np.testing.assert_allclose(done.topk_probs, whole.topk_probs, atol=1e-5)
