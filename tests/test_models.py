"""World model: hand-computed KL and free nats, 5-bit preprocessing, shapes, time alignment, overshooting."""

from __future__ import annotations

import math

import pytest
import torch

from planet.config import LossConfig, ModelConfig
from planet.models import (
    Decoder,
    Encoder,
    State,
    WorldModel,
    free_nats_kl,
    kl_normal,
    normal_log_prob,
    postprocess,
    preprocess,
)

TINY = ModelConfig(deter_size=8, stoch_size=3, hidden_size=8, cnn_depth=2, reward_units=8)


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
    """Speed work keeps the function: the encoder's channels-last layout and the decoder's first deconvolution
    done as a matrix multiply give the plain NCHW layers' outputs (and gradients) to float32 rounding."""
    import torch.nn.functional as F  # noqa: PLC0415

    torch.manual_seed(0)
    enc, dec = Encoder(4), Decoder(11, 4)
    image = torch.rand(2, 3, 3, 64, 64, generator=gen()) - 0.5
    x = image.reshape(-1, 3, 64, 64).contiguous()
    for conv in enc.net[::2]:
        x = F.relu(F.conv2d(x, conv.weight.contiguous(), conv.bias, 2))
    torch.testing.assert_close(enc(image), x.reshape(2, 3, -1), rtol=1e-5, atol=1e-5)

    feats = torch.randn(2, 3, 11, generator=gen(1), requires_grad=True)
    fast = dec(feats)
    plain = dec.net(dec.dense(feats).reshape(-1, 16 * 8, 1, 1)).reshape(2, 3, 3, 64, 64)  # ConvTranspose2d on 1x1
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    g_fast, g_plain = (torch.autograd.grad(out.square().sum(), [feats, dec.net[0].weight]) for out in (fast, plain))
    for a, b in zip(g_fast, g_plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_retain_freed_memory_is_optional(monkeypatch):
    from planet import utils  # noqa: PLC0415

    monkeypatch.setenv("PLANET_RETAIN_FREED_MEMORY", "0")
    assert utils.retain_freed_memory() is False


@pytest.mark.parametrize(("kind", "feature_size"), [("rssm", 11), ("gru", 11), ("ssm", 3)])
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


def test_rssm_time_alignment():
    """Row t: prior depends on a_{t-1} (row t's action) but not on o_t; posterior on o_t; nothing on the future."""
    torch.manual_seed(0)
    model = WorldModel(TINY, action_dim=2)
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


def test_overshooting_at_distance_one_equals_the_standard_bound():
    torch.manual_seed(0)
    model = WorldModel(TINY, action_dim=2)
    batch = _batch()
    free = 0.01  # small allowance so the KL term is active and carries gradient
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


def test_overshooting_adds_the_open_loop_terms_to_the_full_one_step_kl():
    """The loss is the standard one-step KL at full weight plus beta x the mean of the d >= 2 terms (G), and the
    open-loop d = 1 term reproduces the filtering KL exactly."""
    torch.manual_seed(0)
    model = WorldModel(TINY, action_dim=2)
    batch = _batch()
    free, beta = 0.01, 0.5
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


def test_loss_is_deterministic_under_a_seed():
    torch.manual_seed(0)
    model = WorldModel(TINY, action_dim=2)
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
