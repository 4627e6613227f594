"""Long prompts: lazy attention against the eager forward and a bare sdpa forward.

    .venv/bin/python docs/benchmark_long.py [--tokens 256,1024,2048,4096,8192] [--repeats 1]
                                            [--model smollm2|gemma3]

Every measurement runs in its own process (a clean peak RSS), one after another:

- ``eager``: the model's eager forward with ``output_attentions=True`` (transformers keeps
  every float32 map): skipped when its maps alone would not fit in memory;
- ``sdpa``: a plain sdpa forward keeping only the last position's logits;
- ``analyze``: ``engine.analyze(..., attention="auto")`` (lazy from 1,024 tokens);
- ``gui``: the real window (offscreen) with its worker thread: the time from Run until the
  tokens (the strip scrolled to the selected last token), the last token's bars and the
  selected head's map are drawn ("first panels"), until every panel has taken the run
  and been painted ("all panels": the thumbnails' frame and the positional plots too),
  until the bars after every token are ready (a long run computes them after its
  panels), until every thumbnail is drawn, how long a selection change takes to redraw
  (another token, once the window has handled the last thumbnails: until every panel is
  painted, one per event-loop turn; another head: until its map is drawn), the longest
  time the GUI thread was blocked (a 5 ms heartbeat timer; the JSON line says during
  which of those steps, and how much CPU time the hypervisor of a virtual machine took
  from all its cores in it, ``/proc/stat``'s steal),
  the process's peak RSS, and how long the model took to load, with the longest block
  while it loaded (not counted in the worst block above).

Prints one table (markdown) of seconds and GB. With ``--repeats N`` (N > 1) it runs, for
each length, the eager forward (where it fits), the sdpa forward and the window N times,
interleaved, and prints instead how the numbers the targets name spread over the N runs
(median, min-max): first panels against each run's own eager and sdpa forward, the
window's peak RSS, its worst block and its redraws. This machine's speed varies by 10-30%
within minutes, so one run puts a ratio anywhere in that range.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "resources" / "sentiment" / "reviews.csv"


def prompt_of(tokenizer, tokens: int) -> str:
    """A prompt of about ``tokens`` tokens of the model from the shipped reviews, repeated."""
    text = SOURCE.read_text(encoding="utf-8")
    ids: list[int] = []
    while len(ids) < tokens + 8:
        ids += tokenizer(text)["input_ids"]
    return tokenizer.decode(ids[:tokens])


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


@functools.cache
def _proc_stat() -> tuple[int, float]:
    """/proc/stat opened once (the heartbeat reads it 200 times a second) and the ms per tick."""
    return os.open("/proc/stat", os.O_RDONLY), 1000 / os.sysconf("SC_CLK_TCK")


def stolen_ms() -> float | None:
    """The machine's CPU time its hypervisor has given to others so far ("steal" in
    /proc/stat, all cores, in ms); None where that is not counted."""
    try:
        descriptor, ms_per_tick = _proc_stat()
        fields = os.pread(descriptor, 512, 0).split(b"\n", 1)[0].split()
        return int(fields[8]) * ms_per_tick
    except (OSError, IndexError, ValueError):
        return None


def measure_engine(kind: str, tokens: int, model: str) -> dict:
    import torch

    from explorer.backend.engine import analyze
    from explorer.backend.loader import load_model

    loaded = load_model(model)
    prompt = prompt_of(loaded.tokenizer, tokens)
    ids = torch.tensor([loaded.tokenizer(prompt)["input_ids"]])
    rss_loaded = peak_rss_gb()
    started = time.perf_counter()
    if kind == "eager":
        with torch.inference_mode():
            loaded.model(input_ids=ids, output_attentions=True, use_cache=False)
    elif kind == "sdpa":
        loaded.model.set_attn_implementation("sdpa")
        with torch.inference_mode():
            loaded.model(input_ids=ids, use_cache=False, logits_to_keep=1)
    else:
        result = analyze(loaded, prompt)
        assert result.num_tokens == ids.shape[1]
    seconds = time.perf_counter() - started
    cell = {"tokens": int(ids.shape[1]), "seconds": seconds, "peak_rss_gb": peak_rss_gb(),
            "loaded_rss_gb": rss_loaded}
    if kind == "analyze":  # (the JSON line only) its forward, without the next-token rows
        cell["forward_s"] = result.timings["forward_s"]
    return cell


def measure_gui(tokens: int, model: str) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QSettings, QTimer

    from explorer.gui.app import application
    from explorer.gui.main_window import MainWindow

    app = application()
    scratch = tempfile.mkdtemp()
    window = MainWindow(settings=QSettings(os.path.join(scratch, "s.ini"), QSettings.IniFormat))
    window.resize(1500, 1000)
    window.show()
    controller = window.controller
    state: dict = {"worst_block": 0.0, "last": None, "phase": "load", "beat_phase": "load",
                    "worst_phase": "", "stolen": None, "worst_stolen": None,
                    "worst_load_block": 0.0}
    clock = QElapsedTimer()
    clock.start()

    def beat() -> None:
        now, stolen = clock.elapsed(), stolen_ms()
        block = None if state["last"] is None else (now - state["last"] - 5) / 1000
        if block is not None and state["phase"] == "load":
            state["worst_load_block"] = max(state["worst_load_block"], block)
        if block is not None and state.get("watch") and block > state["worst_block"]:
            # (a block can end the step it fell in)
            during = state["phase"] if state["beat_phase"] == state["phase"] else \
                f"{state['beat_phase']} -> {state['phase']}"
            state["worst_block"], state["worst_phase"] = block, during
            state["worst_at"] = (now - state["run_at"]) / 1000  # its end, from Run
            state["worst_stolen"] = None if stolen is None or state["stolen"] is None \
                else stolen - state["stolen"]
        state["last"], state["beat_phase"], state["stolen"] = now, state["phase"], stolen
        if state.get("watch") and state.get("arrived") is None and controller.view is not None:
            state["arrived"] = (now - state["run_at"]) / 1000  # the run reached the window

    heartbeat = QTimer()
    heartbeat.setInterval(5)
    heartbeat.timeout.connect(beat)
    heartbeat.start()

    def wait(condition, timeout: float = 1800.0) -> float:
        """Run the event loop until ``condition``; it sleeps between events (the heartbeat
        wakes it every 5 ms), as the app's idle GUI thread does, instead of polling, which
        took CPU from the worker on two cores."""
        started = time.perf_counter()
        while not condition():
            app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)
            if time.perf_counter() - started > timeout:
                raise TimeoutError
        return time.perf_counter() - started

    def next_beat() -> None:
        """Run the event loop until the heartbeat fires again (the pass under way ended)."""
        before = state["last"]
        wait(lambda: state["last"] != before)

    loading = time.perf_counter()
    window.load_model(model)
    wait(lambda: controller.model_info is not None)
    load_s = time.perf_counter() - loading
    next_beat()  # the window's own handling of the load counts as the load's
    state["phase"] = "prompt"
    # the app's own tokenizer (the worker is idle): a second copy would add to the peak RSS
    prompt = prompt_of(controller.worker.model.tokenizer, tokens)
    panel = window.attention_panel.map
    state["last"] = None  # the time spent making the prompt above is not a GUI block
    state["watch"] = True
    state["phase"] = "first panels"
    state["run_at"] = clock.elapsed()
    started = time.perf_counter()
    window.prompt_panel.set_text(prompt)
    window.prompt_panel.run_now()
    first_panels = (panel, window.tokens_panel, window.probability_panel)
    wait(lambda: controller.view is not None and controller.view.result.prompt == prompt
         and panel.detail is not None
         and panel.detail.num_tokens == controller.view.result.num_tokens
         and all(window.stages.painted(widget) for widget in first_panels)
         and window.tokens_panel.shows_selection())  # the strip laid out up to the chip
    first = time.perf_counter() - started
    state["phase"] = "all panels"
    wait(lambda: not window.stages.busy)  # every panel has taken the run and been painted
    every = time.perf_counter() - started
    view = controller.view
    state["phase"] = "bars"
    wait(lambda: not view.result.next_tokens_pending)  # the bars after every position
    bars = time.perf_counter() - started
    state["phase"] = "thumbnails"
    wait(lambda: view.complete(controller.selection.hide_first))
    thumbnails = time.perf_counter() - started
    # the redraw is a click of its own: it starts once the window has handled the last
    # layer and served a heartbeat, not in the event-loop pass that brought that layer
    wait(lambda: not window.stages.busy)
    next_beat()
    t = view.result.num_tokens
    mark = time.perf_counter()
    state["phase"] = "token redraw"
    controller.select_token(t // 2)
    wait(lambda: not window.stages.busy)  # the panels are painted one per event-loop turn
    token_redraw = time.perf_counter() - mark
    mark = time.perf_counter()
    state["phase"] = "head redraw"
    controller.select_head(controller.selection.layer + 1, 3)
    wait(lambda: panel.detail is not None and panel.detail.key.head == 3)
    head_redraw = time.perf_counter() - mark
    result = {"tokens": t, "mode": view.result.attention_mode, "first_panels_s": first,
              "all_panels_s": every,
              "all_bars_s": bars, "thumbnails_s": thumbnails, "token_redraw_s": token_redraw,
              "head_redraw_s": head_redraw, "worst_gui_block_s": state["worst_block"],
              "worst_gui_block_during": state["worst_phase"],
              "stolen_ms_in_worst_block": state["worst_stolen"],
              # when (seconds from Run) the worst block ended, and when the run reached
              # the window: a block that ended before then fell in the forward
              "worst_gui_block_at_s": state.get("worst_at"), "run_arrived_s": state.get("arrived"),
              "peak_rss_gb": peak_rss_gb(), "load_s": load_s,
              "worst_gui_block_load_s": state["worst_load_block"]}
    heartbeat.stop()
    window.close()
    return result


def child(kind: str, tokens: int, model: str = "smollm2") -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--tokens", str(tokens), "--model", model]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error"))
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:120]}
    return json.loads(lines[-1])


MAPS_PER_TOKEN_PAIR = {"smollm2": 30 * 9, "gemma3": 18 * 4}
"""Layers x heads: the float32 maps transformers keeps per (query, key) pair."""


def eager_fits(tokens: int, model: str = "smollm2") -> bool:
    maps = MAPS_PER_TOKEN_PAIR[model] * tokens * tokens * 4
    return maps < 0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", default="256,1024,2048,4096,8192")
    parser.add_argument("--child")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--model", default="smollm2", choices=sorted(MAPS_PER_TOKEN_PAIR))
    args = parser.parse_args()
    model = args.model
    if args.child:
        tokens = int(args.tokens)
        data = measure_gui(tokens, model) if args.child == "gui" else \
            measure_engine(args.child, tokens, model)
        print(json.dumps(data))
        return
    if args.repeats > 1:
        spread([int(t) for t in args.tokens.split(",")], args.repeats, model)
        return
    rows = []
    for tokens in (int(t) for t in args.tokens.split(",")):
        row = {"target": tokens}
        row["eager"] = child("eager", tokens, model) if eager_fits(tokens, model) else \
            {"error": "does not fit"}
        row["sdpa"] = child("sdpa", tokens, model)
        row["analyze"] = child("analyze", tokens, model)
        row["gui"] = child("gui", tokens, model)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)

    def s(cell: dict, key: str = "seconds") -> str:
        return cell.get("error", "") if "error" in cell else f"{cell[key]:.2f}"

    print("| tokens | eager fwd + attentions s (peak GB) | sdpa fwd s | analyze s (peak GB) "
          "| GUI first panels s (mode) | GUI all panels s | GUI bars at every token s "
          "| GUI all thumbnails s | token redraw s | head redraw s | worst GUI block s "
          "| GUI peak RSS GB | GUI load s (worst block s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        e, d, a, g = row["eager"], row["sdpa"], row["analyze"], row["gui"]
        eager = s(e) if "error" in e else f"{e['seconds']:.2f} ({e['peak_rss_gb']:.1f})"
        analyze = s(a) if "error" in a else f"{a['seconds']:.2f} ({a['peak_rss_gb']:.2f})"
        gui = [""] * 9 if "error" in g else [
            f"{g['first_panels_s']:.2f} ({g['mode']})", f"{g['all_panels_s']:.2f}",
            f"{g['all_bars_s']:.2f}", f"{g['thumbnails_s']:.1f}",
            f"{g['token_redraw_s']:.3f}", f"{g['head_redraw_s']:.2f}",
            f"{g['worst_gui_block_s']:.3f}", f"{g['peak_rss_gb']:.2f}",
            f"{g['load_s']:.1f} ({g['worst_gui_block_load_s']:.3f})"]
        if "error" in g:
            gui[0] = g["error"]
        tokens = (a.get("tokens") or g.get("tokens") or row["target"])
        print(f"| {tokens} | {eager} | {s(d)} | {analyze} | " + " | ".join(gui) + " |")


def spread(lengths: list[int], repeats: int, model: str = "smollm2") -> None:
    """The target numbers of ``repeats`` interleaved runs per length (see the docstring)."""
    def summary(values: list[float], digits: int) -> str:
        if not values:
            return "-"
        middle = statistics.median(values)
        return f"{middle:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"

    print("| tokens | runs | first panels / eager | first panels / sdpa | GUI peak RSS GB "
          "| worst GUI block s | token redraw s | head redraw s | GUI all thumbnails s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for tokens in lengths:
        runs = []
        for _ in range(repeats):
            run = {"eager": child("eager", tokens, model) if eager_fits(tokens, model) else {},
                   "sdpa": child("sdpa", tokens, model), "gui": child("gui", tokens, model)}
            print(json.dumps(run), file=sys.stderr)
            runs.append(run)
        ok = [run for run in runs if "first_panels_s" in run["gui"]]
        ratios = {base: [run["gui"]["first_panels_s"] / run[base]["seconds"] for run in ok
                         if "seconds" in run[base]] for base in ("eager", "sdpa")}
        gui = [run["gui"] for run in ok]
        counted = gui[0]["tokens"] if gui else tokens
        print(f"| {counted} | {len(ok)} | {summary(ratios['eager'], 2)} "
              f"| {summary(ratios['sdpa'], 2)} "
              f"| {summary([g['peak_rss_gb'] for g in gui], 3)} "
              f"| {summary([g['worst_gui_block_s'] for g in gui], 3)} "
              f"| {summary([g['token_redraw_s'] for g in gui], 3)} "
              f"| {summary([g['head_redraw_s'] for g in gui], 2)} "
              f"| {summary([g['thumbnails_s'] for g in gui], 1)} |")


if __name__ == "__main__":
    main()
