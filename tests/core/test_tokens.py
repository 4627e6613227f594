from explorer.core.tokens import display_piece


def test_byte_level_markers_become_visible():
    assert display_piece("Ġthe") == "␣the"
    assert display_piece("Ċ") == "↵"
    assert display_piece("ĠĠ") == "␣␣"
    assert display_piece("Ã©") == "é"  # two bytes of UTF-8 é


def test_partial_utf8_shows_hex_bytes():
    # the first two bytes of "→" (E2 86 92) as byte-level characters
    assert display_piece("âĨ") == "<E2><86>"


def test_sentencepiece_and_special_and_plain():
    assert display_piece("▁hello", "sentencepiece") == "␣hello"
    assert display_piece("<0x0A>", "sentencepiece") == "<0x0A>"
    assert display_piece("<|im_start|>") == "<|im_start|>"
    assert display_piece("[CLS]", "plain") == "[CLS]"
    assert display_piece("café", "plain") == "café"
    assert display_piece("##ing", "plain") == "##ing"
    assert display_piece("") == "∅"


def test_piece_text_is_the_plain_text_a_piece_stands_for():
    from explorer.core.tokens import piece_text

    assert piece_text("Ġis") == " is"
    assert piece_text("âĢĻ") == "’"  # E2 80 99 as byte-level characters
    assert piece_text("Ċ") == "\n"
    assert piece_text("âĨ") == "<E2><86>"  # partial UTF-8 is no text on its own
    assert piece_text("▁the", "sentencepiece") == " the"
    assert piece_text("<0x0A>", "sentencepiece") == "\n"
    assert piece_text("<|im_end|>") == "<|im_end|>"
    assert piece_text("##ing", "plain") == "##ing"
