"""The controller: owns the selection and the current run; wires panels to the worker.

Panels emit intents (select a token, a head, change an option, run a prompt); the
controller updates the one Selection and re-broadcasts. Every request to the worker
carries an id; results with an older id than the newest request are dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal

from explorer.core.ablation import Ablation
from explorer.core.map_view import DetailMap, MapKey, cheap_enough, detail_map, exact_window
from explorer.core.selection import Selection
from explorer.core.types import ModelInfo, RunResult
from explorer.gui.run_view import RunView
from explorer.gui.worker import EngineWorker, WorkerThread

DEFAULT_TOP_K = 20
MAP_CACHE_SIZE = 12


@dataclass
class Job:
    """A function run in the worker thread on the loaded model, with callbacks on the GUI thread.

    fn(model: LoadedModel, task: TaskState, emit: Callable[[object], None]) -> object
    """

    id: int
    fn: Callable[..., Any]
    on_done: Callable[[Any], None] | None = None
    on_error: Callable[[str, bool], None] | None = None  # message, cancelled
    on_progress: Callable[[float, str], None] | None = None
    on_event: Callable[[Any], None] | None = None
    controller: Any = field(default=None, repr=False)

    def cancel(self) -> None:
        if self.controller is not None:
            self.controller.worker.cancel_job(self.id)


class Controller(QObject):
    selection_changed = Signal(object)  # Selection
    run_changed = Signal(object)  # RunView
    model_changed = Signal(object)  # ModelInfo
    load_state = Signal(bool, float, str)  # loading, fraction, stage
    running_changed = Signal(bool)
    error = Signal(str)  # a message for the user
    consent_needed = Signal(str, str, str)  # spec, consent option, explanation
    status = Signal(str)  # a transient status line

    # queued requests to the worker thread
    _load_requested = Signal(int, str, object)
    thumbnails_changed = Signal(object, bool, int)  # RunView, hide_first, layer just drawn
    thumbnail_progress = Signal(int, int, bool)  # layers drawn, layers, still streaming
    detail_ready = Signal(object)  # DetailMap computed by the worker
    window_ready = Signal(object)  # (MapKey, rows, cols, float32[R, C]) from the worker
    next_tokens_changed = Signal(object)  # RunView: the shown run's next-token rows all arrived

    # queued requests to the worker thread
    _run_requested = Signal(int, str, int, str, object, object)
    _job_requested = Signal(int, object)
    _view_requested = Signal(int, object)
    _thumbnails_requested = Signal(int, object, bool, int)
    _detail_requested = Signal(int, object, object)
    _window_requested = Signal(int, object, object, object, object)

    def __init__(self, worker: EngineWorker | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = worker or EngineWorker()
        self.thread = WorkerThread(self.worker)
        self._load_requested.connect(self.worker.load)
        self._run_requested.connect(self.worker.run)
        self.worker.load_progress.connect(self._on_load_progress)
        self.worker.model_loaded.connect(self._on_model_loaded)
        self.worker.load_failed.connect(self._on_load_failed)
        self.worker.run_finished.connect(self._on_run_finished)
        self.worker.next_tokens_ready.connect(self._on_next_tokens_ready)
        self.worker.next_tokens_failed.connect(self._on_next_tokens_failed)
        self.worker.run_failed.connect(self._on_run_failed)
        self._job_requested.connect(self.worker.run_job)
        self._view_requested.connect(self.worker.build_view)
        self.worker.job_progress.connect(self._on_job_progress)
        self.worker.job_event.connect(self._on_job_event)
        self.worker.job_finished.connect(self._on_job_finished)
        self.worker.job_failed.connect(self._on_job_failed)
        self._thumbnails_requested.connect(self.worker.thumbnails)
        self._detail_requested.connect(self.worker.detail)
        self._window_requested.connect(self.worker.window)
        self.worker.thumbnails_ready.connect(self._on_thumbnails)
        self.worker.map_ready.connect(self._on_detail)
        self.worker.window_ready.connect(self._on_window)
        self.worker.map_failed.connect(self._on_map_failed)
        self.jobs: dict[int, Job] = {}
        self.thread.start()

        self.selection = Selection()
        self.view: RunView | None = None
        self.model_info: ModelInfo | None = None
        self.model_spec: str | None = None
        self.top_k = DEFAULT_TOP_K
        self.attention_mode = "auto"  # auto | full | lazy (core.attention.resolve_mode)
        self.ablation: Ablation | None = None  # heads knocked out in every run
        self.shown_ablation: Ablation | None = None  # the ablation of the shown run
        self._running_ablation: Ablation | None = None
        self._map_id = 0
        self._map_cache: OrderedDict[tuple[int, MapKey], tuple[RunResult, DetailMap]] = OrderedDict()
        self.map_key_for: Callable[[Selection], MapKey] | None = None  # set by the window
        self.next_tokens_error: str | None = None  # the shown run's rows could not be computed
        self._pending_maps: dict[int, tuple[int, MapKey]] = {}
        self._request_id = 0
        self._load_id = 0
        self._pending_spec: str | None = None
        self._pending_options: dict[str, Any] = {}
        self._loading = False
        self._running_id = 0
        self._prompt = ""
        self._follow_last = True
        self._wanted_head = (0, 0)  # the layer/head the user asked for, before any clamp
        self.source: str | None = None  # what the panels show: None = the editor's prompt
        self._pending_source: str | None = None

    # -- state ----------------------------------------------------------------------
    @property
    def result(self) -> RunResult | None:
        return self.view.result if self.view else None

    @property
    def loading(self) -> bool:
        return self._loading

    @property
    def running(self) -> bool:
        return self._running_id != 0

    @property
    def prompt(self) -> str:
        return self._prompt

    def _next_id(self) -> int:
        self._request_id += 1
        return self._request_id

    # -- intents: model ---------------------------------------------------------------
    def load_model(self, spec: str, **options: Any) -> int:
        """Load ``spec`` in the worker; the current model stays until the new one is ready."""
        request = self._next_id()
        self._load_id = request
        self.worker.supersede_loads(request)
        self._pending_spec = spec
        self._pending_options = dict(options)
        self._loading = True
        self.load_state.emit(True, 0.0, f"Loading {spec}…")
        self._load_requested.emit(request, spec, dict(options))
        return request

    def grant_consent(self, spec: str, option: str) -> int:
        """Retry loading ``spec`` with one more consent (trust_remote_code / allow_pickle)."""
        options = dict(self._pending_options) if spec == self._pending_spec else {}
        options[option] = True
        return self.load_model(spec, **options)

    def cancel_load(self) -> None:
        if self._loading:
            self.worker.request_cancel_load()

    # -- intents: runs ----------------------------------------------------------------
    def run_prompt(self, prompt: str) -> int | None:
        """Analyse ``prompt``; supersedes any run still queued or in flight."""
        self._prompt = prompt
        if not prompt:
            self.status.emit("The prompt is empty: type some text to analyse.")
            return None
        request = self._next_id()
        self.worker.supersede_runs(request)
        if self.model_info is None and not self._loading:
            self.error.emit("No model is loaded. Choose one from the Model menu.")
            return None
        self._running_id = request
        self._pending_source = None
        self.running_changed.emit(True)
        self._running_ablation = self.ablation
        self._run_requested.emit(request, prompt, self.top_k, self.attention_mode, self.ablation,
                                 self._first_map_key())
        return request

    def _first_map_key(self) -> MapKey | None:
        """The large map the window will show first for the next run (``map_key_for``, set
        by the window, turns a selection into the key it asks for)."""
        if self.map_key_for is None:
            return None
        # the run's length is not known yet: it moves only the token, which no key holds
        return self.map_key_for(self._next_run_selection(1, self.model_info))

    def _next_run_selection(self, num_tokens: int, info: ModelInfo | None) -> Selection:
        """The selection a run of ``num_tokens`` tokens of model ``info`` is shown with:
        the layer and head asked for, the last token when following it, in bounds."""
        layer, head = self._wanted_head
        selection = self.selection.with_(layer=layer, head=head)
        if self._follow_last:
            selection = selection.with_(token=num_tokens - 1)
        return selection.clamped(num_tokens, info)

    def hold_background(self, held: bool) -> None:
        """Hold the worker's background work while the window hands a run to its panels
        (thread-safe, called directly: ``EngineWorker.hold_background``)."""
        self.worker.hold_background(held)

    def set_ablation(self, ablation: Ablation | None, rerun: bool = True) -> None:
        """Run every prompt from now on with ``ablation`` (None: the plain model); runs the
        shown prompt again when it changed (and ``rerun``)."""
        if ablation is not None and ablation.empty:
            ablation = None
        if ablation != self.ablation:
            self.ablation = ablation
            if rerun:
                self.rerun()

    def set_attention_mode(self, mode: str) -> None:
        """auto (full below 1,024 tokens, lazy from there), full or lazy; runs again."""
        if mode != self.attention_mode:
            self.attention_mode = mode
            self.rerun()

    def set_pending_prompt(self, prompt: str) -> None:
        """Remember ``prompt`` to run as soon as the next model is loaded."""
        self._prompt = prompt

    def rerun(self) -> None:
        if self._prompt:
            self.run_prompt(self._prompt)

    # -- jobs and results made elsewhere ---------------------------------------------------
    def submit(self, fn: Callable[..., Any], *, on_done: Callable[[Any], None] | None = None,
               on_error: Callable[[str, bool], None] | None = None,
               on_progress: Callable[[float, str], None] | None = None,
               on_event: Callable[[Any], None] | None = None) -> Job:
        """Queue ``fn(model, task, emit)`` on the worker thread (after any load in progress)."""
        job = Job(self._next_id(), fn, on_done, on_error, on_progress, on_event, self)
        self.jobs[job.id] = job
        self._job_requested.emit(job.id, fn)
        return job

    def show_result(self, result: RunResult, selection: Selection | None = None,
                    source: str | None = None) -> int:
        """Show a result computed elsewhere (a generated sequence, a comparison column) in
        every panel, with ``selection`` applied. The thumbnails are built in the worker.
        ``source`` names what is shown ("column B", "generated text, branch 2") for the
        notice above the panels; None means the editor's prompt."""
        request = self._next_id()
        self.worker.supersede_runs(request)
        self._running_id = request
        self._pending_source = source
        if selection is not None:
            self.selection = selection
            self._wanted_head = (selection.layer, selection.head)
            self._follow_last = False
        self._prompt = result.prompt
        self._running_ablation = None
        self.running_changed.emit(True)
        self._view_requested.emit(request, result)
        return request

    def _on_job_progress(self, job_id: int, fraction: float, stage: str) -> None:
        job = self.jobs.get(job_id)
        if job and job.on_progress:
            job.on_progress(fraction, stage)

    def _on_job_event(self, job_id: int, item: Any) -> None:
        job = self.jobs.get(job_id)
        if job and job.on_event:
            job.on_event(item)

    def _on_job_finished(self, job_id: int, value: Any) -> None:
        job = self.jobs.pop(job_id, None)
        if job and job.on_done:
            job.on_done(value)

    def _on_job_failed(self, job_id: int, message: str, cancelled: bool) -> None:
        job = self.jobs.pop(job_id, None)
        if job and job.on_error:
            job.on_error(message, cancelled)
        elif job and not cancelled:
            self.error.emit(message)

    # -- intents: selection -------------------------------------------------------------
    def select_token(self, index: int) -> None:
        n = self.result.num_tokens if self.result else 0
        if n:
            self._follow_last = index >= n - 1
        self._set_selection(self.selection.with_(token=index))

    def select_head(self, layer: int, head: int) -> None:
        """Select a head. The request is remembered: a model with fewer layers or heads
        shows the nearest one, and the requested one comes back with a model that has it."""
        self._wanted_head = (layer, head)
        self._set_selection(self.selection.with_(layer=layer, head=head, head_mean=False))

    def adopt_shown_prompt(self) -> None:
        """The editor now holds the shown run's text: the panels show the editor's prompt."""
        if self.result is not None:
            self.source = None
            self._prompt = self.result.prompt

    def set_options(self, **options: bool) -> None:
        self._set_selection(self.selection.with_(**options))

    def _set_selection(self, selection: Selection) -> None:
        n = self.result.num_tokens if self.result else 0
        info = self.result.model_info if self.result else self.model_info
        selection = selection.clamped(n, info)
        if selection != self.selection:
            hide_changed = selection.hide_first != self.selection.hide_first
            self.selection = selection
            self.selection_changed.emit(selection)
            if hide_changed:
                self._stream_thumbnails()

    # -- worker callbacks -----------------------------------------------------------------
    def _on_load_progress(self, request: int, fraction: float, stage: str) -> None:
        if request == self._load_id:
            self.load_state.emit(True, fraction, stage)

    def _on_model_loaded(self, request: int, info: ModelInfo) -> None:
        if request != self._load_id:
            return
        self._loading = False
        self.model_info = info
        self.model_spec = self._pending_spec
        self.load_state.emit(False, 1.0, f"Loaded {info.name}")
        self.model_changed.emit(info)
        if self._prompt:
            self.run_prompt(self._prompt)

    def _on_load_failed(self, request: int, message: str, kind: str) -> None:
        if request != self._load_id:
            return
        self._loading = False
        cancelled = kind == "cancelled"
        self.load_state.emit(False, 0.0, "Load cancelled" if cancelled else "Load failed")
        if cancelled:
            self.status.emit(message)
        elif kind.startswith("unsafe:") and self._pending_spec:
            self.consent_needed.emit(self._pending_spec, kind.split(":", 1)[1], message)
        else:
            kept = f" The previous model ({self.model_info.name}) is still loaded." if self.model_info else ""
            self.error.emit(message + kept)
        if self.running and self.model_info is None:
            self._running_id = 0
            self.running_changed.emit(False)

    def _on_run_finished(self, request: int, view: RunView) -> None:
        if request != self._running_id:
            return  # an older run finished after a newer one was requested
        self._running_id = 0
        self.view = view
        self.next_tokens_error = None
        self.source = self._pending_source
        self.shown_ablation = self._running_ablation
        self._map_cache.clear()
        self.selection = self._next_run_selection(view.result.num_tokens, view.result.model_info)
        self.running_changed.emit(False)
        self.run_changed.emit(view)
        self.selection_changed.emit(self.selection)
        self._stream_thumbnails()

    def _on_next_tokens_ready(self, request: int, result: RunResult) -> None:
        """The shown long run's next-token rows are all computed: the view takes the
        complete result (maps cached for the first one stay valid: same attention)."""
        view = self.view
        if view is None or view.request_id != request or not view.result.next_tokens_pending:
            return
        first = view.result
        view.complete_next_tokens(result)
        for key, (cached, detail) in list(self._map_cache.items()):
            if cached is first:
                self._map_cache[key] = (result, detail)
        self.next_tokens_changed.emit(view)

    def _on_next_tokens_failed(self, request: int, message: str) -> None:
        """The shown run's remaining next-token rows failed (e.g. out of memory): say so;
        the panels keep the last token's bars and stop promising the others."""
        view = self.view
        if view is None or view.request_id != request:
            return
        self.next_tokens_error = message
        self.error.emit("The next-token probabilities after every position could not be "
                        f"computed ({message}); those after the last token are shown.")
        self.next_tokens_changed.emit(view)

    def _on_run_failed(self, request: int, message: str) -> None:
        if request != self._running_id:
            return
        self._running_id = 0
        self.running_changed.emit(False)
        self.error.emit(message)

    # -- thumbnails and the large map of long runs -------------------------------------------
    def _stream_thumbnails(self) -> None:
        """Ask the worker to fill the shown mosaic's missing layers (long or lazy runs)."""
        view = self.view
        if view is None:
            return
        hide_first = self.selection.hide_first
        missing = view.missing_layers(hide_first)
        self.thumbnail_progress.emit(view.layers - len(missing), view.layers, bool(missing))
        if missing:
            self.worker.resume_thumbnails(view.request_id, hide_first)
            self._thumbnails_requested.emit(view.request_id, view.result, hide_first, missing[0])

    def cancel_thumbnails(self) -> None:
        """Stop filling the shown mosaic (the drawn layers stay)."""
        view = self.view
        if view is not None:
            self.worker.stop_thumbnails(view.request_id, self.selection.hide_first)
            done = view.layers - len(view.missing_layers(self.selection.hide_first))
            self.thumbnail_progress.emit(done, view.layers, False)

    def _on_thumbnails(self, run_id: int, hide_first: bool, layer: int, tiles: Any) -> None:
        view = self.view
        if view is None or view.request_id != run_id:
            return
        view.place(hide_first, layer, tiles)
        self.thumbnails_changed.emit(view, hide_first, layer)
        if hide_first == self.selection.hide_first:
            done = view.layers - len(view.missing_layers(hide_first))
            stopped = self.worker.thumbnails_stopped(run_id, hide_first)
            self.thumbnail_progress.emit(done, view.layers, done < view.layers and not stopped)

    def detail(self, key: MapKey) -> DetailMap | None:
        """The large map for ``key`` of the shown run: at once when cached or cheap, else
        None and ``detail_ready`` later (computed in the worker)."""
        view = self.view
        if view is None:
            return None
        cache_key = (view.request_id, key)
        cached = self._map_cache.get(cache_key)
        if cached is not None and cached[0] is view.result:
            self._map_cache.move_to_end(cache_key)
            return cached[1]
        if cheap_enough(view.result, key):
            return self._remember(cache_key, view.result, detail_map(view.result, key))
        if cache_key in self._pending_maps.values():
            return None
        self._map_id += 1
        self.worker.supersede_maps(self._map_id)
        self._pending_maps = {self._map_id: cache_key}
        self._detail_requested.emit(self._map_id, view.result, key)
        return None

    def _remember(self, cache_key: tuple[int, MapKey], result: RunResult, detail: DetailMap,
                  ) -> DetailMap:
        self._map_cache[cache_key] = (result, detail)
        while len(self._map_cache) > MAP_CACHE_SIZE:
            self._map_cache.popitem(last=False)
        return detail

    def _on_detail(self, request: int, detail: DetailMap) -> None:
        cache_key = self._pending_maps.pop(request, None)
        if cache_key is None or self.view is None or cache_key[0] != self.view.request_id:
            return
        self.detail_ready.emit(self._remember(cache_key, self.view.result, detail))

    def window(self, key: MapKey, rows: tuple[int, int], cols: tuple[int, int]) -> Any:
        """The exact map in a zoomed window: at once when cheap, else None and
        ``window_ready`` later."""
        view = self.view
        if view is None:
            return None
        if cheap_enough(view.result, key, rows[1] - rows[0]):
            return exact_window(view.result, key, rows, cols)
        self._map_id += 1
        self.worker.supersede_maps(self._map_id)
        self._pending_maps = {self._map_id: (view.request_id, key)}
        self._window_requested.emit(self._map_id, view.result, key, rows, cols)
        return None

    def _on_window(self, request: int, payload: Any) -> None:
        cache_key = self._pending_maps.pop(request, None)
        if cache_key is None or self.view is None or cache_key[0] != self.view.request_id:
            return
        self.window_ready.emit(payload)

    def _on_map_failed(self, request: int, message: str) -> None:
        if self._pending_maps.pop(request, None) is not None:
            self.error.emit(message)

    # -- shutdown ------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 2000) -> bool:
        """Stop the worker thread. Loads, runs and jobs are cancelled at their next check
        (every layer, tensor or token). Returns True when the thread ended within the
        timeout; otherwise it waits for the step that cannot be interrupted (e.g. reading
        a GGUF tokenizer) to finish, because destroying a running QThread aborts."""
        self.worker.request_cancel_load()
        self.worker.supersede_loads(self._request_id + 1)
        for job_id in list(self.jobs):
            self.worker.cancel_job(job_id)
        self.worker.supersede_runs(self._request_id + 1)
        self.thread.quit()
        if self.thread.wait(timeout_ms):
            return True
        self.thread.wait()
        return False
