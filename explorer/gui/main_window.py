"""The main window: docks for every panel, menus, status bar with progress and Cancel."""

from __future__ import annotations

import importlib

from PySide6.QtCore import QByteArray, QSettings, QSize, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from explorer.core.errors import ExplorerError
from explorer.core.export import ExportContext
from explorer.core.map_view import DetailMap
from explorer.core.selection import Selection
from explorer.core.types import ModelInfo, RunResult
from explorer.gui import exports, help_dialog
from explorer.gui.controller import Controller
from explorer.gui.freshness import Freshness
from explorer.gui.notice_bar import ErrorBanner, NoticeBar
from explorer.gui.panel_stages import PanelStages
from explorer.gui.panels.attention_panel import PARTS, AttentionPanel
from explorer.gui.panels.positional_panel import PositionalPanel
from explorer.gui.panels.probability_panel import ProbabilityPanel
from explorer.gui.panels.prompt_panel import PromptPanel
from explorer.gui.panels.tokens_panel import TokensPanel
from explorer.gui.plotting import has_plots, ready_to_paint
from explorer.gui.progress_bar import ProgressBar
from explorer.gui.prompt_jobs import count_tokens_job
from explorer.gui.run_view import RunView
from explorer.gui.sessions import SessionManager
from explorer.gui.widgets import ElidedLabel

DEFAULT_PROMPT = ("Classify this review:\nI loved this movie!\nSentiment: Positive\n\n"
                  "Classify this review:\nI don't like this chair.\nSentiment:")
LAYOUT_VERSION = 2
FEATURES = ("explorer.gui.model_menu", "explorer.gui.playground", "explorer.gui.compare",
            "explorer.gui.ablation", "explorer.gui.attribution", "explorer.gui.lens",
            "explorer.gui.atlas", "explorer.gui.seq2seq_stacks")
"""Modules with ``install(window) -> object``: each adds its docks, windows and menu entries."""
DEFAULT_SIZE = QSize(1500, 1000)
MAX_PANEL_MIN_WIDTH = 360
"""A panel's minimum width is fixed when the window is built (its hint then, at most this and
at most a fifth of the screen): content that arrives later (long tokens, labels, prompts)
scrolls or elides inside the panel and never widens the window, even with every dock open."""
MAX_PANEL_MIN_HEIGHT = 420
SCREEN_SHARE = 5
__all__ = ["ErrorBanner", "MainWindow"]


