"""The Model menu: embedded models, Recent models, open actions, Device and Precision.

The current model carries a check mark (embedded or recent); every model that loaded is
remembered in QSettings (``model/recent``, newest first). Device and precision are kept
in ``model/device`` and ``model/dtype``, added to every load through
``window.model_options``, and changing either reloads the current model. A device the
machine lacks falls back to the CPU (the loader's ``device_fallback``) and the status bar
says so.
"""

from __future__ import annotations

from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu

EMBEDDED = (("smollm2", "SmolLM2-135M-Instruct (decoder, RoPE)"),
            ("gemma3", "Gemma 3 270M base (sliding window + full layers)"),
            ("minilm", "all-MiniLM-L6-v2 (encoder, learned positions)"))
DEVICES = (("auto", "Auto (CUDA, then MPS, then CPU)"), ("cpu", "CPU"), ("cuda", "CUDA GPU"),
           ("mps", "Apple MPS"))
DTYPES = (("float32", "float32 (exact)"), ("bfloat16", "bfloat16 (half the memory)"),
          ("float16", "float16 (half the memory)"))
RECENT_LIMIT = 10
RECENT_KEY = "model/recent"


def fallback_note(requested: str, used: str) -> str:
    """What to tell the user when the model runs elsewhere than asked ('' when it does not)."""
    kind = requested.split(":", 1)[0]
    if kind in ("auto", used.split(":", 1)[0]):
        return ""
    name = dict(DEVICES).get(kind, kind)
    return f"{name} is not available on this machine; the model runs on the CPU instead."


class ModelMenu:
    """Fills ``window.model_menu`` and keeps the check marks on the current model."""

    def __init__(self, window) -> None:
        self.window = window
        self.settings = window.settings
        self.controller = window.controller
        menu = window.model_menu
        self.model_actions: dict[str, QAction] = {}
        for alias, title in EMBEDDED:
            action = self._checkable(menu, title, lambda _=False, a=alias: window.load_model(a))
            self.model_actions[alias] = action
        menu.addSeparator()
        self.recent_menu = QMenu("&Recent models", menu)
        self.recent_menu.aboutToShow.connect(self.fill_recent)
        menu.addMenu(self.recent_menu)
        for action in window.open_model_actions:
            menu.addAction(action)
        menu.addSeparator()
        self.device_menu = menu.addMenu("&Device")
        self.device_actions = self._choices(self.device_menu, DEVICES, self.set_device)
        self.dtype_menu = menu.addMenu("&Precision")
        self.dtype_actions = self._choices(self.dtype_menu, DTYPES, self.set_dtype)
        self.device = self._saved("model/device", DEVICES, "auto")
        self.dtype = self._saved("model/dtype", DTYPES, "float32")
        self._apply_options()
        self.controller.model_changed.connect(self._on_model_changed)
        menu.aboutToShow.connect(self.update_checks)

    # -- construction ---------------------------------------------------------------------
    @staticmethod
    def _checkable(menu: QMenu, text: str, slot) -> QAction:
        action = QAction(text, menu)
        action.setCheckable(True)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _choices(self, menu: QMenu, choices, setter) -> dict[str, QAction]:
        group = QActionGroup(menu)
        group.setExclusive(True)
        actions = {}
        for key, text in choices:
            action = self._checkable(menu, text, lambda _=False, k=key: setter(k))
            group.addAction(action)
            actions[key] = action
        return actions

    def _saved(self, key: str, choices, default: str) -> str:
        value = self.settings.value(key, default)
        return value if value in dict(choices) else default

    # -- device and precision --------------------------------------------------------------
    def set_options(self, device: str | None = None, dtype: str | None = None,
                    reload: bool = True) -> None:
        """Choose where the weights live and their precision (menu, or --device/--dtype);
        reloads the current model when either changed."""
        changed = False
        if device is not None and device != self.device:
            self.device, changed = device, True
            self.settings.setValue("model/device", device)
        if dtype is not None and dtype != self.dtype:
            self.dtype, changed = dtype, True
            self.settings.setValue("model/dtype", dtype)
        self._apply_options()
        spec = self.controller.model_spec
        if changed and reload and spec:
            self.window.load_model(spec)

    def set_device(self, device: str) -> None:
        self.set_options(device=device)

    def set_dtype(self, dtype: str) -> None:
        self.set_options(dtype=dtype)

    def _apply_options(self) -> None:
        self.window.model_options.update(device=self.device, dtype=self.dtype, device_fallback=True)
        for key, action in self.device_actions.items():
            action.setChecked(key == self.device)
        for key, action in self.dtype_actions.items():
            action.setChecked(key == self.dtype)

    # -- current and recent models ------------------------------------------------------------
    def recent(self) -> list[str]:
        value = self.settings.value(RECENT_KEY, [])
        if isinstance(value, str):
            value = [value]
        return [v for v in (value or []) if isinstance(v, str) and v]

    def remember(self, spec: str) -> None:
        specs = [spec] + [s for s in self.recent() if s != spec]
        self.settings.setValue(RECENT_KEY, specs[:RECENT_LIMIT])

    def fill_recent(self) -> None:
        self.recent_menu.clear()
        specs = self.recent()
        if not specs:
            self.recent_menu.addAction("(none yet)").setEnabled(False)
        current = self.controller.model_spec
        for spec in specs:
            action = self._checkable(self.recent_menu, spec,
                                     lambda _=False, s=spec: self.window.load_model(s))
            action.setChecked(spec == current)

    def update_checks(self) -> None:
        current = (self.controller.model_spec or "").strip().lower()
        for alias, action in self.model_actions.items():
            action.setChecked(alias == current)

    def _on_model_changed(self, info) -> None:
        spec = self.controller.model_spec or info.name
        self.remember(spec)
        self.update_checks()
        note = fallback_note(self.device, info.device)
        if note:
            self.window.statusBar().showMessage(note, 15000)
        self.window.model_label.set_note(note or "")


def install(window) -> ModelMenu:
    return ModelMenu(window)
