"""Export actions: panel images (PNG, SVG, clipboard), attention and bars as CSV, run as .npz."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, QRect, QSize
from PySide6.QtGui import QGuiApplication, QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QWidget

from explorer.core.export import write_attention_csv, write_probabilities_csv
from explorer.core.result_io import save_npz
from explorer.core.types import RunResult


def save_png(widget: QWidget, path: str | Path) -> bool:
    return widget.grab().save(str(path), "PNG")


def save_svg(widget: QWidget, path: str | Path, title: str = "Attention Explorer") -> bool:
    """Render the widget as drawn into an SVG file."""
    generator = QSvgGenerator()
    generator.setFileName(str(path))
    size = widget.size()
    generator.setSize(QSize(size.width(), size.height()))
    generator.setViewBox(QRect(0, 0, size.width(), size.height()))
    generator.setTitle(title)
    painter = QPainter()
    if not painter.begin(generator):
        return False
    try:
        widget.render(painter, QPoint(0, 0))
    finally:
        painter.end()
    return Path(path).is_file() and Path(path).stat().st_size > 0


def copy_image(widget: QWidget) -> None:
    QGuiApplication.clipboard().setPixmap(widget.grab())


def save_attention_csv(panel, result: RunResult, path: str | Path) -> Path:
    """The map currently drawn large (head, head mean, hide-first applied) as CSV."""
    return write_attention_csv(panel.selected_map(), result, path)


def save_probabilities_csv(result: RunResult, position: int, path: str | Path) -> Path:
    return write_probabilities_csv(result, position, path)


def save_run(result: RunResult, path: str | Path) -> Path:
    return save_npz(result, path)
