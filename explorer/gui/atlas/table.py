"""The head-score table: one row per head, sortable by any column (numerically)."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from explorer.core.head_scores import CSV_COLUMNS, SCORE_NAMES, HeadScores

SORT_ROLE = Qt.UserRole
"""The number a column sorts by (NaN sorts below every score)."""
HEADERS = {"kv_head": "kv head", "first_token": "first token", "previous_token": "previous",
           "self": "self", "duplicate_token": "duplicate", "induction": "induction",
           "entropy_bits": "entropy (bits)"}
TOOLTIPS = {
    "first_token": "mean over queries of A[i, 0]",
    "previous_token": "mean over i ≥ 1 of A[i, i−1]",
    "self": "mean over queries of A[i, i]",
    "duplicate_token": "queries whose token occurred earlier (latest at j): mean of A[i, j]",
    "induction": "queries whose token occurred earlier (latest at j): mean of A[i, j+1]",
    "entropy_bits": "mean over queries of −Σ A·log₂ A",
}

Index = QModelIndex | QPersistentModelIndex


class HeadScoresModel(QAbstractTableModel):
    """CSV_COLUMNS as columns; rows = heads in layer-major order."""

    def __init__(self) -> None:
        super().__init__()
        self.scores: HeadScores | None = None
        self._rows: list[dict[str, float | int]] = []
        self._display: list[list[str]] = []
        self._sort_keys: list[list[float]] = []

    def set_scores(self, scores: HeadScores | None) -> None:
        self.beginResetModel()
        self.scores = scores
        self._rows = scores.rows() if scores is not None else []
        # what data() returns, computed once: the proxy asks thousands of times per sort
        self._display = [[_display(name, row[name]) for name in CSV_COLUMNS] for row in self._rows]
        self._sort_keys = [[_sort_key(row[name]) for name in CSV_COLUMNS] for row in self._rows]
        self.endResetModel()

    def head_at(self, row: int) -> tuple[int, int]:
        data = self._rows[row]
        return int(data["layer"]), int(data["head"])

    def row_of(self, layer: int, head: int) -> int | None:
        if self.scores is None:
            return None
        layers, heads = self.scores.shape
        return layer * heads + head if 0 <= layer < layers and 0 <= head < heads else None

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        return 0 if parent.isValid() else len(CSV_COLUMNS)

    def data(self, index: Index, role: int = Qt.DisplayRole) -> Any:
        if not index.isValid():
            return None
        if role == Qt.DisplayRole:
            return self._display[index.row()][index.column()]
        if role == SORT_ROLE:
            return self._sort_keys[index.row()][index.column()]
        if role == Qt.TextAlignmentRole:
            return int(Qt.AlignRight | Qt.AlignVCenter)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.DisplayRole) -> Any:  # noqa: N802
        if orientation != Qt.Horizontal:
            return None
        name = CSV_COLUMNS[section]
        if role == Qt.DisplayRole:
            return HEADERS.get(name, name)
        if role == Qt.ToolTipRole:
            return TOOLTIPS.get(name, name)
        return None


def _display(name: str, value: float | int) -> str:
    if name in SCORE_NAMES:
        return "–" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def _sort_key(value: float | int) -> float:
    """NaN sorts below every score."""
    return -math.inf if isinstance(value, float) and math.isnan(value) else float(value)
