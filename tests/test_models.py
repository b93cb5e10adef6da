"""World model: hand-computed KL and free nats, 5-bit preprocessing, shapes, time alignment, overshooting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from planet import precision
from planet.agents import MPCAgent
from planet.config import LossConfig, ModelConfig, PlannerConfig
from planet.models import (
    DRNN,
    Decoder,
    Encoder,
    State,
    WorldModel,
    free_nats_kl,
    kl_normal,
    mean_normal_log_prob,
    normal_log_prob,
    postprocess,
    preprocess,
)
from planet.planner import latent_objective

TINY = ModelConfig(deter_size=8, stoch_size=3, hidden_size=8, cnn_depth=2, reward_units=8)
TINY_DRNN = ModelConfig(**{**TINY.__dict__, "kind": "drnn"})


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- distributions


def test_kl_of_diagonal_gaussians_hand_computed():
    # 1-D: KL(N(1, 2^2) || N(0, 1)) = ln(1/2) + (4 + 1) / 2 - 1/2 = 2 - ln 2
    # 1-D: KL(N(0, 1) || N(1, 2^2)) = ln 2 + (1 + 1) / 8 - 1/2 = ln 2 - 1/4
    mq, sq = torch.tensor([1.0, 0.0]), torch.tensor([2.0, 1.0])
    mp, sp = torch.tensor([0.0, 1.0]), torch.tensor([1.0, 2.0])
    assert kl_normal(mq[:1], sq[:1], mp[:1], sp[:1]).item() == pytest.approx(2 - math.log(2), abs=1e-6)
    assert kl_normal(mq[1:], sq[1:], mp[1:], sp[1:]).item() == pytest.approx(math.log(2) - 0.25, abs=1e-6)
    # summed over the last dim only
    both = kl_normal(mq, sq, mp, sp)
    assert both.shape == () and both.item() == pytest.approx(2 - 0.25, abs=1e-6)
    batch = kl_normal(torch.zeros(4, 5, 30), torch.ones(4, 5, 30), torch.zeros(4, 5, 30), torch.ones(4, 5, 30))
    assert batch.shape == (4, 5) and torch.all(batch == 0)


def test_free_nats_clamp_values_and_gradient():
    kl = torch.tensor([1.0, 2.5, 5.0, 3.5], requires_grad=True)
    out = free_nats_kl(kl, 3.0)
    assert out.tolist() == [0.0, 0.0, 2.0, 0.5]
    out.sum().backward()
    assert kl.grad.tolist() == [0.0, 0.0, 1.0, 1.0]  # no gradient while under the allowance


def test_unit_gaussian_log_prob():
    x, mean = torch.zeros(2, 3), torch.ones(2, 3)
    # per element: -0.5 * 1 - 0.5 ln 2 pi; summed over 3 elements
    expected = 3 * (-0.5 - 0.5 * math.log(2 * math.pi))
    assert torch.allclose(normal_log_prob(x, mean, 1), torch.full((2,), expected))


def test_fused_mean_log_prob_equals_the_plain_one():
    """The image term's fused form: the mean over leading dims of the summed log-density, and its gradient."""
    x = torch.tensor([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
    mean = torch.tensor([[1.0, 1.0, 1.0], [1.0, 3.0, 1.0]], requires_grad=True)
    # squared errors per row: 1 + 0 + 1 = 2 and 0 + 4 + 0 = 4; mean of -0.5 * sq - 1.5 ln 2 pi
    expected = -0.5 * 3.0 - 1.5 * math.log(2 * math.pi)
    fused = mean_normal_log_prob(x, mean, 1)
    assert fused.item() == pytest.approx(expected, rel=1e-6)
    (grad,) = torch.autograd.grad(fused, mean)
    assert grad.tolist() == [[-0.5, 0.0, 0.5], [0.0, -1.0, 0.0]]  # (x - mean) / rows
    x, mean = torch.randn(2, 3, 3, 4, 5, generator=gen()), torch.randn(2, 3, 3, 4, 5, generator=gen(1))
    torch.testing.assert_close(mean_normal_log_prob(x, mean, 3), normal_log_prob(x, mean, 3).mean())


# ---- preprocessing


def test_five_bit_preprocessing_roundtrip_and_noise():
    pixels = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16).expand(3, 16, 16).permute(1, 2, 0)  # H W C
    x = preprocess(pixels, 5, None)
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    # hand-computed: 255 -> floor(255/8)=31 -> 31/32 + 1/64 - 0.5; 0 -> 1/64 - 0.5
    assert x[0, 15, 15].item() == pytest.approx(31 / 32 + 1 / 64 - 0.5)
    assert x[0, 0, 0].item() == pytest.approx(1 / 64 - 0.5)
    # round trip keeps each pixel's 5-bit bin
    back = postprocess(x)
    assert torch.equal(back.int() // 8, pixels.int() // 8)
    # dequantisation noise stays inside the bin: [q/32 - 0.5, (q+1)/32 - 0.5)
    noisy = preprocess(pixels, 5, gen(1))
    q = (pixels.int() // 8).permute(2, 0, 1).float()
    assert torch.all(noisy >= q / 32 - 0.5) and torch.all(noisy < (q + 1) / 32 - 0.5)
    assert -0.5 <= noisy.min() and noisy.max() < 0.5
    assert torch.equal(noisy, preprocess(pixels, 5, gen(1)))  # seeded
    assert not torch.equal(noisy, preprocess(pixels, 5, gen(2)))


# ---- shapes


def test_encoder_decoder_shapes():
    enc = Encoder(32)
    img = torch.zeros(2, 5, 3, 64, 64)
    assert enc(img).shape == (2, 5, 1024) and enc.embed_size == 1024
    dec = Decoder(230, 32)
    assert dec(torch.zeros(2, 5, 230)).shape == (2, 5, 3, 64, 64)
    with pytest.raises(AssertionError, match=r"\[\.\.\., 3, 64, 64\].*\(2, 64, 64, 3\)"):
        enc(torch.zeros(2, 64, 64, 3))


def test_fast_paths_compute_the_plain_layers():
    """Speed work keeps the function: the encoder's and decoder's channels-last layout and the decoder's first
    deconvolution done as a matrix multiply give the plain NCHW layers' outputs (and gradients) to float32 rounding."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    enc, dec = Encoder(4), Decoder(11, 4)
    image = torch.rand(2, 3, 3, 64, 64, generator=gen()) - 0.5
    x = image.reshape(-1, 3, 64, 64).contiguous()
    for conv in enc.net[::2]:
        x = F.relu(F.conv2d(x, conv.weight.contiguous(), conv.bias, 2))
    torch.testing.assert_close(enc(image), x.reshape(2, 3, -1), rtol=1e-5, atol=1e-5)

    feats = torch.randn(2, 3, 11, generator=gen(1), requires_grad=True)
    fast = dec(feats)
    x = dec.dense(feats).reshape(-1, 16 * 8, 1, 1)  # ConvTranspose2d on 1x1, NCHW weights and activations
    for i, deconv in enumerate(dec.net[::2]):
        x = F.conv_transpose2d(x, deconv.weight.contiguous(), deconv.bias, 2)
        x = F.relu(x) if i < 3 else x
    plain = x.reshape(2, 3, 3, 64, 64)
    assert x.is_contiguous() and fast.reshape(-1, 3, 64, 64).is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    params = [feats, *(deconv.weight for deconv in dec.net[::2])]
    g_fast, g_plain = (torch.autograd.grad(out.square().sum(), params) for out in (fast, plain))
    for a, b in zip(g_fast, g_plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_retain_freed_memory_is_optional(monkeypatch):
    from planet import utils

    monkeypatch.setenv("PLANET_RETAIN_FREED_MEMORY", "0")
    assert utils.retain_freed_memory() is False


@pytest.mark.parametrize(("kind", "feature_size"), [("rssm", 11), ("gru", 11), ("ssm", 3), ("drnn", 8)])
def test_variants_share_one_interface(kind, feature_size):
    model = WorldModel(ModelConfig(**{**TINY.__dict__, "kind": kind}), action_dim=2)
    dyn = model.dynamics
    assert dyn.feature_size == feature_size
    B, T = 2, 4
    priors, posts = dyn.observe(torch.randn(B, T, model.encoder.embed_size), torch.randn(B, T, 2),
                                dyn.initial(B, "cpu"), gen())
    assert posts.stoch.shape == (B, T, 3) and dyn.features(posts).shape == (B, T, feature_size)
    assert torch.all(posts.std >= 0.1) and torch.all(priors.std >= 0.1)  # softplus + min_std
    if kind == "gru":  # mean-only state
        assert torch.equal(posts.stoch, posts.mean) and torch.equal(priors.stoch, priors.mean)
    else:
        assert not torch.equal(posts.stoch, posts.mean)
    imagined = dyn.imagine(posts.map(lambda x: x[:, -1]), torch.zeros(B, 6, 2), gen())
    assert imagined.stoch.shape == (B, 6, 3)


# ---- time alignment (the table in planet/models.py)


@pytest.mark.parametrize("kind", ["rssm", "drnn"])
def test_rssm_time_alignment(kind):
    """Row t: prior depends on a_{t-1} (row t's action) but not on o_t; posterior on o_t; nothing on the future."""
    torch.manual_seed(0)
    model = WorldModel(ModelConfig(**{**TINY.__dict__, "kind": kind}), action_dim=2)
    dyn = model.dynamics
    B, T, t = 1, 6, 3
    embed, act = torch.randn(B, T, model.encoder.embed_size), torch.randn(B, T, 2)

    def run(e, a):
        return dyn.observe(e, a, dyn.initial(B, "cpu"), None)  # means: deterministic

    priors, posts = run(embed, act)
    act2 = act.clone()
    act2[:, t] += 1.0
    p2, q2 = run(embed, act2)
    assert torch.equal(priors.mean[:, :t], p2.mean[:, :t]) and torch.equal(posts.mean[:, :t], q2.mean[:, :t])
    assert not torch.allclose(priors.mean[:, t], p2.mean[:, t])  # a_{t-1} (stored in row t) enters h_t
    emb2 = embed.clone()
    emb2[:, t] += 1.0
    p3, q3 = run(emb2, act)
    assert torch.equal(priors.mean[:, : t + 1], p3.mean[:, : t + 1])  # o_t does not enter the prior of row t
    assert torch.equal(posts.mean[:, :t], q3.mean[:, :t])
    assert not torch.allclose(posts.mean[:, t], q3.mean[:, t])  # but does enter the posterior of row t
    assert not torch.allclose(priors.mean[:, t + 1], p3.mean[:, t + 1])  # and, through s_t, the next prior
    if kind != "rssm":
        return  # the DRNN's steps are written out in test_drnn_step_by_hand
    # first row starts from zeros: h_0 = GRU(0, dense([0, a_{-1}]))
    x = dyn.input_net(torch.cat([torch.zeros(B, 3), act[:, 0]], -1))
    assert torch.allclose(priors.deter[:, 0], dyn.cell(x, torch.zeros(B, 8)))


# ---- the bound


def _batch(B=3, T=7, A=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randint(0, 256, (B, T, 64, 64, 3), dtype=torch.uint8, generator=g)
    return preprocess(obs, 5, g), torch.rand(B, T, A, generator=g) * 2 - 1, torch.rand(B, T, generator=g)


def _loss_and_grads(model, batch, loss_cfg, seed=0):
    model.zero_grad()
    loss, metrics = model.loss(*batch, loss_cfg, gen(seed))
    loss.backward()
    return loss.detach(), metrics, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("kind", ["rssm", "drnn"])
def test_overshooting_at_distance_one_equals_the_standard_bound(kind):
    torch.manual_seed(0)
    model = WorldModel(ModelConfig(**{**TINY.__dict__, "kind": kind}), action_dim=2)
    batch = _batch()
    # small allowance so the KL term is active and carries gradient (none for the DRNN: its prior and posterior share
    # their networks, so at initialisation they differ by ~1e-4 nats, through the tiny embedding only)
    free = 0.01 if kind == "rssm" else 0.0
    std_loss, std_m, std_g = _loss_and_grads(model, batch, LossConfig(free_nats=free))
    os_loss, os_m, os_g = _loss_and_grads(model, batch, LossConfig(free_nats=free, overshooting_distance=1))
    assert std_m["loss/kl"] > 0
    assert torch.allclose(std_loss, os_loss, rtol=1e-6) and torch.allclose(std_m["loss/kl"], os_m["loss/kl"])
    assert std_g.keys() == os_g.keys()
    for name in std_g:
        assert torch.allclose(std_g[name], os_g[name], rtol=1e-5, atol=1e-7), name
    # longer distances add open-loop terms: a different bound
    d3_loss, d3_m, _ = _loss_and_grads(model, batch, LossConfig(free_nats=free, overshooting_distance=3))
    assert torch.isfinite(d3_loss) and not torch.allclose(d3_m["loss/kl"], std_m["loss/kl"])


class _AddAction(torch.nn.Module):
    """Mock transition: s_t = s_{t-1} + a_{t-1} with unit std, so KL(q || p) = 0.5 (m_q - m_p)^2 in one dimension."""

    def prior_step(self, prev, action, generator):
        mean = prev.stoch + action
        return State(mean, torch.ones_like(mean), mean, prev.deter)


def _mock_overshooting(free_nats: float):
    model = WorldModel(TINY, action_dim=1)
    model.dynamics = _AddAction()
    act = torch.tensor([[[0.5], [-1.0], [2.0]]])  # rows 0..2 hold a_{-1}, a_0, a_1
    m = torch.tensor([[[1.0], [0.0], [3.0]]], requires_grad=True)  # posterior means of rows 0..2, std 1
    posts = State(m, torch.ones_like(m), m, torch.zeros(1, 3, 0))
    start = State(*(torch.zeros(1, n) for n in (1, 1, 1, 0)))
    cfg = LossConfig(free_nats=free_nats, overshooting_distance=2)
    return model.overshooting_kl(start, posts, act, cfg, None), m


def test_overshooting_terms_by_hand_with_a_mock_transition():
    """T = 3, D = 2 with s_t = s_{t-1} + a_{t-1}; every KL term written out by hand.

    d = 1: row 0 from the zero state: prior 0 + 0.5 = 0.5 vs 1.0 -> 0.125; row 1 from q_0: 1.0 - 1.0 = 0.0 vs 0.0
    -> 0; row 2 from q_1: 0.0 + 2.0 = 2.0 vs 3.0 -> 0.5. Mean 0.625 / 3.
    d = 2: row 1 from the zero state: 0.5 - 1.0 = -0.5 vs 0.0 -> 0.125; row 2 from q_0: 1.0 - 1.0 + 2.0 = 2.0 vs 3.0
    -> 0.5 (row 3 lies outside the chunk). Mean 0.3125.
    """
    terms, _ = _mock_overshooting(0.0)
    assert torch.allclose(terms, torch.tensor([0.625 / 3, 0.3125]))
    # free nats per (batch, time) term: max(0, KL - 0.2) -> d=1 [0, 0, 0.3], d=2 [0, 0.3]
    terms, m = _mock_overshooting(0.2)
    assert torch.allclose(terms, torch.tensor([0.1, 0.15]))
    # stop-gradient targets for d >= 2: of the d=2 terms only q_0 as a *start* gets gradient:
    # d/dm_0 of 0.5 (3 - (m_0 + 1)) ^ 2 / 2 = -(3 - 2) / 2 = -0.5 (free nats inactive: 0.5 - 0.2 > 0)
    (grad,) = torch.autograd.grad(terms[1], m)
    assert torch.allclose(grad, torch.tensor([[[-0.5], [0.0], [0.0]]]))


@pytest.mark.parametrize("kind", ["rssm", "drnn"])
def test_overshooting_adds_the_open_loop_terms_to_the_full_one_step_kl(kind):
    """The loss is the standard one-step KL at full weight plus beta x the mean of the d >= 2 terms (G), and the
    open-loop d = 1 term reproduces the filtering KL exactly."""
    torch.manual_seed(0)
    model = WorldModel(ModelConfig(**{**TINY.__dict__, "kind": kind}), action_dim=2)
    batch = _batch()
    free, beta = (0.01 if kind == "rssm" else 0.0), 0.5  # the DRNN's KL starts at ~1e-4 nats (see above)
    cfg = LossConfig(free_nats=free, overshooting_distance=3, overshooting_scale=beta)
    _, std_m, _ = _loss_and_grads(model, batch, LossConfig(free_nats=free))
    _, os_m, _ = _loss_and_grads(model, batch, cfg)
    image, act, _ = batch
    dyn = model.dynamics
    start = dyn.initial(image.shape[0], "cpu")
    g = gen()
    embed = model.encoder(image)
    priors, posts = dyn.observe(embed, act, start, g)
    terms = model.overshooting_kl(start, posts, act, cfg, g)
    one_step = free_nats_kl(kl_normal(posts.mean, posts.std, priors.mean, priors.std), free).mean()
    assert torch.allclose(terms[0], one_step, rtol=1e-5)
    assert torch.allclose(os_m["loss/kl"], std_m["loss/kl"] + beta * terms[1:].mean(), rtol=1e-5)


def test_gru_variant_has_no_kl_term():
    torch.manual_seed(0)
    model = WorldModel(ModelConfig(**{**TINY.__dict__, "kind": "gru"}), action_dim=2)
    loss, m = model.loss(*_batch(), LossConfig(free_nats=0.0), gen())
    expected = m["loss/image"] + 10.0 * m["loss/reward"]
    assert torch.allclose(loss, expected) and m["kl"] >= 0


@pytest.mark.parametrize("kind", ["rssm", "drnn"])
def test_loss_is_deterministic_under_a_seed(kind):
    torch.manual_seed(0)
    model = WorldModel(ModelConfig(**{**TINY.__dict__, "kind": kind}), action_dim=2)
    a, _, _ = _loss_and_grads(model, _batch(), LossConfig(), seed=5)
    b, _, _ = _loss_and_grads(model, _batch(), LossConfig(), seed=5)
    c, _, _ = _loss_and_grads(model, _batch(), LossConfig(), seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_activation_reaches_the_state_model_and_reward_head_not_the_convs():
    """As in G: `model.activation` goes to the cell and the heads' dense layers; encoder and decoder keep ReLU."""
    model = WorldModel(ModelConfig(**{**TINY.__dict__, "activation": "elu"}), action_dim=2)
    kinds = {name: type(m) for name, m in model.named_modules()}
    assert any(k is torch.nn.ELU for n, k in kinds.items() if n.startswith("dynamics."))
    assert any(k is torch.nn.ELU for n, k in kinds.items() if n.startswith("reward."))
    for prefix in ("encoder.", "decoder."):
        acts = [k for n, k in kinds.items() if n.startswith(prefix) and k in (torch.nn.ELU, torch.nn.ReLU)]
        assert acts and all(k is torch.nn.ReLU for k in acts), prefix


# ---- DRNN (P Fig. 8; structure from G models/drnn.py)


def _drnn_prev(dyn: DRNN, B: int, g: torch.Generator) -> tuple[State, Tensor, Tensor, Tensor]:
    """A random previous state: (State, c_{t-1}, d_{t-1}, s_{t-1})."""
    D, S = dyn.belief_size, dyn.stoch_size
    c, d, s = (torch.randn(B, n, generator=g) for n in (D, D, S))
    return State(torch.zeros(B, S), torch.ones(B, S), s, torch.cat([c, d], -1)), c, d, s


def test_drnn_sizes_follow_the_official_code():
    """G `DRNN(state_size, belief_size=size, embed_size=size)`: two GRUs of `deter_size` units, one dense layer of
    `hidden_size`; State.deter holds [c_t, d_t] and the features are d_t alone."""
    model = WorldModel(TINY_DRNN, action_dim=2)
    dyn, E = model.dynamics, model.encoder.embed_size
    assert isinstance(dyn, DRNN) and dyn.feature_size == 8 and dyn.deter_size == 16
    assert dyn.encoder_cell.weight_ih.shape == (3 * 8, E + 2 + 3)  # reads [e_t, a_{t-1}, s_{t-1}]
    assert dyn.encoder_cell.weight_hh.shape == (3 * 8, 8)
    assert dyn.decoder_cell.weight_ih.shape == (3 * 8, 3)  # reads s_t only (no action, no c_t: G's flags off)
    assert dyn.decoder_cell.weight_hh.shape == (3 * 8, 8)
    linears = [m for m in dyn.latent_net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(8 + 3 + 8, 8), (8, 2 * 3)]  # [c, s, d] -> 200
    assert model.decoder.dense.in_features == 8 and model.reward[0].in_features == 8
    assert dyn.initial(2, "cpu").deter.shape == (2, 16)
    # ReLU in the state model whatever model.activation is (G's DRNN ignores it); the reward head follows it
    elu = WorldModel(ModelConfig(**{**TINY_DRNN.__dict__, "activation": "elu"}), action_dim=2)
    assert not any(isinstance(m, torch.nn.ELU) for m in elu.dynamics.modules())
    assert any(isinstance(m, torch.nn.ELU) for m in elu.reward.modules())


def test_drnn_step_by_hand():
    """One filtering step written out from G's `DRNN._posterior`, for the posterior (with e_t) and the prior (the
    same networks with e_t = 0, as G's `Base.call` runs its transition)."""
    torch.manual_seed(0)
    model = WorldModel(TINY_DRNN, action_dim=2)
    dyn, E = model.dynamics, model.encoder.embed_size
    g = gen(1)
    prev, c_prev, d_prev, s_prev = _drnn_prev(dyn, 4, g)
    action, embed = torch.randn(4, 2, generator=g), torch.randn(4, E, generator=g)

    def by_hand(e: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        c = dyn.encoder_cell(torch.cat([e, action, s_prev], -1), c_prev)
        mean, std = dyn.latent_net(torch.cat([c, s_prev, d_prev], -1)).chunk(2, -1)
        d = dyn.decoder_cell(mean, d_prev)  # no generator: s_t = mean
        return mean, F.softplus(std) + 0.1, c, d

    prior, post = dyn.filter_step(prev, action, embed, None)
    for state, e in ((post, embed), (prior, torch.zeros(4, E))):
        mean, std, c, d = by_hand(e)
        torch.testing.assert_close(state.mean, mean)
        torch.testing.assert_close(state.std, std)
        torch.testing.assert_close(state.deter, torch.cat([c, d], -1))
        torch.testing.assert_close(dyn.features(state), d)  # the heads read d_t only
    # the prior does not see the observation; the posterior does
    prior2, post2 = dyn.filter_step(prev, action, embed + 1, None)
    assert torch.equal(prior2.mean, prior.mean) and torch.equal(prior2.deter, prior.deter)
    assert not torch.allclose(post2.mean, post.mean)
    # the open-loop step (imagination, overshooting, planner) is the filtering prior
    assert torch.equal(dyn.prior_step(prev, action, None).mean, prior.mean)
    # with sampling, the decoder GRU consumes the sample s_t, not the mean
    _, sampled = dyn.filter_step(prev, action, embed, gen(2))
    assert not torch.allclose(sampled.stoch, sampled.mean)
    torch.testing.assert_close(dyn.features(sampled), dyn.decoder_cell(sampled.stoch, d_prev))
    torch.testing.assert_close(sampled.mean, post.mean)  # the sample does not feed back into its own step


def test_drnn_loss_trains_every_part():
    """The bound with overshooting backpropagates into the encoder GRU (its embedding columns included), the
    latent layers, the decoder GRU, the conv encoder and the heads, with finite values."""
    torch.manual_seed(0)
    model = WorldModel(TINY_DRNN, action_dim=2)
    loss, metrics, grads = _loss_and_grads(model, _batch(), LossConfig(free_nats=0.0, overshooting_distance=3))
    assert torch.isfinite(loss) and metrics["loss/kl"] > 0
    assert set(grads) == {n for n, _ in model.named_parameters()}
    for name, grad in grads.items():
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    assert grads["dynamics.encoder_cell.weight_ih"][:, : model.encoder.embed_size].abs().sum() > 0


def test_drnn_plans_and_acts():
    """The planner's score is the sum of predicted rewards along the open-loop prior (also in bfloat16, within
    rounding), and the MPC agent filters and plans with it reproducibly."""
    torch.manual_seed(0)
    model = WorldModel(TINY_DRNN, action_dim=2).eval()
    dyn = model.dynamics
    belief = dyn.initial(2, "cpu").map(lambda x: x + torch.randn(x.shape, generator=gen(3)))
    actions = torch.rand(2, 5, 4, 2, generator=gen(4)) * 2 - 1
    with torch.inference_mode():
        scores = latent_objective(model, belief, None)(actions)
        states = dyn.imagine(belief.map(lambda x: x[1:]), actions[1:, 2], None)
        torch.testing.assert_close(scores[1, 2], model.predict_reward(states).sum())
        with precision.autocast(torch.bfloat16, "cpu"):
            bf16 = latent_objective(model, belief, None, rollout=model.planner_rollout(torch.bfloat16))(actions)
    torch.testing.assert_close(bf16, scores, rtol=0.05, atol=0.05)
    obs = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    runs = []
    for _ in range(2):
        agent = MPCAgent(model, PlannerConfig(horizon=3, iterations=2, candidates=16, top_k=4), 5, 0.3, gen(1),
                         torch.device("cpu"))
        agent.reset(3)
        runs.append(np.stack([agent.act(obs) for _ in range(3)]))
    assert runs[0].shape == (3, 3, 2) and np.all(np.abs(runs[0]) <= 1) and np.array_equal(*runs)
    assert agent.state.deter.shape == (3, 16)
