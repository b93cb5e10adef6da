"""Per-run artifacts a person reads: the labelled open-loop strip and the enlarged evaluation GIF."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image

from planet.video import LABEL_HEADER, LABEL_MARGIN, LABELLED_KEY, label_openloop, save_gif, save_labelled_png

FRAME = 8  # pixels per (square) frame of the synthetic strips


def synthetic_strip(frames: int) -> np.ndarray:
    """Truth row above model row, each frame a flat colour coding its row and column: uint8 [2F, n*F, 3]."""
    rows = []
    for row in range(2):
        tiles = [np.full((FRAME, FRAME, 3), (10 * col, 100 + 100 * row, 7), np.uint8) for col in range(frames)]
        rows.append(np.concatenate(tiles, 1))
    return np.concatenate(rows, 0)


def test_labelled_strip_keeps_the_pixels_and_marks_the_context_boundary(tmp_path: Path) -> None:
    strip, context = synthetic_strip(7), 2
    image = label_openloop(strip, context)
    assert image.size == (LABEL_MARGIN + 7 * FRAME, LABEL_HEADER + 2 * FRAME)
    pixels = np.asarray(image)
    inside = pixels[LABEL_HEADER:, LABEL_MARGIN:]
    boundary = context * FRAME  # the red line is drawn 2 px wide over the frames at x = boundary
    columns = [x for x in range(inside.shape[1]) if abs(x - boundary) > 1]
    np.testing.assert_array_equal(inside[:, columns], strip[:, columns])
    assert tuple(inside[FRAME, boundary]) == (220, 0, 0)  # the line crosses both rows
    assert tuple(inside[0, boundary]) == (220, 0, 0)
    # labels: dark text pixels left of both rows and in the header above the context and the open-loop columns
    margin = pixels[LABEL_HEADER:, :LABEL_MARGIN].min(axis=2)
    assert (margin[:FRAME] < 128).any() and (margin[FRAME:] < 128).any()
    header = pixels[:LABEL_HEADER].min(axis=2)
    assert (header[:, LABEL_MARGIN:LABEL_MARGIN + boundary] < 128).any()
    assert (header[:, LABEL_MARGIN + boundary + 2:] < 128).any()

    path = tmp_path / "openloop.png"
    save_labelled_png(path, image)
    with Image.open(path) as back:
        assert back.info[LABELLED_KEY] == "labelled, context=2"  # tools can tell it from a raw strip
        np.testing.assert_array_equal(np.asarray(back.convert("RGB")), pixels)
    assert [p.name for p in tmp_path.iterdir()] == ["openloop.png"]  # atomic: no temp file left


def test_evaluation_gif_is_enlarged_nearest_neighbour(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 4, size=(3, 4, 5, 3), dtype=np.uint8) * 80  # few colours: the GIF palette is exact
    save_gif(tmp_path / "eval.gif", frames, scale=3)
    back = iio.imread(tmp_path / "eval.gif", index=None)[..., :3]
    assert back.shape == (3, 12, 15, 3)
    np.testing.assert_array_equal(back, frames.repeat(3, 1).repeat(3, 2))
