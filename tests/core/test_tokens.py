from explorer.core.tokens import _BYTE_DECODER, display_piece


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


def test_control_characters_show_as_hex_bytes_so_labels_csv_and_svg_can_carry_them():
    encode = {value: char for char, value in _BYTE_DECODER.items()}
    assert display_piece(encode[0x1E]) == "<1E>"  # record separator: invalid in XML
    assert display_piece(encode[0x7F] + "a") == "<7F>a"
    assert display_piece("x\x00y", "plain") == "x<00>y"
    assert display_piece(encode[0x0A] + encode[0x09]) == "↵⇥"  # these keep their marks
