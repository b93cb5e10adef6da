"""The model-free baseline: Stable-Baselines3 SAC on the project's own pixel environment.

The agent sees what PlaNet sees: 64x64 RGB frames rendered by `planet.envs.PixelEnv`, the paper's per-task action
repeat (rewards summed over repeats), 1000-env-step episodes. As is standard for pixel SAC, the last
`frame_stack` frames are stacked on the channel axis (uint8 [3 * frame_stack, 64, 64]), because one frame shows no
velocities. Everything else is the library's SAC: twin Q critics, entropy tuning, Polyak targets, one gradient step
per agent step, and time-limit truncations bootstrapped (not treated as terminal).

Encoder: the SAC-AE/DrQ pixel encoder (conv 32 3x3 stride 2, three conv 32 3x3 stride 1, dense to 50, LayerNorm,
tanh), one per network as SB3 builds them. `augment="shift"` pads by 4 pixels (edge replicate) and crops back at a
random offset per sample whenever the networks are in training mode, independently for each pass: that is the
random-shift augmentation of RAD / DrQ with K=1, M=1. With `augment="none"` this is plain pixel SAC, a known weak
baseline; the reports label the two apart.
"""

from __future__ import annotations

from collections import deque

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import Tensor, nn

from planet.envs import PixelEnv, episode_seed


class PixelGymEnv(gym.Env):
    """A `PixelEnv` as a gymnasium environment with stacked channel-first uint8 frames.

    `reset(seed=s)` reseeds the task exactly as `PixelEnv.reset(seed=s)` (the same initial state PlaNet's episodes
    with that seed start from). With `train_seeds=True`, episode k instead always starts from the seed of PlaNet's
    training episode k, `episode_seed(seed, "train", k)`, whatever seed the learning library passes (SB3 seeds
    its environments itself). An episode ends by truncation at the time limit (dm_control tasks never terminate).
    `info["env_steps"]` counts control steps (agent steps x action repeat), the x-axis of every curve.
    """

    metadata = {"render_modes": []}

    def __init__(self, task: str, seed: int, frame_stack: int = 3, action_repeat: int | None = None,
                 episode_env_steps: int = 1000, train_seeds: bool = False) -> None:
        super().__init__()
        if frame_stack < 1:
            raise ValueError(f"frame_stack must be >= 1, got {frame_stack}")
        self.env = PixelEnv(task, seed, action_repeat=action_repeat, episode_env_steps=episode_env_steps)
        self.frame_stack = frame_stack
        self.run_seed, self.train_seeds, self.episodes = int(seed), train_seeds, 0
        size = self.env.image_size
        self.observation_space = spaces.Box(0, 255, (3 * frame_stack, size, size), np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (self.env.action_dim,), np.float32)
        self._frames: deque[np.ndarray] = deque(maxlen=frame_stack)
        self.env_steps = 0  # control steps over the environment's life

    def _obs(self) -> np.ndarray:
        return np.concatenate([f.transpose(2, 0, 1) for f in self._frames], 0)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if self.train_seeds:
            seed = episode_seed(self.run_seed, "train", self.episodes)
        self.episodes += 1
        frame = self.env.reset(seed=seed)
        self._frames.extend([frame] * self.frame_stack)
        return self._obs(), {"env_steps": self.env_steps}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        frame, reward, done = self.env.step(np.asarray(action, np.float32))
        self._frames.append(frame)
        self.env_steps += self.env.action_repeat
        return self._obs(), float(reward), False, done, {"env_steps": self.env_steps}

    def close(self) -> None:
        self.env.close()


def random_shift(images: Tensor, pad: int, generator: torch.Generator | None = None) -> Tensor:
    """Pad [N, C, H, W] by `pad` (edge replicate) and crop back to H x W at a random integer offset per sample."""
    n, c, h, w = images.shape
    padded = nn.functional.pad(images, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), device=images.device, generator=generator)
    rows = (offsets[:, 0, None] + torch.arange(h, device=images.device))[:, None, :, None]  # [N, 1, H, 1]
    cols = (offsets[:, 1, None] + torch.arange(w, device=images.device))[:, None, None, :]  # [N, 1, 1, W]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    chans = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


class PixelEncoder(BaseFeaturesExtractor):
    """SAC-AE / DrQ pixel encoder with optional random-shift augmentation in training mode (see module docstring).

    SB3 divides uint8 observations by 255 before calling it (`normalize_images=True`).
    """

    def __init__(self, observation_space: spaces.Box, features_dim: int = 50, augment: str = "shift",
                 shift_pad: int = 4, depth: int = 32) -> None:
        super().__init__(observation_space, features_dim)
        if augment not in ("shift", "none"):
            raise ValueError(f"augment must be 'shift' or 'none', got {augment!r}")
        self.augment, self.shift_pad = augment, shift_pad
        chans = observation_space.shape[0]
        self.convs = nn.Sequential(
            nn.Conv2d(chans, depth, 3, stride=2), nn.ReLU(),
            nn.Conv2d(depth, depth, 3, stride=1), nn.ReLU(),
            nn.Conv2d(depth, depth, 3, stride=1), nn.ReLU(),
            nn.Conv2d(depth, depth, 3, stride=1), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, *observation_space.shape)).shape[1]
        self.head = nn.Sequential(nn.Linear(flat, features_dim), nn.LayerNorm(features_dim), nn.Tanh())

    def forward(self, observations: Tensor) -> Tensor:
        if self.training and self.augment == "shift":
            observations = random_shift(observations, self.shift_pad)
        return self.head(self.convs(observations))
