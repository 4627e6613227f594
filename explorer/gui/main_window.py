"""The main window: docks for every panel, menus, status bar with progress and Cancel."""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from explorer.core.selection import Selection
from explorer.core.types import ModelInfo
from explorer.gui.controller import Controller
from explorer.gui.panels.attention_panel import AttentionPanel
from explorer.gui.panels.positional_panel import PositionalPanel
from explorer.gui.panels.probability_panel import ProbabilityPanel
from explorer.gui.panels.prompt_panel import PromptPanel
from explorer.gui.panels.tokens_panel import TokensPanel
from explorer.gui.run_view import RunView

EMBEDDED = (("smollm2", "SmolLM2-135M-Instruct (decoder, RoPE)"),
            ("minilm", "all-MiniLM-L6-v2 (encoder, learned positions)"))
DEFAULT_PROMPT = ("Classify this review:\nI loved this movie!\nSentiment: Positive\n\n"
                  "Classify this review:\nI don't like this chair.\nSentiment:")
LAYOUT_VERSION = 1


class ErrorBanner(QWidget):
    """A dismissable red message at the top of the window (never a blocking dialog)."""

    def __init__(self) -> None:
        super().__init__()
        self.label = QLabel("")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        close = QPushButton("Dismiss")
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.setStyleSheet("background:#fde2e1; color:#8a1f11;")
        self.hide()

    def show_message(self, text: str) -> None:
        self.label.setText(text)
        self.show()


