"""The controller-side ablation set: Ctrl+click toggles heads, runs use the ablated model,
the probability panel gets the plain run beside it, and the ablation scan."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject

from explorer.core.ablation import Ablation, AblationScan, AblationShift
from explorer.gui.ablation.dock import AblationDock
from explorer.gui.ablation.jobs import scan_job, shift_job
from explorer.gui.run_view import RunView

GRID_LABEL = "Δ log p(target) when ablated alone"


class AblationFeature(QObject):
    """Owns the ablation (heads + mode) and the last scan; ``dock`` is its panel."""

    def __init__(self, window: Any, dock: AblationDock) -> None:
        super().__init__(window)
        self.window = window
        self.controller = window.controller
        self.dock = dock
        self.ablation = Ablation()
        self.scan: AblationScan | None = None
        self.scan_job: Any = None
        self.shift: AblationShift | None = None
        self._shift_job: Any = None
        window.attention_panel.head_toggled.connect(self.toggle)
        dock.mode_box.currentIndexChanged.connect(lambda _: self.set_mode(dock.mode()))
        dock.clear_button.clicked.connect(self.clear)
        dock.scan_button.clicked.connect(self.start_scan)
        dock.target_edit.returnPressed.connect(self.start_scan)
        dock.cancel_button.clicked.connect(self.cancel_scan)
        dock.grid_box.toggled.connect(self._colour_grid)
        dock.heatmap.head_clicked.connect(self.controller.select_head)
        self.controller.run_changed.connect(self._run_changed)
        self.controller.model_changed.connect(self._model_changed)
        dock.show_ablation(self.ablation)

    # -- the ablation set ---------------------------------------------------------------------
    def toggle(self, layer: int, head: int) -> None:
        """Add (layer, head) to the ablation, or remove it; the prompt runs again."""
        self.set_ablation(self.ablation.toggled(layer, head))
        self.window.docks[DOCK_TITLE].show()

    def set_mode(self, mode: str) -> None:
        if mode != self.ablation.mode:
            self.set_ablation(self.ablation.with_mode(mode))

    def clear(self) -> None:
        self.set_ablation(Ablation(frozenset(), self.ablation.mode))

    def set_ablation(self, ablation: Ablation, rerun: bool = True) -> None:
        self.ablation = ablation
        self.window.attention_panel.set_marked_heads(set(ablation.heads))
        self.dock.show_ablation(ablation)
        index = self.dock.mode_box.findData(ablation.mode)
        if index != self.dock.mode_box.currentIndex():
            self.dock.mode_box.blockSignals(True)
            self.dock.mode_box.setCurrentIndex(index)
            self.dock.mode_box.blockSignals(False)
        self.controller.set_ablation(None if ablation.empty else ablation, rerun=rerun)

    def _model_changed(self, _info: Any) -> None:
        """Heads of the old model mean nothing in the new one: start with none."""
        if not self.ablation.empty:
            self.set_ablation(Ablation(frozenset(), self.ablation.mode), rerun=False)
        self._show_scan(None)

    # -- the plain run beside an ablated one ----------------------------------------------------
    def _run_changed(self, view: RunView) -> None:
        panel = self.window.probability_panel
        ablation = self.controller.shown_ablation
        if self.scan is not None and self.scan.prompt != view.result.prompt:
            self._show_scan(None)  # a scan of another prompt would mislead
        if ablation is None or not view.result.has_next_token:
            panel.set_shift(None)
            return
        shift = self.shift
        if shift is not None and shift.ablation == ablation and shift.base.prompt == view.result.prompt:
            panel.set_shift(shift)
            return
        panel.set_shift(None)
        if self._shift_job is not None:
            self._shift_job.cancel()
        self._shift_job = self.controller.submit(
            shift_job(view.result.prompt, ablation, self.controller.top_k),
            on_done=lambda shift, v=view: self._shift_done(v, shift),
            on_error=self._shift_failed)

    def _shift_done(self, view: Any, shift: AblationShift) -> None:
        self._shift_job = None
        self.shift = shift
        if self.controller.view is view:  # still shown (its next-token rows may have arrived since)
            self.window.probability_panel.set_shift(shift)

    def _shift_failed(self, message: str, cancelled: bool) -> None:
        self._shift_job = None
        if not cancelled:
            self.dock.say(message, error=True)

    # -- the scan ---------------------------------------------------------------------------
    def start_scan(self) -> Any:
        """Scan the shown prompt at the selected token; returns the Job (None if not sent)."""
        if self.scan_job is not None:
            return None
        result = self.controller.result
        if result is None:
            self.dock.say("Run a prompt first.", error=True)
            return None
        if not result.has_next_token:
            self.dock.say(f"{result.model_info.name} is an encoder: it predicts no next token "
                          "to scan.", error=True)
            return None
        position = self.controller.selection.token
        self.dock.set_scanning(True)
        self.dock.say(f"Scanning {result.model_info.layers} × {result.model_info.heads} heads…")
        self.scan_job = self.controller.submit(
            scan_job(result.prompt, position, self.dock.mode(), self.dock.target_edit.text()),
            on_done=lambda scan, r=result: self._scan_done(r, scan),
            on_error=self._scan_failed,
            on_progress=lambda f, _m: self.dock.progress.setValue(int(f * 1000)))
        return self.scan_job

    def cancel_scan(self) -> None:
        if self.scan_job is not None:
            self.scan_job.cancel()

    def _scan_done(self, result: Any, scan: AblationScan) -> None:
        self.scan_job = None
        self.dock.set_scanning(False)
        self.dock.progress.setValue(1000)
        self._show_scan(scan, result)
        note = " ".join(scan.notes)
        self.dock.say(f"Scanned {scan.delta_logprob.size} heads. {note}".strip())

    def _scan_failed(self, message: str, cancelled: bool) -> None:
        self.scan_job = None
        self.dock.set_scanning(False)
        self.dock.progress.setValue(0)
        self.dock.say("Scan cancelled: nothing changed." if cancelled else message,
                      error=not cancelled)

    def _show_scan(self, scan: AblationScan | None, result: Any = None) -> None:
        self.scan = scan
        if scan is None:
            self.dock.heatmap.show_scan(None)
            self.dock.scan_label.setText("")
            self.dock.grid_box.setChecked(False)
            self.dock.grid_box.setEnabled(False)
            return
        self.dock.show_scan(scan, result.tokens, result.model_info.piece_style)
        self._colour_grid(self.dock.grid_box.isChecked())

    def _colour_grid(self, on: bool) -> None:
        scores = self.scan.delta_logprob if on and self.scan is not None else None
        self.window.attention_panel.set_grid_scores(scores, GRID_LABEL if scores is not None else "")


DOCK_TITLE = "Ablation"
