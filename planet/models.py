r"""The world model: conv encoder/decoder, latent dynamics (RSSM, GRU, SSM, DRNN), reward head, and the bound.

Glossary: o_t observation, e_t = enc(o_t) its embedding, a_t action, r_t reward, h_t deterministic state (GRU),
s_t stochastic state (diagonal Gaussian). Tensors are batch-major, [B, T, ...]; images are channels-first floats
in [-0.5, 0.5] after `preprocess`.

Time alignment (one table for replay, model and tests; see planet/replay.py for storage)::

    row t of an episode / chunk :  o_t          a_{t-1}            r_t
    deterministic path          :  h_t = GRU(h_{t-1}, dense([s_{t-1}, a_{t-1}]))
    prior   (open loop)         :  p(s_t | h_t)
    posterior (filtering)       :  q(s_t | h_t, e_t)
    heads                       :  p(o_t | h_t, s_t),  p(r_t | h_t, s_t)
    first row of a chunk        :  h_{-1} = 0, s_{-1} = 0  (both reference codes start chunks from zeros)

Row 0 of an episode holds the reset observation, a zero action and a zero reward (as in G).

The RSSM in the style of the official code's docstring (solid = deterministic, dotted = stochastic)::

        (a_{t-1})       (o_t)
            |             :
            v             v
    [h_{t-1}] ------> [h_t] ----> (s_t) ---> (o_t), (r_t)
        ^                            :
        :............................:  s_{t-1} feeds the next h

Variants behind one interface (chosen by ``model.kind``):
  * ``rssm``: the above (PlaNet).
  * ``gru``: the same networks with a mean-only state (s_t = mean, no sampling) and no KL term (P Fig. 4; G's
    ``mean_only`` flag). Note: as in G, nothing trains the prior head of this variant, so open-loop states use
    an untrained prior mean; that is the published ablation, not a bug of this port.
  * ``ssm``: purely stochastic: no deterministic path; prior p(s_t | s_{t-1}, a_{t-1}); posterior from the
    prior's statistics and e_t; features = s_t.
  * ``drnn``: the doubly recurrent model of P Fig. 8 (G ``models/drnn.py``; class `DRNN`): an encoder GRU reads
    [e_t, a_{t-1}, s_{t-1}], s_t is drawn from it and [s_{t-1}, d_{t-1}], a decoder GRU d_t reads s_t, and the heads
    read d_t only. The prior is the same networks with e_t = 0.

`LatentModel` implements the first three, `DRNN` the fourth; both are `LatentDynamics` (the interface above).
"""

from __future__ import annotations

import copy
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from planet import ops
from planet.config import LossConfig, ModelConfig

LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------------------------------------------
# Preprocessing and distributions.


def preprocess(obs: Tensor, bits: int, generator: torch.Generator | None) -> Tensor:
    """uint8 [..., H, W, C] -> float [..., C, H, W] in [-0.5, 0.5]: keep `bits` bits, add dequantisation noise.

    x -> floor(x / 2^(8-bits)) / 2^bits + U(0, 1/2^bits) - 0.5, as in G. `generator=None` adds no noise (the
    bin's lower edge plus half a bin is used instead, e.g. for display and tests).
    """
    bins = 2**bits
    floored = torch.bitwise_right_shift(obs, 8 - bits)  # floor(x / 2^(8-bits)) of uint8
    # (floor + u) / bins equals floor / bins + u / bins bit for bit (dividing by a power of two is exact); in place,
    # this is 2.3x faster than the plain expression on a B=16 batch (177 -> 77 ms on 2 cores).
    if generator is None:
        x = floored.to(torch.float32).add_(0.5)
    else:
        x = torch.rand(obs.shape, generator=generator, device=obs.device).add_(floored)
    return x.mul_(1 / bins).sub_(0.5).movedim(-1, -3)


