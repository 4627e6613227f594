"""The sampling controls: max new tokens, temperature, top-k, top-p, repetition penalty,
seed (or random), stop sequences, greedy; read as one SamplingSettings."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QGridLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from explorer.core import sampling
from explorer.core.sampling import SamplingSettings
from explorer.gui.playground.formatting import format_stops, parse_stops

MAX_SEED = 2**31 - 1


def _double(low: float, high: float, step: float, value: float, decimals: int = 2) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setDecimals(decimals)
    box.setValue(value)
    return box


class SamplingControls(QWidget):
    """A compact grid of the generation settings."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.max_new_tokens = QSpinBox()
        self.max_new_tokens.setRange(1, 4096)
        self.max_new_tokens.setValue(sampling.DEFAULT_MAX_NEW_TOKENS)
        self.temperature = _double(0.0, 5.0, 0.1, sampling.DEFAULT_TEMPERATURE)
        self.temperature.setToolTip("Divides the logits; 0 is greedy")
        self.top_k = QSpinBox()
        self.top_k.setRange(0, 100000)
        self.top_k.setValue(sampling.DEFAULT_TOP_K)
        self.top_k.setSpecialValueText("off")
        self.top_k.setToolTip("Keep the k most likely tokens (0 = off)")
        self.top_p = _double(0.01, 1.0, 0.05, sampling.DEFAULT_TOP_P)
        self.top_p.setToolTip("Nucleus: keep the smallest set reaching this mass (1 = off)")
        self.repetition_penalty = _double(0.5, 3.0, 0.05, sampling.DEFAULT_REPETITION_PENALTY)
        self.repetition_penalty.setToolTip("Penalise every token already in the sequence (1 = off)")
        self.seed = QSpinBox()
        self.seed.setRange(0, MAX_SEED)
        self.seed.setValue(0)
        self.seed.setToolTip("The seed of the last run (replay it with 'random' off). "
                             "Typing a seed turns 'random' off.")
        self.random_seed = QCheckBox("random")
        self.random_seed.setToolTip("Draw a fresh seed each run; the one used is shown here")
        self.random_seed.setChecked(True)
        self.stop = QLineEdit()
        self.stop.setPlaceholderText(r"e.g. \n\n|END")
        self.stop.setToolTip(r"Stop sequences, split on |; \n = newline")
        self.greedy = QCheckBox("greedy")
        self.greedy.setToolTip("Always take the most likely token")

        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(3)
        cells = (("Max new tokens", self.max_new_tokens), ("Temperature", self.temperature),
                 ("Top-k", self.top_k), ("Top-p", self.top_p),
                 ("Rep. penalty", self.repetition_penalty))
        for i, (label, widget) in enumerate(cells):
            grid.addWidget(QLabel(label), i // 2, (i % 2) * 2)
            grid.addWidget(widget, i // 2, (i % 2) * 2 + 1)
        # the seed gets a row of its own (its box is wide): the grid stays ~320 px narrow
        seed_row = QWidget()
        seed_layout = QGridLayout(seed_row)
        seed_layout.setContentsMargins(0, 0, 0, 0)
        seed_layout.addWidget(self.seed, 0, 0)
        seed_layout.addWidget(self.random_seed, 0, 1)
        seed_layout.setColumnStretch(0, 1)
        grid.addWidget(self.greedy, 2, 2, 1, 2)
        grid.addWidget(QLabel("Seed"), 3, 0)
        grid.addWidget(seed_row, 3, 1, 1, 3)
        grid.addWidget(QLabel("Stop"), 4, 0)
        grid.addWidget(self.stop, 4, 1, 1, 3)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)

        self.greedy.toggled.connect(self._update_enabled)
        self.seed.valueChanged.connect(lambda _v: self.random_seed.setChecked(False))
        self._update_enabled()

    def _update_enabled(self) -> None:
        """Temperature, top-k and top-p do nothing when greedy. The seed stays enabled with
        "random" on: it shows the seed the last run used, ready to be replayed."""
        sampled = not self.greedy.isChecked()
        for widget in (self.temperature, self.top_k, self.top_p):
            widget.setEnabled(sampled)

    def settings(self) -> SamplingSettings:
        """The settings as shown (seed None when "random" is on)."""
        return SamplingSettings(
            max_new_tokens=self.max_new_tokens.value(),
            temperature=round(self.temperature.value(), 4),
            top_k=self.top_k.value(),
            top_p=round(self.top_p.value(), 4),
            repetition_penalty=round(self.repetition_penalty.value(), 4),
            seed=None if self.random_seed.isChecked() else self.seed.value(),
            stop=parse_stops(self.stop.text()),
            greedy=self.greedy.isChecked(),
        )

    def show_used_seed(self, seed: int | None) -> None:
        """Put the seed a run actually used into the box (untick "random" to replay it)."""
        if seed is not None and 0 <= seed <= MAX_SEED:
            self.seed.blockSignals(True)  # showing a seed is no request to replay it
            self.seed.setValue(int(seed))
            self.seed.blockSignals(False)

    def to_dict(self) -> dict[str, Any]:
        data = self.settings().to_dict()
        data["seed"] = self.seed.value()
        data["random_seed"] = self.random_seed.isChecked()
        return data

    def apply_dict(self, data: dict[str, Any]) -> None:
        """Set the controls from ``to_dict()`` output; unknown or bad values are skipped."""
        def number(key: str, setter: Any, kind: type) -> None:
            value = data.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                setter(kind(value))

        number("max_new_tokens", self.max_new_tokens.setValue, int)
        number("temperature", self.temperature.setValue, float)
        number("top_k", self.top_k.setValue, int)
        number("top_p", self.top_p.setValue, float)
        number("repetition_penalty", self.repetition_penalty.setValue, float)
        number("seed", self.show_used_seed, int)
        if isinstance(data.get("random_seed"), bool):
            self.random_seed.setChecked(data["random_seed"])
        if isinstance(data.get("greedy"), bool):
            self.greedy.setChecked(data["greedy"])
        stops = data.get("stop")
        if isinstance(stops, list) and all(isinstance(s, str) for s in stops):
            self.stop.setText(format_stops(stops))
