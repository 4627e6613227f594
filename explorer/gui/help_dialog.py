"""Help ▸ Getting started: what each panel shows, the shortcuts, and the terms behind them.

The shortcut table is read from the window's own menus when the dialog opens, so it
always lists the keys that actually work.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import QSize
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QMenu, QTextBrowser, QVBoxLayout, QWidget

PANELS = (
    ("Prompt", "The text the model reads. It runs by itself after a pause in typing "
               "(Run ▸ Run while typing), or at once with Ctrl+Enter. Below it: how many "
               "tokens the text is for the loaded model."),
    ("Tokens", "The prompt cut into the model's tokens: ␣ is a space, ↵ a line break. "
               "Click one (or use ← →) to select it in every panel."),
    ("Attention", "Left: every layer × head as a thumbnail. Right: the selected head "
                  "large — row = the token that looks (query), column = the token it looks "
                  "at (key); the selected token's row is outlined. <i>Mean over heads</i> "
                  "averages the layer; <i>Hide first token</i> removes the first key and "
                  "rescales the rest, because many heads park their weight there. "
                  "See <a href='#attention'>attention</a>."),
    ("Next-token probabilities", "What the model predicts right after the selected token: "
                                 "its top guesses, with the token that really came next in "
                                 "orange and how surprising it was, in bits."),
    ("Positional encoding", "How the model knows where each token is: its own scheme "
                            "(rotary angles, learned rows …) for the selected position, or "
                            "the textbook sinusoid. See <a href='#positional'>positional "
                            "encoding</a>."),
    ("Above the panels", "A line saying what the panels show: the editor's prompt, another "
                         "text (a comparison column, generated text — <i>Copy to editor</i> "
                         "puts it in the editor), or that they are out of date and dimmed "
                         "while the edited prompt runs. Errors appear in the same place."),
    ("Tools", "<i>Playground</i> generates text token by token (click a token to inspect "
              "it); <i>Few-shot comparison</i> puts zero-, one- and few-shot prompts side by "
              "side. See <a href='#fewshot'>few-shot</a>."),
)

TERMS = (
    ("attention", "Attention",
     "Each token's vector is updated by mixing in the vectors of other tokens. How much of "
     "each is mixed in is a set of weights that sum to 1 over the tokens it may look at — "
     "one row of an attention map. A decoder such as SmolLM2 only looks back (the map is "
     "zero above the diagonal); an encoder such as MiniLM looks both ways. A layer has "
     "several heads, each with its own weights, so each can track a different relation."),
    ("positional", "Positional encoding",
     "Attention by itself ignores order: shuffle the tokens and the weights shuffle with "
     "them. So the model is told each token's position. The original Transformer added a "
     "fixed pattern of sines and cosines of different wavelengths to each token; GPT-2 and "
     "BERT learn one vector per position instead; Llama-style models such as SmolLM2 rotate "
     "queries and keys by an angle that grows with the position (RoPE), so attention "
     "depends on how far apart two tokens are."),
    ("fewshot", "Few-shot prompting (in-context learning)",
     "Putting a few solved examples in the prompt before the real question — zero-shot has "
     "none, one-shot one, few-shot several — often makes a model answer in the expected "
     "form and more accurately, without changing any weight. The examples use up context "
     "window, and small models gain less and are sensitive to which examples are chosen."),
)

DIALOG_SIZE = QSize(720, 640)
EXTRA_KEYS = (
    ("Ctrl+Enter", "Run the prompt (in the editor)"),
    ("← / →", "Previous / next token (in the token strip)"),
    ("Esc", "Cancel loading a model"),
    ("Ctrl+Shift+Enter", "Generate (in the Playground)"),
)


def _menu_shortcuts(menu: QMenu, path: str) -> list[tuple[str, str]]:
    rows = []
    for action in menu.actions():
        sub = action.menu()
        name = action.text().replace("&", "")
        if isinstance(sub, QMenu):
            rows += _menu_shortcuts(sub, f"{path} ▸ {name}")
        elif isinstance(action, QAction) and not action.shortcut().isEmpty():
            keys = action.shortcut().toString(QKeySequence.NativeText)
            rows.append((keys, f"{path} ▸ {name}"))
    return rows


def shortcuts(window: Any) -> list[tuple[str, str]]:
    """(keys, where) for every menu entry with a shortcut, then the keys outside menus."""
    rows: list[tuple[str, str]] = []
    for action in window.menuBar().actions():
        menu = action.menu()
        if isinstance(menu, QMenu):
            rows += _menu_shortcuts(menu, action.text().replace("&", ""))
    return rows + list(EXTRA_KEYS)


def getting_started_html(window: Any) -> str:
    panels = "".join(f"<dt><b>{name}</b></dt><dd>{text}</dd>" for name, text in PANELS)
    keys = "".join(f"<tr><td><code>{html.escape(k)}</code></td><td>{html.escape(w)}</td></tr>"
                   for k, w in shortcuts(window))
    terms = "".join(f"<h3><a name='{anchor}'></a>{title}</h3><p>{text}</p>"
                    for anchor, title, text in TERMS)
    return (
        "<h2>Getting started</h2>"
        "<p>Attention Explorer runs a small language model on your prompt and shows what "
        "happens inside. Load a model from the <b>Model</b> menu (SmolLM2 is a decoder that "
        "predicts the next token; MiniLM an encoder), type a prompt, and click any token, "
        "head or cell: every panel follows the same selection.</p>"
        f"<h3>The panels</h3><dl>{panels}</dl>"
        f"<h3>Shortcuts</h3><table cellspacing='4'>{keys}</table>"
        f"<h2>Terms</h2>{terms}"
    )


class GettingStartedDialog(QDialog):
    def __init__(self, window: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent or window)
        self.setWindowTitle("Getting started — Attention Explorer")
        self.browser = QTextBrowser()
        self.browser.setOpenLinks(True)  # the #anchors jump inside the page
        self.browser.setOpenExternalLinks(False)
        self.browser.setHtml(getting_started_html(window))
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
        self.resize(window.fitting_size(DIALOG_SIZE))


def show_getting_started(window: Any) -> GettingStartedDialog:
    """Open (non-modal) and return the dialog; one at a time."""
    dialog = getattr(window, "_getting_started", None)
    if dialog is None:
        dialog = GettingStartedDialog(window)
        window._getting_started = dialog
    dialog.browser.setHtml(getting_started_html(window))
    dialog.show()
    dialog.raise_()
    return dialog