def postprocess(image: Tensor) -> Tensor:
    """float [..., C, H, W] around [-0.5, 0.5] -> uint8 [..., H, W, C] for display."""
    return ((image.movedim(-3, -1) + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)


def kl_normal(mean_q: Tensor, std_q: Tensor, mean_p: Tensor, std_p: Tensor) -> Tensor:
    """KL(N(mean_q, std_q) || N(mean_p, std_p)) of diagonal Gaussians, summed over the last dim."""
    var_ratio = (std_q / std_p).pow(2)
    term = ((mean_q - mean_p) / std_p).pow(2)
    return 0.5 * (var_ratio + term - 1 - var_ratio.log()).sum(-1)


def free_nats_kl(kl: Tensor, free_nats: float) -> Tensor:
    """max(0, KL - free_nats) per (batch, time), as in G: no gradient while the KL is under the allowance."""
    return (kl - free_nats).clamp(min=0)


def normal_log_prob(x: Tensor, mean: Tensor, event_dims: int) -> Tensor:
    """log N(x; mean, 1), summed over the last `event_dims` dims (unit variance: P/G for images and rewards)."""
    ll = -0.5 * (x - mean).pow(2) - 0.5 * LOG_2PI
    return ll.sum(dim=tuple(range(-event_dims, 0))) if event_dims else ll


def mean_normal_log_prob(x: Tensor, mean: Tensor, event_dims: int) -> Tensor:
    """`normal_log_prob(x, mean, event_dims).mean()`, as one fused squared-error pass forward and one backward.

    For the images (B x T x 12288 values) the plain expression's ~8 elementwise passes cost ~180 ms of a 2.7 s
    B=16 update on a 2-core CPU; this costs ~50 ms. Same value up to float32 summation order.
    """
    event_size = math.prod(x.shape[x.dim() - event_dims:])
    rows = x.numel() // event_size
    return -0.5 * F.mse_loss(mean, x, reduction="sum") / rows - 0.5 * LOG_2PI * event_size


# --------------------------------------------------------------------------------------------------------------
# Networks.


def _activation(name: str) -> type[nn.Module]:
    return {"relu": nn.ReLU, "elu": nn.ELU}[name]


def mlp(inp: int, hidden: int, layers: int, out: int, act: str) -> nn.Sequential:
    """`layers` hidden dense layers with activation, then a linear output layer."""
    mods: list[nn.Module] = []
    for _ in range(layers):
        mods += [nn.Linear(inp, hidden), _activation(act)()]
        inp = hidden
    mods.append(nn.Linear(inp, out))
    return nn.Sequential(*mods)


class Encoder(nn.Module):
    """4 conv layers, kernel 4, stride 2, valid padding, ReLU: [.., 3, 64, 64] -> [.., 8*depth*4] (1024 for 32)."""

    def __init__(self, depth: int = 32):
        super().__init__()
        chans = [3, depth, 2 * depth, 4 * depth, 8 * depth]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.Conv2d(cin, cout, 4, 2), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        self.embed_size = 8 * depth * 2 * 2

        # channels-last (NHWC) weights and activations: oneDNN's fast convolution layout on CPU, cuDNN's for
        # tensor cores. `preprocess` already yields NHWC-strided images, so the input costs no copy.
        self.to(memory_format=torch.channels_last)

    def forward(self, image: Tensor) -> Tensor:
        lead = image.shape[:-3]
        assert image.shape[-3:] == (3, 64, 64), f"Encoder expects [..., 3, 64, 64], got {tuple(image.shape)}"
        out = self.net(image.reshape(-1, 3, 64, 64).contiguous(memory_format=torch.channels_last))
        return out.reshape(*lead, self.embed_size)


class Decoder(nn.Module):
    """dense 1024 (linear) -> 1x1 -> deconv 128 k5, 64 k5, 32 k6 (ReLU), 3 k6 (linear), stride 2: -> [.., 3, 64, 64].

    The output is the mean of a unit-variance Gaussian per pixel (G).
    """

    def __init__(self, feature_size: int, depth: int = 32):
        super().__init__()
        self.dense = nn.Linear(feature_size, 32 * depth)
        # ReLU whatever `model.activation` is: in G the activation setting reaches the state model and the heads'
        # dense layers, while the conv encoder/decoder (networks/conv_ha.py) keep their own ReLU (P Fig. 9).
        a = nn.ReLU
        self.net = nn.Sequential(
            nn.ConvTranspose2d(32 * depth, 4 * depth, 5, 2), a(),
            nn.ConvTranspose2d(4 * depth, 2 * depth, 5, 2), a(),
            nn.ConvTranspose2d(2 * depth, depth, 6, 2), a(),
            nn.ConvTranspose2d(depth, 3, 6, 2),
        )

        # Channels-last (NHWC) throughout, like the encoder: oneDNN's two larger transposed convolutions run
        # 1.3-1.6x faster there, the first one as fast (fp32) or 1.2x (bf16) (forward + backward, 800 images,
        # 2-core Zen 4), and the output has the layout of `preprocess`'s target images. Every tensor between the
        # layers must be NHWC too: one NCHW tensor in the chain (mixed layouts) made the ReLU backward ~20x slower.
        self.net.to(memory_format=torch.channels_last)
        self._subpixel_layers = (2, 6)  # indices into `net`

    def forward(self, features: Tensor) -> Tensor:
        lead = features.shape[:-1]
        x = self.dense(features).reshape(-1, self.dense.out_features)
        # The first deconvolution sees a 1x1 input, so it is one matrix multiply (the same parameters and function
        # as ConvTranspose2d, 4-8x faster on CPU): out[n, c, i, j] = b[c] + sum_k x[n, k] W[k, c, i, j].
        first: nn.ConvTranspose2d = self.net[0]
        k, cout = first.kernel_size[0], first.out_channels
        x = torch.addmm(first.bias.repeat_interleave(k * k), x, first.weight.reshape(first.in_channels, -1))
        x = x.reshape(-1, cout, k, k).contiguous(memory_format=torch.channels_last)
        # On CPU the 128->64 k5 layer and the 32->3 output layer run their forward in the sub-pixel form (planet/ops.py:
        # the same function, 2-3x faster there in oneDNN); the 64->32 k6 layer was not faster that way.
        subpixel = self._subpixel_layers if x.device.type == "cpu" else ()
        for i, layer in enumerate(self.net[1:], start=1):
            x = ops.conv_transpose2d_s2_autocast(x, layer.weight, layer.bias) if i in subpixel else layer(x)
        return x.reshape(*lead, 3, 64, 64)


class State(NamedTuple):
    """A latent state: Gaussian statistics of s_t, the sample s_t used downstream, and h_t ([.., 0] for ssm)."""

    mean: Tensor
    std: Tensor
    stoch: Tensor
    deter: Tensor

    def map(self, fn) -> State:
        return State(*(fn(x) for x in self))

    @staticmethod
    def stack(states: list[State], dim: int = 1) -> State:
        return State(*(torch.stack(xs, dim) for xs in zip(*states, strict=True)))


class LatentDynamics(nn.Module):
    """The latent dynamics as the world model, the loss, the planner and the agent use them (`model.kind`).

    A step maps the previous State and a_{t-1} to the prior of step t (`prior_step`, which open-loop prediction,
    latent overshooting and the planner chain), or, given e_t too, to that prior and the posterior (`filter_step`,
    as G's `models/base.py` `Base.call` returns both). Subclasses build the networks and say what `features` the
    decoder and reward head read and how wide `State.deter` is.
    """

    deter_size: int
    """Width of `State.deter`: 0 without a deterministic path."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.kind = cfg.kind
        self.mean_only = cfg.kind == "gru"
        self.stoch_size = cfg.stoch_size
        self.min_std = cfg.min_std

    @property
    def feature_size(self) -> int:
        raise NotImplementedError

    def features(self, state: State) -> Tensor:
        raise NotImplementedError

    def prior_step(self, prev: State, prev_action: Tensor, generator: torch.Generator | None,
                   noise: Tensor | None = None) -> State:
        """The prior of step t from the previous state and a_{t-1}; reads only `prev.stoch` and `prev.deter`.
        generator=None uses the mean.

        `noise` (standard normal, the shape of s_t) replaces the draw from `generator` (the planner draws a whole
        plan's noise up front, so that how it splits the candidates into chunks cannot change the samples).
        """
        raise NotImplementedError

    def filter_step(self, prev: State, prev_action: Tensor, embed: Tensor,
                    generator: torch.Generator | None) -> tuple[State, State]:
        """(prior, posterior) of step t from the previous (posterior) state, a_{t-1} and e_t."""
        raise NotImplementedError

    def initial(self, batch: int, device: torch.device | str) -> State:
        z = torch.zeros(batch, self.stoch_size, device=device)
        return State(z, torch.ones_like(z), z, torch.zeros(batch, self.deter_size, device=device))

    def samples(self, generator: torch.Generator | None) -> bool:
        """Whether a step draws noise: not for the mean-only `gru` variant, nor without a generator."""
        return generator is not None and not self.mean_only

    def _dist(self, raw: Tensor, deter: Tensor, generator: torch.Generator | None,
              noise: Tensor | None = None) -> State:
        # Under autocast (reduced-precision updates) the dense layers give bf16; the Gaussian's statistics, samples
        # and KL stay float32 (a no-op in float32).
        mean, std = raw.float().chunk(2, -1)
        # contiguous first: softplus on the strided half of `raw` took 10x longer on CPU (0.78 vs 0.08 ms at
        # [1000, 30]; it was 6-13% of a plan). Same values, same result.
        std = F.softplus(std.contiguous()) + self.min_std
        if self.mean_only or (noise is None and generator is None):
            stoch = mean
        else:
            if noise is None:
                noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            stoch = mean + std * noise
        return State(mean, std, stoch, deter)

    def observe(
        self, embed: Tensor, prev_actions: Tensor, start: State, generator: torch.Generator | None
    ) -> tuple[State, State]:
        """Filter a chunk. embed [B, T, E], prev_actions [B, T, A] (row t holds a_{t-1}) -> priors, posts [B, T]."""
        priors, posts = [], []
        state = start
        for t in range(embed.shape[1]):
            prior, state = self.filter_step(state, prev_actions[:, t], embed[:, t], generator)
            priors.append(prior)
            posts.append(state)
        return State.stack(priors), State.stack(posts)

    def imagine(self, start: State, actions: Tensor, generator: torch.Generator | None) -> State:
        """Open-loop prior rollout. actions [B, H, A]: actions[:, k] leads from step k-1 to k -> priors [B, H]."""
        states, state = [], start
        for k in range(actions.shape[1]):
            state = self.prior_step(state, actions[:, k], generator)
            states.append(state)
        return State.stack(states)


class LatentModel(LatentDynamics):
    """RSSM and its two ablations, GRU and SSM (see module docstring)."""

    def __init__(self, cfg: ModelConfig, action_dim: int, embed_size: int):
        super().__init__(cfg)
        self.deter_size = 0 if cfg.kind == "ssm" else cfg.deter_size
        act, hid, n = cfg.activation, cfg.hidden_size, cfg.hidden_layers
        if cfg.kind == "ssm":
            # p(s_t | s_{t-1}, a_{t-1}) directly; q(s_t | prior stats, e_t).
            self.prior_net = mlp(cfg.stoch_size + action_dim, hid, max(n, 1), 2 * cfg.stoch_size, act)
            self.post_net = mlp(2 * cfg.stoch_size + embed_size, hid, max(n, 1), 2 * cfg.stoch_size, act)
        else:
            # dense([s_{t-1}, a_{t-1}]) -> GRU -> h_t; p(s_t | h_t); q(s_t | h_t, e_t).
            self.input_net = nn.Sequential(nn.Linear(cfg.stoch_size + action_dim, hid), _activation(act)())
            self.cell = nn.GRUCell(hid, cfg.deter_size)
            self.prior_net = mlp(cfg.deter_size, hid, n, 2 * cfg.stoch_size, act)
            self.post_net = mlp(cfg.deter_size + embed_size, hid, n, 2 * cfg.stoch_size, act)

    @property
    def feature_size(self) -> int:
        return self.deter_size + self.stoch_size

    def features(self, state: State) -> Tensor:
        return torch.cat([state.deter, state.stoch], -1) if self.deter_size else state.stoch

    def prior_step(self, prev: State, prev_action: Tensor, generator: torch.Generator | None,
                   noise: Tensor | None = None) -> State:
        """p(s_t | s_{t-1}, a_{t-1}) (through h_t for rssm/gru); see `LatentDynamics.prior_step`."""
        if self.deter_size == 0:
            return self._dist(self.prior_net(torch.cat([prev.stoch, prev_action], -1)), prev.deter, generator,
                              noise)
        x = self.input_net(torch.cat([prev.stoch, prev_action], -1))
        deter = self.cell(x, prev.deter)
        return self._dist(self.prior_net(deter), deter, generator, noise)

    def posterior_step(self, prior: State, embed: Tensor, generator: torch.Generator | None) -> State:
        """q(s_t | h_t, e_t) given the prior of the same step (rssm/gru) or its statistics (ssm)."""
        if self.deter_size == 0:
            inp = torch.cat([prior.mean, prior.std, embed], -1)
        else:
            inp = torch.cat([prior.deter, embed], -1)
        return self._dist(self.post_net(inp), prior.deter, generator)

    def filter_step(self, prev: State, prev_action: Tensor, embed: Tensor,
                    generator: torch.Generator | None) -> tuple[State, State]:
        """The prior, then the posterior from that prior and e_t (G `RSSM._posterior` calls its transition first)."""
        prior = self.prior_step(prev, prev_action, generator)
        return prior, self.posterior_step(prior, embed, generator)


class DRNN(LatentDynamics):
    r"""The doubly recurrent state-space model of P Fig. 8, built as G's `planet/models/drnn.py` with the flags
    G's `scripts/configs.py` passes by default (sample_to_sample, sample_to_encoder, decoder_to_sample on;
    encoder_to_decoder, decoder_to_encoder, action_to_decoder off)::

        encoder GRU   c_t = GRU_c(c_{t-1}, [e_t, a_{t-1}, s_{t-1}])
        latent        s_t ~ N(mean, std),  [mean, std] = dense(relu(dense([c_t, s_{t-1}, d_{t-1}])))
        decoder GRU   d_t = GRU_d(d_{t-1}, s_t)
        heads         p(o_t | d_t), p(r_t | d_t)

    The posterior is the step above with the observation's embedding e_t. The prior is the *same* networks (shared
    weights) with e_t = 0: G's transition is its posterior template, which `Base.call` calls with a zero embedding.
    So, unlike the RSSM, there is no separate prior network; the observation reaches s_t through a deterministic
    recurrence (c_t) that open-loop prediction keeps running on zeros; and the heads read only d_t (G
    `features_from_state`), s_t only through the decoder GRU. The prior of a filtering step starts from the previous
    posterior state (c_{t-1} has seen o_{<t}); overshooting and the planner chain priors from there.

    State: `State.deter` = [c_t, d_t] (2 x `model.deter_size` wide); features = d_t (`model.deter_size`).
    Sizes as G configures it (`DRNN(state_size, size, size)`): both GRUs `model.deter_size` units (G belief_size =
    model_size = 200), the dense layer `model.hidden_size` units (G embed_size = model_size = 200), s_t
    `model.stoch_size` (30), std = softplus + `model.min_std` (0.1).

    Sources: P names the DRNN in Fig. 8 but gives no structure for it (../shared/reference/paper.md §3); everything
    here follows G. As in G, the state model's dense layers use ReLU whatever `model.activation` says (G's DRNN
    ignores the activation it is given; the reward head follows it). Differences from G: `model.hidden_layers`
    hidden layers (G: exactly one, the default here); torch's `GRUCell` (G: `GRUBlockCell`, whose reset gate acts
    before the recurrent matrix multiply, not after), as for the RSSM; mean and std from one linear layer split in
    two (G: two linear layers on the same input, the same function).
    """

    def __init__(self, cfg: ModelConfig, action_dim: int, embed_size: int):
        super().__init__(cfg)
        self.embed_size = embed_size
        self.belief_size = cfg.deter_size
        self.deter_size = 2 * cfg.deter_size  # [c_t, d_t]
        self.encoder_cell = nn.GRUCell(embed_size + action_dim + cfg.stoch_size, cfg.deter_size)
        self.latent_net = mlp(2 * cfg.deter_size + cfg.stoch_size, cfg.hidden_size, cfg.hidden_layers,
                              2 * cfg.stoch_size, "relu")
        self.decoder_cell = nn.GRUCell(cfg.stoch_size, cfg.deter_size)

    @property
    def feature_size(self) -> int:
        return self.belief_size

    def features(self, state: State) -> Tensor:
        return state.deter[..., self.belief_size:]  # d_t, the decoder GRU's state

    def prior_step(self, prev: State, prev_action: Tensor, generator: torch.Generator | None,
                   noise: Tensor | None = None) -> State:
        """The step with a zero embedding (G's transition); see `LatentDynamics.prior_step`."""
        return self._step(prev, prev_action, None, generator, noise)

    def filter_step(self, prev: State, prev_action: Tensor, embed: Tensor,
                    generator: torch.Generator | None) -> tuple[State, State]:
        """Prior and posterior from the same previous state (G `Base.call`): the step without and with e_t."""
        prior = self._step(prev, prev_action, None, generator)
        return prior, self._step(prev, prev_action, embed, generator)

    def _step(self, prev: State, prev_action: Tensor, embed: Tensor | None, generator: torch.Generator | None,
              noise: Tensor | None = None) -> State:
        """G `DRNN._posterior`; embed=None is G's zero embedding (the prior)."""
        enc_prev, dec_prev = prev.deter.split(self.belief_size, -1)
        enc = self._encode(embed, prev_action, prev.stoch, enc_prev)
        state = self._dist(self.latent_net(torch.cat([enc, prev.stoch, dec_prev], -1)), enc, generator, noise)
        dec = self.decoder_cell(state.stoch, dec_prev)
        return state._replace(deter=torch.cat([enc, dec], -1))

    def _encode(self, embed: Tensor | None, prev_action: Tensor, prev_stoch: Tensor, enc_prev: Tensor) -> Tensor:
        """c_t = GRU_c(c_{t-1}, [e_t, a_{t-1}, s_{t-1}]).

        For embed=None (e_t = 0) the embedding's columns of the input weights would multiply zeros: the same GRU
        step is computed without them (exactly: a sum without its zero terms), by `torch.gru_cell`, the op
        `nn.GRUCell.forward` itself runs, on the other columns. With the zeros, a paper-size plan (J = 1000, H = 12)
        took 7x as long on a 2-core CPU (5.6 s vs 0.8 s per CEM iteration).
        """
        rest = torch.cat([prev_action, prev_stoch], -1)
        cell = self.encoder_cell
        if embed is not None:
            return cell(torch.cat([embed, rest], -1), enc_prev)
        return torch.gru_cell(rest, enc_prev, cell.weight_ih[:, self.embed_size:], cell.weight_hh, cell.bias_ih,
                              cell.bias_hh)


def make_dynamics(cfg: ModelConfig, action_dim: int, embed_size: int) -> LatentDynamics:
    """The latent dynamics `model.kind` names."""
    return (DRNN if cfg.kind == "drnn" else LatentModel)(cfg, action_dim, embed_size)


class WorldModel(nn.Module):
    """Encoder, latent dynamics, decoder and reward head, with the training bound."""

    def __init__(self, cfg: ModelConfig, action_dim: int):
        super().__init__()
        self.cfg = cfg
        self.action_dim = action_dim
        self.encoder = Encoder(cfg.cnn_depth)
        self.dynamics = make_dynamics(cfg, action_dim, self.encoder.embed_size)
        feat = self.dynamics.feature_size
        self.decoder = Decoder(feat, cfg.cnn_depth)
        self.reward = mlp(feat, cfg.reward_units, cfg.reward_layers, 1, cfg.activation)

    def predict_reward(self, state: State) -> Tensor:
        return self.reward(self.dynamics.features(state)).squeeze(-1)

    def imagine_step(self, stoch: Tensor, deter: Tensor, action: Tensor,
                     noise: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """One open-loop step of the planner: (s_{t-1}, h_{t-1}, a_{t-1}, noise) -> (s_t, h_t, predicted mean r_t).

        The prior's statistics are not returned (the planner needs none), so compiled code can skip storing them.
        """
        prev = State(stoch, stoch, stoch, deter)  # prior_step reads only the sample and h of the previous state
        state = self.dynamics.prior_step(prev, action, None, noise)
        return state.stoch, state.deter, self.predict_reward(state).float()

    def imagine_rollout(self, stoch: Tensor, deter: Tensor, actions: Tensor,
                        noise: list[Tensor] | None) -> Tensor:
        """The planner's open-loop imagination over a horizon: from (s, h) [N, ..] along actions [N, H, A], with the
        prior's noise given per step (a list of H [N, S] tensors; None draws none: the mean-only `gru` variant, or
        no generator), returns the summed predicted mean rewards [N] in float32.

        The same steps in the same order as calling `imagine_step` H times (bit-identical), as one function so that
        `compute.compile` compiles a whole horizon as one graph: on a 2-core AVX2 EPYC a paper-size plan took 0.89 s
        eager, 0.83 s with the step compiled alone (12 calls per horizon) and 0.73 s with the horizon compiled
        (reports/speed/2026-12-06-epyc/, timed in turns).
        """
        total = actions.new_zeros(actions.shape[0])
        for k in range(actions.shape[1]):
            stoch, deter, reward = self.imagine_step(stoch, deter, actions[:, k], None if noise is None else noise[k])
            total = total + reward
        return total

    def planner_rollout(self, dtype: torch.dtype = torch.float32, compile_rollout: bool = False):
        """`imagine_rollout` of this model's current weights in `dtype`, optionally compiled; call once per episode.

        For float32 it is this model's own method. For another dtype it runs on a copy of the dynamics and reward
        head (~0.3 M weights) cast once here, not at each of a plan's ~1000 dense layers as autocast alone would;
        the copy is kept and refreshed in place, so a compiled rollout is compiled once per process, not per
        episode (and again only for a new chunk shape or horizon). Call it under `torch.autocast(dtype)` (inputs are
        cast; the Gaussians stay float32, see `_dist`).
        """
        cache = self.__dict__.setdefault("_planner_rollouts", {})  # plain attribute: not a submodule, not saved
        key = (dtype, compile_rollout)
        if key not in cache:
            if dtype == torch.float32:
                target = self
            else:
                target = WorldModel.__new__(WorldModel)
                nn.Module.__init__(target)
                target.cfg, target.action_dim = self.cfg, self.action_dim
                target.dynamics = copy.deepcopy(self.dynamics).to(dtype)
                target.reward = copy.deepcopy(self.reward).to(dtype)
                target.eval()
            rollout = target.imagine_rollout
            if compile_rollout:
                mode = "reduce-overhead" if next(self.parameters()).is_cuda else None
                rollout = torch.compile(rollout, dynamic=False, mode=mode)
            cache[key] = (target, rollout)
        target, rollout = cache[key]
        if target is not self:
            with torch.no_grad():
                for src, dst in ((self.dynamics, target.dynamics), (self.reward, target.reward)):
                    for a, b in zip(src.parameters(), dst.parameters(), strict=True):
                        b.copy_(a)
        return rollout

    def compile_update(self) -> None:
        """torch.compile the encoder and decoder as the loss calls them (`compute.compile`; video, diagnostics and the
        agent keep the eager modules, so their other batch shapes cause no recompiles). Inductor fuses the ReLUs,
        casts and the image term around the convolutions (oneDNN on CPU, cuDNN on GPU); on a 2-core CPU the update
        gained 1.06x at B=16 and 0.96-1.3x at B=50 (`planet bench`, a noisy VM). Default mode, also on CUDA: these
        calls are a few large kernels, not launch-bound. The parameters stay the modules' own (state_dict and
        checkpoints unchanged). Compiles on the first update (~5 s with inductor's cache warm, ~20 s cold here)."""
        self.__dict__["_update_nets"] = (torch.compile(self.encoder, dynamic=False),
                                         torch.compile(self.decoder, dynamic=False))

    def loss(
        self, image: Tensor, prev_action: Tensor, reward: Tensor, loss_cfg: LossConfig,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Negative bound for a batch: image [B, T, 3, 64, 64] (preprocessed), prev_action [B, T, A], reward [B, T].

        loss = -E[ln p(o_t|.)] - reward_scale * E[ln p(r_t|.)] + kl_scale * KL_term, averaged over (B, T), where
        KL_term is the standard free-nats KL, or P Eq. 7's average over distances 1..D with latent overshooting.
        Returns the loss and detached metrics.
        """
        B, T = image.shape[:2]
        encoder, decoder = self.__dict__.get("_update_nets", (self.encoder, self.decoder))
        embed = encoder(image)
        start = self.dynamics.initial(B, image.device)
        priors, posts = self.dynamics.observe(embed, prev_action, start, generator)
        feats = self.dynamics.features(posts)
        image_ll = mean_normal_log_prob(image, decoder(feats), 3)
        reward_ll = normal_log_prob(reward, self.reward(feats).squeeze(-1), 0).mean()
        kl_scale = 0.0 if self.dynamics.mean_only else loss_cfg.kl_scale
        raw_kl = kl_normal(posts.mean, posts.std, priors.mean, priors.std)
        kl_term = free_nats_kl(raw_kl, loss_cfg.free_nats).mean()
        if kl_scale and loss_cfg.overshooting_distance >= 2:
            per_distance = self.overshooting_kl(start, posts, prev_action, loss_cfg, generator)
            kl_term = kl_term + loss_cfg.overshooting_scale * per_distance[1:].mean()
        loss = -image_ll - loss_cfg.reward_scale * reward_ll + kl_scale * kl_term
        metrics = {
            "loss/total": loss, "loss/image": -image_ll, "loss/reward": -reward_ll, "loss/kl": kl_term,
            "kl": raw_kl.mean(), "prior_std": priors.std.mean(), "posterior_std": posts.std.mean(),
        }
        return loss, {k: v.detach() for k, v in metrics.items()}

    def overshooting_kl(
        self, start: State, posts: State, prev_action: Tensor, loss_cfg: LossConfig,
        generator: torch.Generator | None,
    ) -> Tensor:
        """Latent overshooting terms: [D] mean free-nats KL(q(s_t) || p(s_t | s_{t-d})) for d = 1..D.

        Open-loop priors start from every posterior state (and the zero state before the chunk) and run d steps on
        the stored actions; entry d-1 is max(0, KL - free_nats) averaged over the (batch, time) pairs whose target
        lies in the chunk. For d >= 2 the target posteriors are stop-gradient (G: `stop_os_posterior_gradient`).
        Entry 0 reproduces the filtering prior's term exactly (a check; the loss uses the filtering one).

        The loss (`loss`) reads P Eq. 7 as both reference codes compute it: the standard one-step KL at full weight,
        plus beta = `overshooting_scale` times the mean over distances 2..D of these terms (G
        `training/define_model.py`: the zero-step divergence at scale 1, then the overshooting divergences at
        `divergence_scale`, averaged per distance over valid time steps and then over distances). So D = 1 is the
        standard bound. (An earlier version of this code divided the whole sum, the one-step term included, by D.)
        """
        B, T = prev_action.shape[:2]
        D = loss_cfg.overshooting_distance
        # Start j in 0..T-1 is the state before row j: the zero state for j = 0, else the posterior of row j-1.
        starts = State(*(torch.cat([s0[:, None], p[:, :-1]], 1) for s0, p in zip(start, posts, strict=True)))
        state = starts.map(lambda x: x.reshape(B * T, *x.shape[2:]))
        index = torch.arange(T, device=prev_action.device)
        terms = []
        for d in range(1, D + 1):
            # From start j, step d consumes the action stored in row j+d-1 and predicts row j+d-1.
            row = (index + d - 1).clamp(max=T - 1)
            act = prev_action[:, row].reshape(B * T, -1)
            state = self.dynamics.prior_step(state, act, generator)
            target = State(*(x[:, row] for x in posts))
            if d > 1:
                target = target.map(lambda x: x.detach())
            prior = state.map(lambda x: x.reshape(B, T, *x.shape[1:]))
            kl = free_nats_kl(kl_normal(target.mean, target.std, prior.mean, prior.std), loss_cfg.free_nats)
            valid = (index + d - 1 < T).to(kl.dtype).expand(B, T)
            terms.append((kl * valid).sum() / valid.sum())
        return torch.stack(terms)
