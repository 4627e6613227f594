import numpy as np

from explorer.core.thumbnails import mosaic, pool_max, tile_at, tile_origin


def test_pool_max_keeps_peaks():
    square = np.zeros((10, 10), np.float32)
    square[7, 3] = 1.0
    pooled = pool_max(square, 5)
    assert pooled.shape == (5, 5)
    assert pooled[3, 1] == 1.0 and pooled.sum() == 1.0


def test_mosaic_places_each_head_and_tile_at_inverts_it():
    att = np.zeros((2, 4, 3, 3), np.float16)
    for layer in range(2):
        for head in range(4):
            att[layer, head, 0, 0] = 0.5
            att[layer, head, 2, 2] = 0.25 * (1 + head) / 4
    image, c = mosaic({"attentions": att}, cell=8, gap=1, group_gap=2, group_size=2)
    assert c == 3
    assert image.shape == (2 * 4, 4 * 4 + 2)
    for layer in range(2):
        for head in range(4):
            y, x = tile_origin(layer, head, c, 1, 2, 2)
            tile = image[y : y + c, x : x + c]
            assert tile[0, 0] == 1.0  # normalised by the tile's own maximum
            assert np.isclose(tile[2, 2], (0.25 * (1 + head) / 4) / 0.5, atol=1e-3)
            assert tile_at(y + 1, x + 1, 2, 4, c, 1, 2, 2) == (layer, head)
    assert tile_at(100, 0, 2, 4, c, 1, 2, 2) is None
