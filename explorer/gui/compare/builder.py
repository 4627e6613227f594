"""The builder: template, demonstration pool, query, label words, seed -> prompt columns."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from explorer.core import fewshot
from explorer.core.compare import DEFAULT_BUILDER_SHOTS, builder_prompts
from explorer.core.errors import ExplorerError
from explorer.core.fewshot import BuiltPrompt, FewShotTemplate, LabelledExample

DEFAULT_QUERY = "I don't like this chair."  # the course notes' example


class BuilderPanel(QWidget):
    """Parts of the prompts; ``build_requested`` when the zero/one/few-shot button is pressed."""

    build_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.template_path = QLineEdit()
        self.template_path.setPlaceholderText("course format (default)")
        self.template_path.setToolTip("Template file (=== instruction / demonstration / query "
                                      "=== sections, see docs/fewshot.md); empty = the course format")
        self.template_path.editingFinished.connect(self._template_changed)
        self.instruction = QLineEdit()
        self.instruction.setPlaceholderText("(none)")
        self.instruction.setToolTip("Written once before the demonstrations")
        self.demos_path = QLineEdit()
        self.demos_path.setPlaceholderText("shipped demos.csv (default)")
        self.demos_path.setToolTip("Demonstration pool: CSV with columns text,label")
        self.query = QLineEdit(DEFAULT_QUERY)
        self.labels = QLineEdit(",".join(fewshot.DEFAULT_LABELS))
        self.labels.setToolTip("Label words, comma-separated")
        self.case_box = QCheckBox("Any case")
        self.case_box.setChecked(True)
        self.case_box.setToolTip("Also sum the label words' lower / capitalised / upper case forms "
                                 "that are one token (e.g. ' negative' for Negative), in the "
                                 "columns and in the evaluation; the summed tokens are named")
        self.seed = QSpinBox()
        self.seed.setRange(0, 1_000_000)
        self.seed.setToolTip("Seed for choosing the demonstrations (mixed labels, reproducible)")
        self.shots = QLineEdit(",".join(map(str, DEFAULT_BUILDER_SHOTS)))
        self.shots.setMaximumWidth(90)
        self.shots.setToolTip("Demonstrations per column (2 to 6 columns)")
        self.build_button = QPushButton("Zero / one / few-shot")
        self.build_button.setToolTip("Make one column per number of demonstrations")
        self.build_button.clicked.connect(self.build_requested)

        grid = QGridLayout(self)
        grid.setContentsMargins(4, 4, 4, 4)
        grid.addWidget(QLabel("Template"), 0, 0)
        grid.addLayout(_with_browse(self.template_path, self._browse_template), 0, 1)
        grid.addWidget(QLabel("Instruction"), 0, 2)
        grid.addWidget(self.instruction, 0, 3)
        grid.addWidget(QLabel("Demonstrations"), 0, 4)
        grid.addLayout(_with_browse(self.demos_path, self._browse_demos), 0, 5)
        grid.addWidget(QLabel("Query"), 1, 0)
        grid.addWidget(self.query, 1, 1)
        grid.addWidget(QLabel("Labels"), 1, 2)
        labels_row = QHBoxLayout()
        labels_row.addWidget(self.labels, 1)
        labels_row.addWidget(self.case_box)
        grid.addLayout(labels_row, 1, 3)
        row = QHBoxLayout()
        row.addWidget(QLabel("Seed"))
        row.addWidget(self.seed)
        row.addWidget(QLabel("Shots"))
        row.addWidget(self.shots)
        row.addWidget(self.build_button, 1)
        grid.addWidget(QLabel(""), 1, 4)
        grid.addLayout(row, 1, 5)
        for column in (1, 3, 5):
            grid.setColumnStretch(column, 1)

    # -- parts (raise ExplorerError with a message for the user) ---------------------------
    def base_template(self) -> FewShotTemplate:
        path = self.template_path.text().strip()
        return fewshot.read_template(Path(path)) if path else fewshot.COURSE_TEMPLATE

    def template(self) -> FewShotTemplate:
        return replace(self.base_template(), instruction=self.instruction.text())

    def label_words(self) -> tuple[str, ...]:
        return fewshot.parse_labels(self.labels.text())

    def case_insensitive(self) -> bool:
        """Sum case variants of the label words (the columns and the evaluation alike)."""
        return self.case_box.isChecked()

    def pool(self) -> tuple[LabelledExample, ...]:
        path = self.demos_path.text().strip()
        return fewshot.read_labelled_csv(Path(path) if path else fewshot.shipped("demos.csv"),
                                         self.label_words())

    def shot_counts(self) -> tuple[int, ...]:
        return fewshot.parse_shots(self.shots.text())

    def prompts(self) -> list[BuiltPrompt]:
        """One prompt per number of demonstrations (see ``core.compare.builder_prompts``)."""
        return builder_prompts(self.template(), self.pool(), self.query.text(), self.label_words(),
                               self.seed.value(), self.shot_counts())

    # -- files -------------------------------------------------------------------------
    def _template_changed(self) -> None:
        with contextlib.suppress(ExplorerError):  # reported when the columns are built
            self.instruction.setText(self.base_template().instruction)

    def _browse_template(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Template", "", "Templates (*.template *.txt *.json);;All files (*)")
        if path:
            self.template_path.setText(path)
            self._template_changed()

    def _browse_demos(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Demonstration pool", "", "CSV (*.csv);;All files (*)")
        if path:
            self.demos_path.setText(path)

    # -- session -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"template": self.template_path.text(), "instruction": self.instruction.text(),
                "demos": self.demos_path.text(), "query": self.query.text(),
                "labels": self.labels.text(), "seed": self.seed.value(), "shots": self.shots.text(),
                "case_insensitive": self.case_box.isChecked()}

    def apply_state(self, state: dict[str, Any]) -> None:
        for key, edit in (("template", self.template_path), ("instruction", self.instruction),
                          ("demos", self.demos_path), ("query", self.query),
                          ("labels", self.labels), ("shots", self.shots)):
            if isinstance(state.get(key), str):
                edit.setText(state[key])
        if isinstance(state.get("seed"), int):
            self.seed.setValue(state["seed"])
        if isinstance(state.get("case_insensitive"), bool):
            self.case_box.setChecked(state["case_insensitive"])


def _with_browse(edit: QLineEdit, slot: Any) -> QHBoxLayout:
    layout = QHBoxLayout()
    layout.setContentsMargins(0, 0, 0, 0)
    button = QPushButton("…")
    button.setMaximumWidth(28)
    button.setToolTip("Choose a file")
    button.clicked.connect(slot)
    layout.addWidget(edit, 1)
    layout.addWidget(button)
    return layout