class MainWindow(QMainWindow):
    run_displayed = Signal(object)  # RunView, after every panel has drawn it

    def __init__(self, controller: Controller | None = None, settings: QSettings | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Attention Explorer")
        self.settings = settings or QSettings("AttentionExplorer", "AttentionExplorer")
        self.controller = controller or Controller()
        self.prompt_panel = PromptPanel()
        self.tokens_panel = TokensPanel()
        self.attention_panel = AttentionPanel()
        self.probability_panel = ProbabilityPanel()
        self.positional_panel = PositionalPanel()
        self.banner = ErrorBanner()

        central = QWidget()
        central_layout = QVBoxLayout(central)
        central_layout.setContentsMargins(0, 0, 0, 0)
        central_layout.addWidget(self.banner)
        central_layout.addWidget(self.attention_panel, 1)
        self.setCentralWidget(central)
        self.docks: dict[str, QDockWidget] = {}
        self._add_dock("Prompt", self.prompt_panel, Qt.TopDockWidgetArea)
        self._add_dock("Tokens", self.tokens_panel, Qt.TopDockWidgetArea)
        self._add_dock("Next-token probabilities", self.probability_panel, Qt.RightDockWidgetArea)
        self._add_dock("Positional encoding", self.positional_panel, Qt.RightDockWidgetArea)
        self.splitDockWidget(self.docks["Prompt"], self.docks["Tokens"], Qt.Horizontal)
        self.resizeDocks([self.docks["Prompt"], self.docks["Tokens"]], [160, 160], Qt.Vertical)
        self.resizeDocks([self.docks["Prompt"], self.docks["Tokens"]], [500, 1000], Qt.Horizontal)
        self.resizeDocks([self.docks["Next-token probabilities"]], [420], Qt.Horizontal)
        self._build_status_bar()
        self._build_menus()
        self._default_state = self.saveState(LAYOUT_VERSION)
        self._wire()
        self.resize(1500, 950)
        self._restore_settings()

    # -- construction ---------------------------------------------------------------------
    def _add_dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> None:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower().replace(' ', '-')}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.docks[title] = dock

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.model_label = QLabel("No model")
        self.progress = QProgressBar()
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

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        model_menu = self.menuBar().addMenu("&Model")
        for alias, title in EMBEDDED:
            action = QAction(f"{title}", self)
            action.triggered.connect(lambda _=False, a=alias: self.load_model(a))
            model_menu.addAction(action)
        model_menu.addSeparator()
        open_folder = QAction("Open model &folder…", self, shortcut=QKeySequence("Ctrl+O"))
        open_folder.triggered.connect(self._open_folder)
        open_gguf = QAction("Open &GGUF file…", self, shortcut=QKeySequence("Ctrl+Shift+O"))
        open_gguf.triggered.connect(self._open_gguf)
        hub = QAction("Load cached &hub id…", self)
        hub.triggered.connect(self._open_hub_id)
        for action in (open_folder, open_gguf, hub):
            model_menu.addAction(action)
            file_menu.addAction(action)
        file_menu.addSeparator()
        export_png = QAction("Save window as &PNG…", self, shortcut=QKeySequence("Ctrl+Shift+S"))
        export_png.triggered.connect(self._save_png)
        export_npz = QAction("Export run as .&npz…", self, shortcut=QKeySequence("Ctrl+E"))
        export_npz.triggered.connect(self._export_npz)
        file_menu.addAction(export_npz)
        file_menu.addAction(export_png)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

        view_menu = self.menuBar().addMenu("&View")
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        reset = QAction("&Reset layout", self)
        reset.triggered.connect(lambda: self.restoreState(self._default_state, LAYOUT_VERSION))
        view_menu.addAction(reset)
        run_menu = self.menuBar().addMenu("&Run")
        run_now = QAction("Run prompt", self, shortcut=QKeySequence("F5"))
        run_now.triggered.connect(self.prompt_panel.run_now)
        auto = QAction("Run while typing", self, checkable=True, checked=True)
        auto.toggled.connect(lambda on: setattr(self.prompt_panel, "auto_run", on))
        run_menu.addAction(run_now)
        run_menu.addAction(auto)

    def _wire(self) -> None:
        c = self.controller
        self.prompt_panel.run_requested.connect(self._run_prompt)
        self.tokens_panel.token_selected.connect(c.select_token)
        self.attention_panel.token_selected.connect(c.select_token)
        self.attention_panel.head_selected.connect(c.select_head)
        self.attention_panel.options_changed.connect(lambda o: c.set_options(**o))
        self.positional_panel.options_changed.connect(lambda o: c.set_options(**o))
        c.run_changed.connect(self._show_run)
        c.selection_changed.connect(self._show_selection)
        c.model_changed.connect(self._show_model)
        c.load_state.connect(self._show_load_state)
        c.running_changed.connect(lambda on: self.running_label.setText("Running…" if on else ""))
        c.error.connect(self.banner.show_message)
        c.status.connect(lambda text: self.statusBar().showMessage(text, 6000))

    # -- actions ----------------------------------------------------------------------------
    def load_model(self, spec: str, **options: bool) -> None:
        self.controller.load_model(spec, **options)

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
        text, ok = QInputDialog.getText(self, "Hub id", "Hugging Face hub id already in the local cache:")
        if ok and text.strip():
            self.load_model(text.strip())

    def _save_png(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save window as PNG", "attention-explorer.png", "PNG (*.png)")
        if path and not self.grab().save(path, "PNG"):
            self.banner.show_message(f"Could not write {path}.")

    def _export_npz(self) -> None:
        result = self.controller.result
        if result is None:
            self.banner.show_message("Nothing to export yet: run a prompt first.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export run", "run.npz", "NumPy archive (*.npz)")
        if path:
            from explorer.core.result_io import save_npz

            try:
                save_npz(result, path)
            except OSError as exc:
                self.banner.show_message(f"Could not write {path}: {exc}")

    # -- controller → panels -------------------------------------------------------------------
    def _show_run(self, view: RunView) -> None:
        result = view.result
        self.prompt_panel.show_result(result)
        self.tokens_panel.show_result(result)
        self.attention_panel.show_run(view, self.controller.selection)
        self.probability_panel.show_result(result)
        self.positional_panel.show_result(result)

    def _show_selection(self, selection: Selection) -> None:
        self.tokens_panel.show_selection(selection)
        self.attention_panel.show_selection(selection)
        self.probability_panel.show_selection(selection)
        self.positional_panel.show_selection(selection)
        if self.controller.view is not None:
            self.run_displayed.emit(self.controller.view)

    def _show_model(self, info: ModelInfo) -> None:
        self.prompt_panel.show_model(info)
        gqa = f", {info.kv_heads} kv heads" if info.kv_heads != info.heads else ""
        self.model_label.setText(f"{info.name}: {info.layers} layers × {info.heads} heads{gqa}, "
                                 f"{info.positional_kind} positions")
        self.settings.setValue("model/last", self.controller.model_spec or info.name)

    def _show_load_state(self, loading: bool, fraction: float, stage: str) -> None:
        self.progress.setVisible(loading)
        self.cancel_button.setVisible(loading)
        self.progress.setValue(int(fraction * 1000))
        self.progress.setFormat(f"{stage} %p%")
        self.statusBar().showMessage(stage, 0 if loading else 5000)

    # -- settings ------------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        if isinstance(state, QByteArray):
            self.restoreState(state, LAYOUT_VERSION)

    def last_prompt(self) -> str:
        value = self.settings.value("prompt/last", "")
        return value if isinstance(value, str) and value else DEFAULT_PROMPT

    def last_model(self) -> str | None:
        value = self.settings.value("model/last", "")
        return value if isinstance(value, str) and value else None

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt naming
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState(LAYOUT_VERSION))
        self.settings.setValue("prompt/last", self.prompt_panel.text())
        self.settings.sync()
        self.controller.shutdown()
        super().closeEvent(event)
