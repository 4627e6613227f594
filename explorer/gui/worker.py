"""The worker thread: model loading and every forward pass, off the GUI thread.

The work itself is the backend's plain functions taking a TaskState; this module only
moves requests in and results out through queued signals. Stale run requests are
skipped; a failed load keeps the previous model.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QThread, Signal, SignalInstance, Slot

from explorer.core.collector import collect_dropped, collection_paused, freeze_long_lived
from explorer.core.errors import Cancelled, ExplorerError, UnsafeModelError
from explorer.core.heap import release_freed_memory
from explorer.core.parallel import lower_pool_threads
from explorer.core.progress import TaskState, throttled
from explorer.core.thread_priority import BACKGROUND_NICE, run_lowered
from explorer.gui.run_view import RunView

LoadFunction = Callable[..., Any]


def _default_load(spec: str, task: TaskState, **options: Any) -> Any:
    from explorer.backend.loader import load_model

    return load_model(spec, task, **options)


def _default_analyze(model: Any, prompt: str, top_k: int, task: TaskState,
                     attention: str = "auto", ablation: Any = None) -> Any:
    """(RunResult, PendingNextTokens or None): a long run comes back before its next-token
    rows are all computed (``engine.analyze_first``); the worker finishes them after."""
    from explorer.backend.engine import analyze_first

    return analyze_first(model, prompt, top_k=top_k, task=task, attention=attention,
                         ablation=ablation)


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, ExplorerError):
        return exc.message
    traceback.print_exception(exc, file=sys.stderr)
    return f"Internal error ({type(exc).__name__}): {exc}"


def _import_libraries() -> None:
    from explorer.backend.loader import import_libraries

    import_libraries()


HOLD_POLL_S = 0.005
"""How often held background work looks again whether the window is done."""
HOLD_LIMIT_S = 2.0
"""Background work waits for the window at most this long in one go."""


class EngineWorker(QObject):
    """Lives in its own QThread; slots are invoked through queued connections."""

    load_progress = Signal(int, float, str)  # request id, fraction, stage
    model_loaded = Signal(int, object)  # request id, ModelInfo
    load_failed = Signal(int, str, str)  # request id, message, kind: cancelled | unsafe:<option> | error
    run_finished = Signal(int, object)  # request id, RunView
    next_tokens_ready = Signal(int, object)  # request id, the run's complete RunResult
    next_tokens_failed = Signal(int, str)  # request id, message
    run_failed = Signal(int, str)  # request id, message
    job_progress = Signal(int, float, str)  # job id, fraction, stage
    job_event = Signal(int, object)  # job id, a streamed item (e.g. one generated token)
    job_finished = Signal(int, object)  # job id, the job's return value
    job_failed = Signal(int, str, bool)  # job id, message, cancelled
    thumbnails_ready = Signal(int, bool, int, object)  # run id, hide_first, layer, float32[H, c, c]
    map_ready = Signal(int, object)  # map request id, DetailMap
    window_ready = Signal(int, object)  # map request id, (MapKey, rows, cols, float32[R, C])
    map_failed = Signal(int, str)  # map request id, message
    _next_thumbnail = Signal(int, object, bool, int, int, int)  # re-queued to self: one head per event
    _next_tokens_step = Signal(int, object)  # re-queued to self: one chunk of positions per event

    def __init__(self, load_fn: LoadFunction | None = None,
                 analyze_fn: Callable[..., Any] | None = None) -> None:
        super().__init__()
        self._load_fn = load_fn or _default_load
        self._analyze_fn = analyze_fn or _default_analyze
        self._model: Any = None
        self._cancel_load = threading.Event()
        self._latest_run = 0
        self._latest_load = 0
        self._lock = threading.Lock()
        self._cancelled_jobs: set[int] = set()
        self._latest_map = 0
        self._stopped_thumbnails: set[tuple[int, bool]] = set()
        self._layer_tiles: dict[tuple[int, bool], list[np.ndarray]] = {}  # the layer's tiles so far
        self._thumbnail_pass: dict[tuple[int, bool], int] = {}  # newest pass per run and variant
        self._pass_count = 0
        self._shown_run = 0  # the newest run handed to the GUI (run_finished)
        self._rows_pending: int | None = None  # the run whose next-token rows are being filled
        self._prefetched: tuple[Any, Any, Any] | None = None  # (result, MapKey, DetailMap)
        self._held_since: float | None = None  # hold_background: since when
        self._thumbnails_waiting: dict[tuple[int, bool], tuple[Any, int]] = {}  # until the rows are done
        self._next_thumbnail.connect(self._thumbnail_head, Qt.QueuedConnection)
        self._next_tokens_step.connect(self._fill_next_tokens, Qt.QueuedConnection)

    # -- called from the GUI thread (thread-safe, not queued) --------------------
    def hold_background(self, held: bool) -> None:
        """While ``held``, the background work of a shown run (next-token rows, thumbnails)
        waits between its steps: the window is handing a run to its panels. Both threads
        share the interpreter lock, and every call the window made into Qt waited for the
        worker's Python (painting an axis took 3.6 ms alone, 17 ms beside a busy thread).
        Maps, runs and jobs are not held. A hold (from ``held`` True until False) lets go
        of the work after HOLD_LIMIT_S even if it is never released."""
        with self._lock:
            self._held_since = time.monotonic() if held else None

    def _background_held(self) -> bool:
        with self._lock:
            since = self._held_since
        return since is not None and time.monotonic() - since < HOLD_LIMIT_S

    def _wait_for_window(self, step: SignalInstance, *args: Any) -> bool:
        """True when the window holds background work: ``step`` is queued again after a
        short sleep (events queued meanwhile, such as a map request, run first)."""
        if not self._background_held():
            return False
        time.sleep(HOLD_POLL_S)
        step.emit(*args)
        return True

    def request_cancel_load(self) -> None:
        self._cancel_load.set()

    def supersede_runs(self, request_id: int) -> None:
        """Mark every run older than ``request_id`` stale (skipped or dropped)."""
        with self._lock:
            self._latest_run = max(self._latest_run, request_id)

    def supersede_loads(self, request_id: int) -> None:
        """Mark every load older than ``request_id`` stale: it stops at its next progress
        report, and if it finishes anyway its model is dropped, never installed."""
        with self._lock:
            self._latest_load = max(self._latest_load, request_id)

    def _is_stale_load(self, request_id: int) -> bool:
        with self._lock:
            return request_id < self._latest_load

    def _is_stale(self, request_id: int) -> bool:
        with self._lock:
            return request_id < self._latest_run

    # -- slots, run in the worker thread -------------------------------------------
    @Slot(int, str, object)
    def load(self, request_id: int, spec: str, options: dict) -> None:
        if self._is_stale_load(request_id):
            return  # a newer load was requested before this one started
        self._cancel_load.clear()
        self._prefetched = None
        task = TaskState(
            report=throttled(lambda f, m: self.load_progress.emit(request_id, f, m)),
            is_cancel_requested=lambda: self._cancel_load.is_set() or self._is_stale_load(request_id),
        )
        try:
            # no full walks of the heap while it grows (a download from the hub included)
            with collection_paused():
                if self._model is None:  # the libraries and the window: frozen for good
                    task.progress(0.0, "Importing torch and transformers")
                    freeze_long_lived(_import_libraries)
                model = self._load_fn(spec, task, **(options or {}))
        except Cancelled:
            failure = ("Loading cancelled; the previous model is kept.", "cancelled")
        except UnsafeModelError as exc:
            failure = (exc.message, f"unsafe:{exc.option}")
        except BaseException as exc:  # noqa: BLE001 - any failure becomes a message
            failure = (describe_failure(exc), "error")
        else:
            failure = None
        if failure is not None:  # (after the except: its traceback held what the load built)
            collect_dropped()
            self.load_failed.emit(request_id, *failure)
            return
        if self._is_stale_load(request_id):
            del model
            collect_dropped()
            return  # superseded while loading: keep the model the GUI believes is loaded
        replaced = self._model is not None
        self._model = model
        if replaced:
            collect_dropped()  # the old model's reference cycles (never frozen): a few ms
        self.model_loaded.emit(request_id, model.info)

    @Slot(int, str, int, str, object, object)
    def run(self, request_id: int, prompt: str, top_k: int, attention: str = "auto",
            ablation: Any = None, map_key: Any = None) -> None:
        """``ablation``: a core Ablation to run with (None or empty: the plain model).
        ``map_key``: the large map the window will ask for first (a core MapKey): computed
        right after the run is handed over, ahead of the next-token rows, and kept for
        that request (``detail``)."""
        if self._is_stale(request_id):
            return
        self._prefetched = None  # an older run's map would keep its queries and keys alive
        if self._model is None:
            self.run_failed.emit(request_id, "No model is loaded yet.")
            return
        task = TaskState(is_cancel_requested=lambda: self._is_stale(request_id))
        try:
            extra = {"ablation": ablation} if ablation is not None and not ablation.empty else {}
            output = self._analyze_fn(self._model, prompt, top_k, task, attention, **extra)
            result, pending = output if isinstance(output, tuple) else (output, None)
            if self._is_stale(request_id):
                return
            view = RunView.build(request_id, result)
        except Cancelled:
            return
        except BaseException as exc:  # noqa: BLE001
            self.run_failed.emit(request_id, describe_failure(exc))
            return
        self.run_finished.emit(request_id, view)
        self._shown_run = request_id
        self._rows_pending = request_id if pending is not None else None
        self._thumbnails_waiting.clear()
        if not self._is_stale(request_id):  # a newer run waits for no map of this one
            self._prefetch_map(result, map_key)
        if pending is not None:
            self._next_tokens_step.emit(request_id, pending)

    def _prefetch_map(self, result: Any, key: Any) -> None:
        """Compute ``key``'s large map of ``result`` now, while the window hands the run to
        its panels, when the window would ask this thread for it (its request then waits
        for this, not behind a step of next-token rows). A failure is left to the request."""
        from explorer.core.attention import has_attention
        from explorer.core.map_view import cheap_enough, detail_map

        with contextlib.suppress(Exception):  # the window's own request reports it
            if key is not None and has_attention(result) and not cheap_enough(result, key):
                self._prefetched = (result, key, detail_map(result, key))

    @Slot(int, object)
    def _fill_next_tokens(self, request_id: int, pending: Any) -> None:
        """One chunk of a shown run's missing next-token rows per queued event, so a map
        request waits behind one chunk at most; ``next_tokens_ready`` when all are done.
        The run's thumbnails start after the rows (the bars after every token come first;
        both share this thread, so the last thumbnail is not later for it). The rows stop
        only when another run is shown: a newer request that fails leaves this run shown."""
        if self._rows_pending != request_id:
            self._rows_done(request_id)
            return
        if self._wait_for_window(self._next_tokens_step, request_id, pending):
            return
        try:
            done = run_lowered(pending.step)
            result = pending.result() if done else None
        except BaseException as exc:  # noqa: BLE001
            self.next_tokens_failed.emit(request_id, describe_failure(exc))
            self._rows_done(request_id)
            return
        release_freed_memory()  # each step's logits (the first: the forward's working
        # memory), freed, would stay with the allocator; not while the window takes the run
        if result is None:
            self._next_tokens_step.emit(request_id, pending)
            return
        self.next_tokens_ready.emit(request_id, result)
        self._rows_done(request_id)

    def _rows_done(self, request_id: int) -> None:
        """Start the thumbnail passes that waited for ``request_id``'s rows."""
        if self._rows_pending == request_id:
            self._rows_pending = None
        waiting, self._thumbnails_waiting = self._thumbnails_waiting, {}
        for (run_id, hide_first), (result, layer) in waiting.items():
            if run_id == request_id:
                self.thumbnails(run_id, result, hide_first, layer)

    def cancel_job(self, job_id: int) -> None:
        """Ask a queued or running job to stop at its next check (thread-safe)."""
        with self._lock:
            self._cancelled_jobs.add(job_id)

    def _job_cancelled(self, job_id: int) -> bool:
        with self._lock:
            return job_id in self._cancelled_jobs

    @Slot(int, object)
    def run_job(self, job_id: int, fn: Callable[..., Any]) -> None:
        """Run ``fn(model, task, emit)`` here; ``emit(item)`` streams items to the GUI."""
        if self._model is None:
            self.job_failed.emit(job_id, "No model is loaded yet.", False)
            return
        task = TaskState(report=throttled(lambda f, m: self.job_progress.emit(job_id, f, m)),
                         is_cancel_requested=lambda: self._job_cancelled(job_id))
        try:
            task.check_cancelled()
            value = fn(self._model, task, lambda item: self.job_event.emit(job_id, item))
        except Cancelled:
            self.job_failed.emit(job_id, "Cancelled.", True)
            return
        except BaseException as exc:  # noqa: BLE001
            self.job_failed.emit(job_id, describe_failure(exc), False)
            return
        finally:
            with self._lock:
                self._cancelled_jobs.discard(job_id)
        self.job_finished.emit(job_id, value)

    @Slot(int, object)
    def build_view(self, request_id: int, result: Any) -> None:
        """Precompute a RunView for a result made elsewhere (a generated sequence, a column)."""
        self._prefetched = None  # the shown run's map would keep its queries and keys alive
        try:
            view = RunView.build(request_id, result)
        except BaseException as exc:  # noqa: BLE001
            self.run_failed.emit(request_id, describe_failure(exc))
            return
        self.run_finished.emit(request_id, view)
        self._shown_run = request_id
        self._rows_pending = None  # another run is shown: a pending one's rows stop
        self._thumbnails_waiting.clear()

    # -- thumbnails and maps of long runs --------------------------------------------
    def stop_thumbnails(self, run_id: int, hide_first: bool) -> None:
        """Stop filling a run's mosaic after the head in progress (thread-safe); the
        unfinished layer is dropped and drawn again on resume."""
        with self._lock:
            self._stopped_thumbnails.add((run_id, hide_first))

    def resume_thumbnails(self, run_id: int, hide_first: bool) -> None:
        with self._lock:
            self._stopped_thumbnails.discard((run_id, hide_first))

    def thumbnails_stopped(self, run_id: int, hide_first: bool) -> bool:
        with self._lock:
            return (run_id, hide_first) in self._stopped_thumbnails

    @Slot(int, object, bool, int)
    def thumbnails(self, run_id: int, result: Any, hide_first: bool, layer: int) -> None:
        """Fill the run's mosaic from ``layer`` on: one head per queued event, each layer's
        tiles emitted when its last head is done, the next head queued behind whatever else
        is waiting (a map request, a new run). A long run thus fills in layer by layer and
        a map request waits for at most one head's map, not a layer's. A new call starts a
        new pass: events of an older pass for the same run and variant drop out. While the
        run's next-token rows are being filled, the pass waits for them."""
        if self._rows_pending == run_id:
            self._thumbnails_waiting[(run_id, hide_first)] = (result, layer)
            return
        self._pass_count += 1
        self._thumbnail_pass[(run_id, hide_first)] = self._pass_count
        # only the newest run's buffers can still be filled
        self._layer_tiles = {k: v for k, v in self._layer_tiles.items() if k[0] == run_id}
        self._thumbnail_pass = {k: v for k, v in self._thumbnail_pass.items() if k[0] == run_id}
        self._thumbnail_head(run_id, result, hide_first, layer, 0, self._pass_count)

    @Slot(int, object, bool, int, int, int)
    def _thumbnail_head(self, run_id: int, result: Any, hide_first: bool, layer: int,
                        head: int, pass_id: int) -> None:
        """Add head ``head``'s tile (float32[c, c]) to ``layer``'s buffer of the pass
        ``pass_id``; emit the layer when it is complete and queue what comes next."""
        from explorer.core.attention import attention_shape
        from explorer.core.thumbnails import head_tile
        from explorer.gui.run_view import THUMBNAIL_CELL

        variant = (run_id, hide_first)
        if self._thumbnail_pass.get(variant) != pass_id:
            return  # a newer pass (or run) took over; its buffer is not ours
        if run_id < self._shown_run or self.thumbnails_stopped(run_id, hide_first):
            # a newer run is shown (a newer one only requested may still fail)
            self._layer_tiles.pop(variant, None)
            return
        if self._wait_for_window(self._next_thumbnail, run_id, result, hide_first, layer, head,
                                 pass_id):
            return
        if head == 0:
            self._layer_tiles[variant] = []
        tiles = self._layer_tiles.get(variant)
        if tiles is None or len(tiles) != head:
            return
        try:
            tiles.append(head_tile(result, layer, head, THUMBNAIL_CELL, hide_first))
        except BaseException as exc:  # noqa: BLE001
            self._layer_tiles.pop(variant, None)
            self.run_failed.emit(run_id, describe_failure(exc))
            return
        layers, heads = attention_shape(result)
        if head + 1 < heads:
            self._next_thumbnail.emit(run_id, result, hide_first, layer, head + 1, pass_id)
            return
        del self._layer_tiles[variant]
        self.thumbnails_ready.emit(run_id, hide_first, layer, np.stack(tiles))
        release_freed_memory()  # the layer's maps, freed, would stay with the allocator
        if layer + 1 < layers:
            self._next_thumbnail.emit(run_id, result, hide_first, layer + 1, 0, pass_id)

    def supersede_maps(self, request_id: int) -> None:
        with self._lock:
            self._latest_map = max(self._latest_map, request_id)

    def _map_stale(self, request_id: int) -> bool:
        with self._lock:
            return request_id < self._latest_map

    @Slot(int, object, object)
    def detail(self, request_id: int, result: Any, key: Any) -> None:
        """The large map (exact or block-pooled) of one head or head mean."""
        from explorer.core.map_view import detail_map

        if self._map_stale(request_id):
            return
        prefetched, self._prefetched = self._prefetched, None  # served once
        if prefetched is not None and prefetched[0] is result and prefetched[1] == key:
            self.map_ready.emit(request_id, prefetched[2])
            return
        try:
            view = detail_map(result, key)
        except BaseException as exc:  # noqa: BLE001
            self.map_failed.emit(request_id, describe_failure(exc))
            return
        self.map_ready.emit(request_id, view)

    @Slot(int, object, object, object, object)
    def window(self, request_id: int, result: Any, key: Any, rows: Any, cols: Any) -> None:
        """The exact map inside a zoomed window [r0, r1) x [c0, c1)."""
        from explorer.core.map_view import exact_window

        if self._map_stale(request_id):
            return
        try:
            values = exact_window(result, key, rows, cols)
        except BaseException as exc:  # noqa: BLE001
            self.map_failed.emit(request_id, describe_failure(exc))
            return
        self.window_ready.emit(request_id, (key, rows, cols, values))

    @property
    def model(self) -> Any:
        return self._model

    @property
    def load_function(self) -> LoadFunction:
        """``load(spec, task, **options)`` as this worker loads models (for extra models
        a job keeps next to the main one, e.g. per-column models in the comparison)."""
        return self._load_fn


class WorkerThread(QThread):
    """A named QThread that owns one EngineWorker."""

    def __init__(self, worker: EngineWorker) -> None:
        super().__init__()
        self.setObjectName("engine-worker")
        worker.moveToThread(self)
        self.worker = worker

    def run(self) -> None:
        lower_pool_threads(BACKGROUND_NICE)  # maps built on every core leave the window one
        self.exec()
