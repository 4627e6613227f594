"""Every export from the window, read back and compared with the run on screen."""

import dataclasses
import hashlib
import re
import xml.etree.ElementTree as ET

import numpy as np
from PySide6.QtGui import QColor, QImage

from explorer.core.export import PROBABILITY_COLUMNS, read_csv_export
from explorer.core.result_io import load_npz, read_export_context
from explorer.gui import exports
from tests.gui.conftest import load_and_run

PROMPT = "The cat sat on the mat."


def export(window, method, path):
    """Run a File ▸ Export action as a user would, the save dialog answering ``path``."""
    window._ask_path = lambda *args: str(path)
    method()
    assert path.is_file(), window.banner.message
    return path


def select(window, layer, head, token, **options):
    window.controller.select_head(layer, head)
    window.controller.set_options(**options)
    window.controller.select_token(token)


def test_attention_csv_is_the_drawn_map_with_its_view_options(qtbot, window, tmp_path):
    view = load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    select(window, 1, 2, 4, hide_first=True)
    header, rows = read_csv_export(export(window, window._export_attention_csv, tmp_path / "a.csv"))
    # independently: the stored float16 map of layer 1, head 2, key 0 removed, rows rescaled
    expected = view.result.attentions[1, 2].astype(np.float64)
    expected[:, 0] = 0
    sums = expected.sum(-1, keepdims=True)
    expected = np.divide(expected, sums, out=np.zeros_like(expected), where=sums > 0)
    values = np.array([r[1:] for r in rows[1:]], dtype=float)
    np.testing.assert_allclose(values, expected, atol=1e-6)
    np.testing.assert_allclose(values, window.attention_panel.shown_map, atol=1e-6)  # as drawn
    tokens = view.result.tokens
    assert rows[0][1:] == [f"{i}:{t.replace('Ġ', '␣')}" for i, t in enumerate(tokens)]
    assert header["layer"] == "1" and header["head"] == "2" and header["position"] == "4"
    assert header["view_hide_first_token"] == "yes" and "renormalised" in header["values"]
    assert header["prompt_sha256"] == hashlib.sha256(PROMPT.encode()).hexdigest()
    assert header["model"] == "tiny-gpt2"


def test_probability_csv_has_readable_tokens_and_the_position(qtbot, window, tmp_path):
    view = load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    select(window, 0, 0, 3)
    header, rows = read_csv_export(export(window, window._export_probabilities_csv, tmp_path / "p.csv"))
    assert header["position"] == "3" and tuple(rows[0]) == PROBABILITY_COLUMNS
    tokenizer = window.controller.worker.model.tokenizer
    result = view.result
    assert len(rows) - 1 == result.top_k
    for k, row in enumerate(rows[1:]):
        record = dict(zip(rows[0], row, strict=True))
        token_id = int(record["token_id"])
        assert token_id == int(result.topk_ids[3, k]) and record["position"] == "3"
        text = tokenizer.decode([token_id])  # the tokenizer's own text for the token
        if "\ufffd" in text:  # part of a UTF-8 character: its bytes, as the panels show them
            assert re.fullmatch(r"(<[0-9A-F]{2}>)+", record["token"]), record
        else:
            assert record["token"] == text
        assert record["piece"] == tokenizer.convert_ids_to_tokens(token_id)
        assert float(record["probability"]) == np.float32(result.topk_probs[3, k])
        assert record["actual_next"] == str(int(token_id == int(result.token_ids[4])))


def test_png_has_a_caption_and_its_context_and_is_not_blank(qtbot, window, tmp_path):
    load_and_run(qtbot, window, "tiny-llama", PROMPT)
    select(window, 2, 1, 5)
    window.stages.flush()  # as the Export menu does: panels still to be painted are painted
    panel = window.attention_panel
    path = tmp_path / "attention.png"
    assert exports.save_png(panel, path, window.export_context())
    image = QImage(str(path))
    strip = exports.caption_height(window.export_context())
    assert strip > 10
    assert (image.width(), image.height()) == (panel.width(), panel.height() + strip)
    assert image.text("model") == "tiny-llama" and image.text("layer") == "2"
    assert image.text("head") == "1" and image.text("position") == "5"
    assert "tiny-llama" in image.text("Description")
    body_colours = {image.pixel(x, y) for x in range(0, image.width(), 7)
                    for y in range(0, image.height() - strip, 7)}
    assert len(body_colours) > 20  # the heat maps, not an empty grey widget
    caption = [QColor(image.pixel(x, y)).lightness() for x in range(image.width())
               for y in range(image.height() - strip, image.height())]
    assert min(caption) < 100 < max(caption)  # dark text on the light strip


def test_svg_parses_and_names_its_context(qtbot, window, tmp_path):
    load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    select(window, 1, 3, 2, head_mean=True)
    path = tmp_path / "p.svg"
    assert exports.save_svg(window.probability_panel, path, window.export_context())
    root = ET.parse(path).getroot()
    ns = {"svg": "http://www.w3.org/2000/svg"}
    description = root.find("svg:desc", ns).text
    assert "model: tiny-gpt2" in description and "head: mean" in description
    assert "view_mean_over_heads: yes" in description
    assert root.find("svg:title", ns).text == "Attention Explorer"
    assert len(root.findall(".//svg:g", ns)) > 3  # drawn content, not an empty document


def test_npz_round_trip_of_every_array(qtbot, window, tmp_path):
    view = load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    select(window, 1, 0, 2)
    path = export(window, window._export_npz, tmp_path / "run.npz")
    result, back = view.result, load_npz(path)
    for field in dataclasses.fields(result):
        a, b = getattr(result, field.name), getattr(back, field.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and a.shape == b.shape, field.name
            np.testing.assert_array_equal(a, b, err_msg=field.name)
        else:
            assert a == b, field.name
    context = read_export_context(path)
    assert context["layer"] == "1" and context["position"] == "2" and context["model"] == "tiny-gpt2"


def test_copy_image_puts_the_captioned_window_on_the_clipboard(qtbot, window):
    from PySide6.QtGui import QGuiApplication

    load_and_run(qtbot, window, "tiny-gpt2", PROMPT)
    exports.copy_image(window.tokens_panel, window.export_context())
    image = QGuiApplication.clipboard().image()
    assert image.height() == window.tokens_panel.height() + exports.caption_height(window.export_context())
