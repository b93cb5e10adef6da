"""Evaluation videos and open-loop prediction strips (P Fig. 10)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from planet.models import WorldModel, postprocess, preprocess
from planet.utils import atomic_open


def save_gif(path: Path, frames: np.ndarray, fps: int = 20) -> None:
    """uint8 frames [T, H, W, 3] -> animated GIF, written atomically."""
    import imageio.v3 as iio  # noqa: PLC0415

    data = iio.imwrite("<bytes>", np.asarray(frames, np.uint8), extension=".gif", duration=1000 / fps, loop=0)
    with atomic_open(Path(path), "wb") as handle:
        handle.write(data)


def save_png(path: Path, image: np.ndarray) -> None:
    import imageio.v3 as iio  # noqa: PLC0415

    data = iio.imwrite("<bytes>", np.asarray(image, np.uint8), extension=".png")
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
                   context: int = 5, length: int = 50, every: int = 1) -> np.ndarray:
    """Truth above prediction, frames side by side: uint8 [2H, n*W, 3]."""
    truth, pred = openloop_predictions(model, episode, bit_depth, device, context, length)
    truth, pred = truth[::every], pred[::every]
    return np.concatenate([np.concatenate(list(truth), 1), np.concatenate(list(pred), 1)], 0)
