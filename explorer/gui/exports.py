"""Export actions: panel images (PNG, SVG, clipboard), attention and bars as CSV, run as .npz.

Every export carries its ExportContext (model, prompt hash, position, layer, head, view
options): CSV header lines, PNG text chunks (one per context field, plus "Description")
and a caption strip drawn under the image, the SVG's <desc> and caption, and the
archive's ``export_context``.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QImage, QPaintDevice, QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QWidget

from explorer.core.export import (
    ExportContext,
    selected_attention,
    write_attention_csv,
    write_probabilities_csv,
)
from explorer.core.result_io import save_npz
from explorer.core.selection import Selection
from explorer.core.types import RunResult

CAPTION_PADDING = 6
CAPTION_BACKGROUND = "#f3f4f6"
CAPTION_COLOR = "#1f2937"


def _caption_font() -> QFont:
    font = QGuiApplication.font()
    font.setPointSizeF(max(font.pointSizeF() * 0.9, 7.0))
    return font


def caption_height(context: ExportContext | None) -> int:
    """Pixels the caption strip adds under an image (0 without a context)."""
    if context is None:
        return 0
    from PySide6.QtGui import QFontMetrics

    return QFontMetrics(_caption_font()).height() + 2 * CAPTION_PADDING


def _draw_caption(painter: QPainter, context: ExportContext, top: int, width: int) -> None:
    height = caption_height(context)
    painter.fillRect(QRect(0, top, width, height), QColor(CAPTION_BACKGROUND))
    painter.setPen(QColor(CAPTION_COLOR))
    painter.setFont(_caption_font())
    area = QRect(CAPTION_PADDING, top, width - 2 * CAPTION_PADDING, height)
    text = painter.fontMetrics().elidedText(context.caption(), Qt.ElideRight, area.width())
    painter.drawText(area, int(Qt.AlignVCenter | Qt.AlignLeft), text)


def captioned_image(widget: QWidget, context: ExportContext | None = None) -> QImage:
    """The widget as drawn, with the caption strip under it and the context as text chunks."""
    shot = widget.grab().toImage()
    if context is None:
        return shot
    image = QImage(shot.width(), shot.height() + caption_height(context), QImage.Format_ARGB32)
    image.setDevicePixelRatio(1.0)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.drawImage(QPoint(0, 0), shot)
    _draw_caption(painter, context, shot.height(), shot.width())
    painter.end()
    image.setText("Title", "Attention Explorer")
    image.setText("Description", context.caption())
    for key, value in context.fields():
        image.setText(key, value)
    return image


def save_png(widget: QWidget, path: str | Path, context: ExportContext | None = None) -> bool:
    return captioned_image(widget, context).save(str(path), "PNG")


def _render(widget: QWidget, device: QPaintDevice, context: ExportContext | None) -> bool:
    painter = QPainter()
    if not painter.begin(device):
        return False
    try:
        widget.render(painter, QPoint(0, 0))
        if context is not None:
            _draw_caption(painter, context, widget.height(), widget.width())
    finally:
        painter.end()
    return True


def save_svg(widget: QWidget, path: str | Path, context: ExportContext | None = None,
             title: str = "Attention Explorer") -> bool:
    """Render the widget as drawn into an SVG file (caption below, context in <desc>)."""
    generator = QSvgGenerator()
    generator.setFileName(str(path))
    size = QSize(widget.width(), widget.height() + caption_height(context))
    generator.setSize(size)
    generator.setViewBox(QRect(0, 0, size.width(), size.height()))
    generator.setTitle(title)
    if context is not None:
        generator.setDescription("\n".join(f"{k}: {v}" for k, v in context.fields()))
    if not _render(widget, generator, context):
        return False
    return Path(path).is_file() and Path(path).stat().st_size > 0


def copy_image(widget: QWidget, context: ExportContext | None = None) -> None:
    QGuiApplication.clipboard().setImage(captioned_image(widget, context))


def save_attention_csv(result: RunResult, selection: Selection, path: str | Path) -> Path:
    """The map the attention panel draws for ``selection`` (one head or the layer's mean,
    with *Hide first token* applied if on), with the context lines naming which."""
    context = ExportContext.of(result, selection)
    return write_attention_csv(selected_attention(result, selection), result, path, context)


def save_probabilities_csv(result: RunResult, selection: Selection | int, path: str | Path) -> Path:
    """The bars after the selected position (``selection`` may be a bare position)."""
    if isinstance(selection, int):
        selection = Selection(token=selection)
    context = ExportContext.of(result, selection)
    return write_probabilities_csv(result, context.position, path, context)


def save_run(result: RunResult, path: str | Path, context: ExportContext | None = None) -> Path:
    return save_npz(result, path, None if context is None else dict(context.fields()))