class MainWindow(QMainWindow):
    run_displayed = Signal(object)  # RunView, after every panel has drawn it

    def __init__(self, controller: Controller | None = None, settings: QSettings | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Attention Explorer")
        self.settings = settings or QSettings("AttentionExplorer", "AttentionExplorer")
        self.controller = controller or Controller()
        self.stages = PanelStages(self, before_paint=ready_to_paint, wants_ready=has_plots)
        # the worker's background work waits while the panels take a run (one interpreter lock)
        self.stages.busy_changed.connect(self.controller.hold_background,
                                         Qt.ConnectionType.DirectConnection)  # thread-safe
        self.prompt_panel = PromptPanel()
        self.tokens_panel = TokensPanel()
        self.attention_panel = AttentionPanel()
        self.probability_panel = ProbabilityPanel()
        self.positional_panel = PositionalPanel()
        self.notice_bar = NoticeBar()
        self.banner = self.notice_bar.error  # errors cover the notice: the layout never moves

        central = QWidget()
        central_layout = QVBoxLayout(central)
        central_layout.setContentsMargins(0, 0, 0, 0)
        central_layout.setSpacing(0)
        central_layout.addWidget(self.notice_bar)
        central_layout.addWidget(self.attention_panel, 1)
        self.setCentralWidget(central)
        self.docks: dict[str, QDockWidget] = {}
        self._add_dock("Prompt", self.prompt_panel, Qt.TopDockWidgetArea)
        self._add_dock("Tokens", self.tokens_panel, Qt.TopDockWidgetArea)
        self._add_dock("Next-token probabilities", self.probability_panel, Qt.RightDockWidgetArea)
        self._add_dock("Positional encoding", self.positional_panel, Qt.BottomDockWidgetArea)
        self.splitDockWidget(self.docks["Prompt"], self.docks["Tokens"], Qt.Horizontal)
        self.setCorner(Qt.BottomRightCorner, Qt.RightDockWidgetArea)
        self.setCorner(Qt.TopRightCorner, Qt.RightDockWidgetArea)
        self._build_status_bar()
        self.extras_providers: list = []  # objects with session_extras() / apply_session_extras()
        self.model_options: dict = {}  # added to every load (device, dtype: explorer.gui.model_menu)
        self._build_menus()
        self.sessions = SessionManager(self, self.settings)
        self.tools_menu = self.menuBar().addMenu("&Tools")
        self.features = {name: importlib.import_module(name).install(self) for name in FEATURES}
        self.help_menu = self.menuBar().addMenu("&Help")
        self.help_menu.addAction(self._action("&Getting started", self.show_getting_started, "F1"))
        self.freshness = Freshness(self.controller, self.prompt_panel, self.notice_bar,
                                   [self.tokens_panel, self.attention_panel,
                                    self.probability_panel, self.positional_panel], self)
        self._wire()
        self._pin_minimum_sizes()
        self.resize(self.fitting_size(DEFAULT_SIZE))
        self.resizeDocks([self.docks["Prompt"], self.docks["Tokens"]], [130, 130], Qt.Vertical)
        self.resizeDocks([self.docks["Prompt"], self.docks["Tokens"]], [450, 700], Qt.Horizontal)
        self.resizeDocks([self.docks["Next-token probabilities"]], [400], Qt.Horizontal)
        self.resizeDocks([self.docks["Positional encoding"]], [260], Qt.Vertical)
        self._default_state = self.saveState(LAYOUT_VERSION)
        self._restore_settings()

    # -- construction ---------------------------------------------------------------------
    def _add_dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> None:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower().replace(' ', '-')}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.docks[title] = dock

    def _pin_minimum_sizes(self) -> None:
        """Fix every panel's minimum size now (see MAX_PANEL_MIN_WIDTH)."""
        screen = self.fitting_size(QSize(10**6, 10**6))
        cap_width = min(MAX_PANEL_MIN_WIDTH, screen.width() // SCREEN_SHARE)
        cap_height = min(MAX_PANEL_MIN_HEIGHT, screen.height() // SCREEN_SHARE)
        self.probability_panel.setMinimumWidth(min(340, cap_width))  # room for the bar labels
        for widget in [dock.widget() for dock in self.docks.values()] + [self.attention_panel]:
            hint = widget.minimumSizeHint()
            widget.setMinimumSize(max(widget.minimumWidth(), min(hint.width(), cap_width), 1),
                                  max(widget.minimumHeight(), min(hint.height(), cap_height), 1))

    def fitting_size(self, wanted: QSize) -> QSize:
        """``wanted``, made small enough for the screen's available area."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return wanted
        available = screen.availableGeometry()
        return QSize(min(wanted.width(), available.width()), min(wanted.height(), available.height()))

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.model_label = ElidedLabel("No model")
        self.model_label.setMinimumWidth(120)
        self.progress = ProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(260)
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Cancel loading (Esc)")
        self.cancel_button.setShortcut(QKeySequence(Qt.Key_Escape))
        self.cancel_button.clicked.connect(self.controller.cancel_load)
        self.running_label = QLabel("")
        bar.addPermanentWidget(self.running_label)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        bar.addPermanentWidget(self.model_label)
        self.progress.hide()
        self.cancel_button.hide()

    def _action(self, text: str, slot, shortcut: str | QKeySequence | None = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        return action

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self._action("&Open session…", self._open_session, QKeySequence.Open))
        file_menu.addAction(self._action("&Save session…", self._save_session, QKeySequence.Save))
        self.recent_menu = QMenu("Recent sessions", self)
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addMenu(self.recent_menu)
        file_menu.addSeparator()
        self.model_menu = self.menuBar().addMenu("&Model")  # filled by explorer.gui.model_menu
        self.open_model_actions = [self._action("Open model &folder…", self._open_folder, "Ctrl+M"),
                                   self._action("Open &GGUF file…", self._open_gguf, "Ctrl+G"),
                                   self._action("Open &hub id…", self._open_hub_id)]
        for action in self.open_model_actions:
            file_menu.addAction(action)
        file_menu.addSeparator()
        export_menu = file_menu.addMenu("&Export")
        export_menu.addAction(self._action("Run as .&npz…", self._export_npz, "Ctrl+E"))
        export_menu.addAction(self._action("Selected head's attention as &CSV…", self._export_attention_csv))
        export_menu.addAction(self._action("Probability bars as CS&V…", self._export_probabilities_csv))
        export_menu.addSeparator()
        self.export_targets = {
            "Window": self,
            "Attention panel": self.attention_panel,
            "Probability panel": self.probability_panel,
            "Positional panel": self.positional_panel,
            "Tokens panel": self.tokens_panel,
        }
        for name, widget in self.export_targets.items():
            export_menu.addAction(self._action(f"{name} as PNG…", lambda _=False, w=widget, n=name: self._export_image(w, n, "png")))
            export_menu.addAction(self._action(f"{name} as SVG…", lambda _=False, w=widget, n=name: self._export_image(w, n, "svg")))
        file_menu.addAction(self._action("Copy window &image",
                                         lambda: exports.copy_image(self, self.export_context()),
                                         "Ctrl+Shift+C"))
        file_menu.addSeparator()
        quit_action = self._action("&Quit", self.close, "Ctrl+Q")  # not QKeySequence.Quit:
        quit_action.setShortcutContext(Qt.ApplicationShortcut)  # empty on some desktops
        file_menu.addAction(quit_action)

        view_menu = self.menuBar().addMenu("&View")
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        reset = QAction("&Reset layout", self)
        reset.triggered.connect(lambda: self.restoreState(self._default_state, LAYOUT_VERSION))
        view_menu.addAction(reset)
        navigate = self.menuBar().addMenu("&Navigate")
        for text, keys, layer, head in (("Previous layer", "Alt+Up", -1, 0), ("Next layer", "Alt+Down", 1, 0),
                                        ("Previous head", "Alt+Left", 0, -1), ("Next head", "Alt+Right", 0, 1)):
            navigate.addAction(self._action(text, lambda _=False, dl=layer, dh=head: self.step_head(dl, dh), keys))
        run_menu = self.menuBar().addMenu("&Run")
        run_now = QAction("Run prompt", self, shortcut=QKeySequence("F5"))
        run_now.triggered.connect(self.prompt_panel.run_now)
        auto = QAction("Run while typing", self, checkable=True, checked=True)
        auto.toggled.connect(lambda on: setattr(self.prompt_panel, "auto_run", on))
        run_menu.addAction(run_now)
        run_menu.addAction(auto)
        run_menu.addSeparator()
        modes = run_menu.addMenu("&Attention")
        self.attention_actions: dict[str, QAction] = {}
        group = QActionGroup(self)
        for mode, text in (("auto", "Auto (full below 1,024 tokens, lazy from there)"),
                           ("full", "Full: keep every map"),
                           ("lazy", "Lazy: rebuild maps from queries and keys")):
            action = QAction(text, self, checkable=True)
            action.triggered.connect(lambda _=False, m=mode: self.set_attention_mode(m))
            group.addAction(action)
            modes.addAction(action)
            self.attention_actions[mode] = action
        self.attention_actions["auto"].setChecked(True)

    def _wire(self) -> None:
        c = self.controller
        self.prompt_panel.run_requested.connect(self._run_prompt)
        self.tokens_panel.token_selected.connect(c.select_token)
        self.attention_panel.token_selected.connect(c.select_token)
        self.attention_panel.head_selected.connect(c.select_head)
        self.attention_panel.options_changed.connect(lambda o: c.set_options(**o))
        self.attention_panel.cancel_thumbnails.connect(c.cancel_thumbnails)
        self.attention_panel.set_sources(c.detail, c.window)
        c.map_key_for = self.attention_panel.map.key_for  # the worker computes it with the run
        c.detail_ready.connect(self._show_detail)
        c.window_ready.connect(self.attention_panel.window_arrived)
        c.thumbnails_changed.connect(self._show_thumbnails)
        c.thumbnail_progress.connect(self.attention_panel.thumbnail_progress)
        self.positional_panel.options_changed.connect(lambda o: c.set_options(**o))
        c.run_changed.connect(self._show_run)
        c.next_tokens_changed.connect(self._show_next_tokens)
        c.selection_changed.connect(self._show_selection)
        c.model_changed.connect(self._show_model)
        c.load_state.connect(self._show_load_state)
        c.running_changed.connect(lambda on: self.running_label.setText("Running…" if on else ""))
        c.error.connect(self.banner.show_message)
        self.prompt_panel.count_requested.connect(self._count_tokens)
        c.consent_needed.connect(self._on_consent_needed)
        c.status.connect(lambda text: self.statusBar().showMessage(text, 6000))

    # -- actions ----------------------------------------------------------------------------
    def load_model(self, spec: str, **options) -> None:
        self.controller.load_model(spec, **{**self.model_options, **options})

    def show_getting_started(self) -> None:
        help_dialog.show_getting_started(self)

    def _count_tokens(self, text: str) -> None:
        if self.controller.model_info is None and not self.controller.loading:
            return
        self.controller.submit(count_tokens_job(text),
                               on_done=lambda n: self.prompt_panel.show_count(text, n),
                               on_error=lambda message, cancelled: None)

    def set_attention_mode(self, mode: str) -> None:
        """How runs keep attention (auto / full / lazy); remembered, and the prompt runs again."""
        if mode not in self.attention_actions:
            return
        self.attention_actions[mode].setChecked(True)
        self.settings.setValue("run/attention", mode)
        self.controller.set_attention_mode(mode)

    def step_head(self, layer_step: int, head_step: int) -> None:
        """Move the selected layer/head by a step (keyboard navigation), clamped to the model."""
        s = self.controller.selection
        self.controller.select_head(max(0, s.layer + layer_step), max(0, s.head + head_step))

    def _run_prompt(self, text: str) -> None:
        if text:
            self.banner.hide()
        self.controller.run_prompt(text)

    def _open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a transformers model folder")
        if folder:
            self.load_model(folder)

    def _open_gguf(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a GGUF model", "", "GGUF models (*.gguf)")
        if path:
            self.load_model(path)

    def _open_hub_id(self) -> None:
        text, ok = QInputDialog.getText(self, "Hub id", "Hugging Face hub id (owner/name; downloaded "
                                        "when not cached and online):")
        if ok and text.strip():
            self.load_model(text.strip())

    def _ask_path(self, title: str, default: str, filters: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self, title, default, filters)
        return path

    def _need_result(self):
        result = self.controller.result
        if result is None:
            self.banner.show_message("Nothing to export yet: run a prompt first.")
        return result

    def _write(self, what: str, writer) -> None:
        try:
            ok = writer()
        except (OSError, ExplorerError) as exc:
            self.banner.show_message(f"Could not write {what}: {exc}")
            return
        if ok is False:
            self.banner.show_message(f"Could not write {what}.")
        else:
            self.statusBar().showMessage(f"Saved {what}", 5000)

    def export_context(self) -> ExportContext | None:
        """What the panels show now, written into every export (None before a run)."""
        result = self.controller.result
        return None if result is None else ExportContext.of(result, self.controller.selection)

    def _export_image(self, widget: QWidget, name: str, fmt: str) -> None:
        default = f"{name.lower().replace(' ', '-')}.{fmt}"
        path = self._ask_path(f"Save {name} as {fmt.upper()}", default, f"{fmt.upper()} (*.{fmt})")
        if path:
            self.stages.flush()  # the panel shows the current run, not a half-staged one
            save = exports.save_png if fmt == "png" else exports.save_svg
            context = self.export_context()
            self._write(path, lambda: save(widget, path, context))

    def _still_computing(self, result: RunResult | None, position: int | None = None) -> bool:
        """True (and says so) when ``result`` lacks next-token rows an export needs
        (``position``: only that row's; None: all)."""
        if result is None or result.has_next_tokens_at(position):
            return False
        if self.controller.next_tokens_error:
            self.banner.show_message("The next-token probabilities after every position could "
                                     "not be computed; run the prompt again to export them.")
        else:
            self.banner.show_message("The next-token probabilities after every position are "
                                     "still being computed; export again in a moment.")
        return True

    def _export_npz(self) -> None:
        result = self._need_result()
        if self._still_computing(result):
            return
        path = result is not None and self._ask_path("Export run", "run.npz", "NumPy archive (*.npz)")
        if path:
            context = self.export_context()
            self._write(path, lambda: exports.save_run(result, path, context))

    def _export_attention_csv(self) -> None:
        result = self._need_result()
        path = result is not None and self._ask_path("Export attention", "attention.csv", "CSV (*.csv)")
        if path:
            selection = self.controller.selection
            self._write(path, lambda: exports.save_attention_csv(result, selection, path))

    def _export_probabilities_csv(self) -> None:
        result = self._need_result()
        if result is not None and not result.has_next_token:
            self.banner.show_message("This model is an encoder: it has no next-token probabilities.")
            return
        if self._still_computing(result, self.controller.selection.token):
            return
        path = result is not None and self._ask_path("Export probabilities", "probabilities.csv", "CSV (*.csv)")
        if path:
            selection = self.controller.selection
            self._write(path, lambda: exports.save_probabilities_csv(result, selection, path))

    # -- sessions ---------------------------------------------------------------------------------
    def _save_session(self) -> None:
        path = self._ask_path("Save session", "session.aesession.json", "Session (*.json)")
        if path:
            self._write(path, lambda: self.sessions.save(path))

    def _open_session(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open session", "", "Session (*.json);;All files (*)")
        if path:
            self.open_session(path)

    def open_session(self, path: str) -> bool:
        try:
            self.sessions.open(path)
        except ExplorerError as exc:
            self.banner.show_message(str(exc))
            return False
        return True

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.sessions.recent()
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for path in recent:
            self.recent_menu.addAction(self._action(path, lambda _=False, p=path: self.open_session(p)))

    def session_extras(self) -> dict:
        extras: dict = {}
        for provider in self.extras_providers:
            extras.update(provider.session_extras())
        return extras

    def apply_session_extras(self, extras: dict) -> None:
        for provider in self.extras_providers:
            provider.apply_session_extras(extras)

    # -- consent -----------------------------------------------------------------------------------
    def ask_consent(self, spec: str, option: str, explanation: str) -> bool:
        """Ask before running a model's code or unpickling its weights (tests replace this)."""
        what = "run Python code shipped with" if option == "trust_remote_code" else "unpickle the weights of"
        answer = QMessageBox.warning(
            self, "Allow this model?",
            f"{explanation}\n\nDo you want to {what} '{spec}'? Only do this for files you trust.",
            QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    def _on_consent_needed(self, spec: str, option: str, explanation: str) -> None:
        if self.ask_consent(spec, option, explanation):
            self.controller.grant_consent(spec, option)
        else:
            kept = f" The previous model ({self.controller.model_info.name}) is still loaded." if self.controller.model_info else ""
            self.banner.show_message(explanation + kept)

    # -- controller → panels -------------------------------------------------------------------
    def _show_run(self, view: RunView) -> None:
        """Each panel takes the run in its own event-loop turn and is painted in the next
        (``PanelStages``). The map goes first, so the worker starts on its detail while the
        others are drawn; then the strip and the bars, so the three panels a person reads
        first are drawn before the thumbnails and the positional plots (at 1,024 tokens
        about 0.1 s sooner than with the thumbnails second)."""
        for note in view.result.notes:
            self.statusBar().showMessage(note, 15000)

        def selection() -> Selection:
            return self.controller.selection

        def probabilities() -> None:
            self.probability_panel.show_result(view.result, self.controller.next_tokens_error)
            self.probability_panel.show_selection(selection())

        def tokens() -> None:
            self.tokens_panel.show_result(view.result)
            self.tokens_panel.show_selection(selection())

        def positions() -> None:
            self.positional_panel.show_result(view.result, selection())

        def shown() -> None:
            if self.controller.view is view:
                self.run_displayed.emit(view)

        def attention(part: str) -> None:
            self.attention_panel.show_run(view, selection(), (part,))

        panel = self.attention_panel
        self.stages.start([
            ("map", lambda: attention("map"), panel.map),
            ("tokens", tokens, self.tokens_panel),
            ("probability", probabilities, self.probability_panel),
            ("grid", lambda: attention("grid"), panel.grid),
            ("prompt", lambda: self.prompt_panel.show_result(view.result), None),
            ("positional", positions, self.positional_panel),
        ], done=shown)

    def _show_detail(self, detail: DetailMap) -> None:
        """The worker's map for the selected head: the map and its curves are painted in
        turns of their own (at 8,192 tokens each takes 25-60 ms with its axes)."""
        if self.attention_panel.detail_arrived(detail):
            plots = self.attention_panel.map
            self.stages.paint_in_turns([plots.map_widget, plots.curves_widget])

    def _show_thumbnails(self, view: RunView, hide_first: bool, layer: int) -> None:
        """A layer of thumbnails arrived: the mosaic takes it in this turn and is painted in
        a turn of its own (at 4,096 tokens the two made one block of 26-34 ms)."""
        if self.attention_panel.thumbnails_arrived(view, hide_first, layer):
            self.stages.paint_in_turns([self.attention_panel.grid])

    def _show_next_tokens(self, view: RunView) -> None:
        """A long run's next-token rows arrived (or failed) after the run was handed to the
        panels: redraw the bars, unless their stage is still queued (it reads the view's
        result when it runs)."""
        if self.stages.pending("probability"):
            return  # its stage reads the view's result when it runs
        self.probability_panel.show_result(view.result, self.controller.next_tokens_error)
        self.probability_panel.show_selection(self.controller.selection)

    def _show_selection(self, selection: Selection) -> None:
        """Panels still waiting for a run's stage take the selection with the run.
        (``run_displayed`` is emitted once per run, when its last stage is done.)"""
        taken: list[QWidget] = []  # panels that have the run, painted in turns below
        for name, panel in (("tokens", self.tokens_panel), ("probability", self.probability_panel),
                            ("positional", self.positional_panel)):
            if not self.stages.pending(name):
                if not panel.show_selection(selection):
                    continue  # what it shows does not depend on what changed
                if panel is not self.tokens_panel:  # the strip (where a click or an arrow
                    taken.append(panel)  # key often comes from) is painted with this turn
        parts = tuple(part for part in PARTS if not self.stages.pending(part))
        if parts:
            self.attention_panel.show_selection(selection, parts)
        attention = {"map": self.attention_panel.map, "grid": self.attention_panel.grid}
        self.stages.paint_in_turns([attention[part] for part in parts] + taken)

    def _show_model(self, info: ModelInfo) -> None:
        self.banner.hide()  # an error about the previous model (a prompt past its context)
        self.prompt_panel.show_model(info)
        self.attention_panel.show_model(info)
        gqa = f", {info.kv_heads} kv heads" if info.kv_heads != info.heads else ""
        self.model_label.setText(f"{info.name}: {info.layers} layers × {info.heads} heads{gqa}, "
                                 f"{info.positional_kind} positions · {info.device} {info.dtype}")
        self.settings.setValue("model/last", self.controller.model_spec or info.name)

    def _show_load_state(self, loading: bool, fraction: float, stage: str) -> None:
        self.progress.setVisible(loading)
        self.cancel_button.setVisible(loading)
        self.progress.setValue(int(fraction * 1000))
        self.progress.setFormat(f"{stage} %p%")
        self.statusBar().showMessage(stage, 0 if loading else 5000)

    # -- settings ------------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        mode = self.settings.value("run/attention", None)
        if isinstance(mode, str) and mode in self.attention_actions:
            self.controller.attention_mode = mode
        if self.controller.attention_mode in self.attention_actions:
            self.attention_actions[self.controller.attention_mode].setChecked(True)
        self._remember_map_choices()
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        if isinstance(state, QByteArray):
            self.restoreState(state, LAYOUT_VERSION)

    def _remember_map_choices(self) -> None:
        """The map's overview (max / mean) and colour scale come back as the user left them."""
        map_panel = self.attention_panel.map
        for key, box in (("map/overview", map_panel.pooling_box), ("map/colour", map_panel.colour_box)):
            index = box.findData(self.settings.value(key, None))
            if index >= 0:
                box.setCurrentIndex(index)
            box.currentIndexChanged.connect(
                lambda _i, key=key, box=box: self.settings.setValue(key, box.currentData()))

    def last_prompt(self) -> str:
        return self.sessions.last_prompt() or DEFAULT_PROMPT

    def last_model(self) -> str | None:
        value = self.settings.value("model/last", "")
        return value if isinstance(value, str) and value else None

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt naming
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState(LAYOUT_VERSION))
        self.hide()  # gone at once, even if the worker or the prompt's save needs a moment
        self.sessions.autosave_prompt()
        self.stages.cancel()
        self.controller.shutdown()
        super().closeEvent(event)
