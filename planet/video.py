"""Evaluation videos and open-loop prediction strips (P Fig. 10)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from planet.models import WorldModel, postprocess, preprocess
from planet.utils import atomic_open

if TYPE_CHECKING:
    from PIL import Image, ImageFont

    from planet.config import Config


GIF_SCALE = 3
"""Evaluation GIFs are enlarged this many times (nearest neighbour): 64 px frames are a thumbnail in MLflow's artifact
viewer, 192 px can be watched (a 500-frame walker episode: 1.6 MB at 1x, 5.2 MB at 3x, 7.1 MB at 4x)."""


def save_gif(path: Path, frames: np.ndarray, fps: int = 20, scale: int = GIF_SCALE) -> None:
    """uint8 frames [T, H, W, 3] -> animated GIF enlarged ``scale`` times, written atomically."""
    import imageio.v3 as iio

    frames = np.asarray(frames, np.uint8).repeat(scale, 1).repeat(scale, 2)
    data = iio.imwrite("<bytes>", frames, extension=".gif", duration=1000 / fps, loop=0)
    with atomic_open(Path(path), "wb") as handle:
        handle.write(data)


@torch.inference_mode()
def openloop_predictions(model: WorldModel, episode: dict[str, np.ndarray], bit_depth: int, device: torch.device,
                         context: int = 5, length: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Filter `context` frames with the posterior, then predict open loop with the true actions up to `length`.

    Returns (truth, prediction) uint8 [T, H, W, 3]; prediction frames < context are posterior reconstructions,
    later ones decode the prior mean (no sampling, so the strip is reproducible).
    """
    length = min(length, len(episode["reward"]))
    obs = torch.as_tensor(episode["obs"][None, :length], device=device)
    actions = torch.as_tensor(episode["action"][None, :length], device=device)
    image = preprocess(obs, bit_depth, None)
    dyn = model.dynamics
    _, posts = dyn.observe(model.encoder(image[:, :context]), actions[:, :context], dyn.initial(1, device), None)
    last = posts.map(lambda x: x[:, -1])
    states = [posts]
    if length > context:
        states.append(dyn.imagine(last, actions[:, context:], None))
    feats = torch.cat([dyn.features(s) for s in states], 1)
    pred = postprocess(model.decoder(feats))[0].cpu().numpy()
    return episode["obs"][:length], pred


def openloop_strip(model: WorldModel, episode: dict[str, np.ndarray], bit_depth: int, device: torch.device,
                   context: int = 5, length: int = 50) -> np.ndarray:
    """Truth above prediction, frames side by side: uint8 [2H, n*W, 3]."""
    truth, pred = openloop_predictions(model, episode, bit_depth, device, context, length)
    return np.concatenate([np.concatenate(list(truth), 1), np.concatenate(list(pred), 1)], 0)


LABEL_MARGIN, LABEL_HEADER = 52, 18  # pixels left of the rows (row names) and above them (context / open loop)
LABELLED_KEY = "planet-openloop"  # PNG text chunk of a labelled strip: "labelled, context=N" (read by the report)


def label_openloop(strip: np.ndarray, context: int) -> Image.Image:
    """The strip of :func:`openloop_strip` as a person reads it: rows named "truth" and "model", the first
    ``context`` columns headed "context" (posterior reconstructions of observed frames) and the rest "open loop"
    (the prior predicting from the true actions alone), a red line between them."""
    from PIL import Image, ImageDraw

    frame = strip.shape[0] // 2
    canvas = Image.new("RGB", (LABEL_MARGIN + strip.shape[1], LABEL_HEADER + strip.shape[0]), "white")
    canvas.paste(Image.fromarray(np.asarray(strip, np.uint8)), (LABEL_MARGIN, LABEL_HEADER))
    draw = ImageDraw.Draw(canvas)
    font = _font()
    for row, name in enumerate(("truth", "model")):
        draw.text((4, LABEL_HEADER + row * frame + frame // 2 - 7), name, fill="black", font=font)
    boundary = LABEL_MARGIN + context * frame
    draw.text((LABEL_MARGIN + 2, 2), f"context ({context} frames)", fill="black", font=font)
    if boundary < canvas.width:
        draw.text((boundary + 4, 2), "open loop (prior, true actions)", fill="black", font=font)
        draw.line([(boundary, LABEL_HEADER), (boundary, canvas.height - 1)], fill=(220, 0, 0), width=2)
    canvas.info[LABELLED_KEY] = f"labelled, context={context}"
    return canvas


def save_labelled_png(path: Path, image: Image.Image) -> None:
    """Write a labelled strip atomically, keeping its text chunk (so that tools can tell it from a raw strip)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in image.info.items():
        if isinstance(value, str):
            info.add_text(key, value)
    with atomic_open(Path(path), "wb") as handle:
        image.save(handle, format="PNG", pnginfo=info)


def _font() -> ImageFont.ImageFont:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=13)
    except (OSError, TypeError):  # Pillow without FreeType
        return ImageFont.load_default()


def write_eval_artifacts(model: WorldModel, episode: dict[str, np.ndarray], config: Config, device: torch.device,
                         out: Path) -> list[Path]:
    """What a person watches after a run: the evaluation episode as a GIF (if ``eval.video``) and the labelled
    open-loop strip (5 context frames, as the paper's Fig. 10). Returns the files written in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if config.eval.video:
        save_gif(out / "eval.gif", episode["obs"])
        written.append(out / "eval.gif")
    context = 5
    strip = openloop_strip(model, episode, config.env.bit_depth, device, context)
    save_labelled_png(out / "openloop.png", label_openloop(strip, context))
    written.append(out / "openloop.png")
    return written
