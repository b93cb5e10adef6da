"""The fast paths compute what the float32 eager path computes: chunked planning (exactly), bfloat16 updates and
plans (within stated tolerances), the compiled imagination (within float32 rounding), and `auto`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from planet import precision
from planet.agents import MPCAgent
from planet.config import ComputeConfig, LossConfig, ModelConfig, PlannerConfig
from planet.models import WorldModel, preprocess
from planet.planner import cem, latent_objective

SMALL = ModelConfig(deter_size=32, stoch_size=6, hidden_size=32, cnn_depth=4, reward_units=32)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _model(cfg: ModelConfig = SMALL, action_dim: int = 2, seed: int = 0) -> WorldModel:
    torch.manual_seed(seed)
    return WorldModel(cfg, action_dim).eval()


def _belief(model: WorldModel, n: int):
    return model.dynamics.initial(n, "cpu").map(lambda x: x + torch.randn(x.shape, generator=gen(7)))


@pytest.mark.parametrize("kind", ["rssm", "gru", "ssm", "drnn"])
def test_chunking_the_candidates_never_changes_the_scores(kind):
    """All prior noise is drawn before the chunk loop, in the unchunked order: any chunk size gives the same samples
    (and, with the same rows per matrix multiply, the same bits)."""
    model = _model(ModelConfig(**{**SMALL.__dict__, "kind": kind}))
    belief = _belief(model, 3)
    actions = torch.rand(3, 5, 4, 2, generator=gen(1)) * 2 - 1
    with torch.inference_mode():
        whole = latent_objective(model, belief, gen(2), chunk_rows=10**6)(actions)
        chunked = latent_objective(model, belief, gen(2), chunk_rows=5)(actions)  # one belief per chunk
    assert torch.allclose(whole, chunked, rtol=1e-6, atol=1e-6)
    with torch.inference_mode():
        other = latent_objective(model, belief, gen(3), chunk_rows=5)(actions)
    assert not torch.allclose(whole, other) or kind == "gru"  # the noise is used (the gru variant has none)


def _bf16_vs_fp32_scores(model: WorldModel, candidates: int = 400):
    belief = _belief(model, 1)
    actions = torch.rand(1, candidates, 12, 2, generator=gen(1)) * 2 - 1
    with torch.inference_mode():
        fp32 = latent_objective(model, belief, gen(2))(actions)
        rollout = model.planner_rollout(torch.bfloat16)
        with precision.autocast(torch.bfloat16, "cpu"):
            bf16 = latent_objective(model, belief, gen(2), rollout=rollout)(actions)
    return fp32[0], bf16[0]


def test_bf16_plan_keeps_the_ranking_of_the_candidates():
    """CEM uses only the ranking of the candidates (its top K). Tolerance: the bf16 scores (8-bit mantissa, relative
    rounding 2^-9 per operation, over a 12-step rollout) differ from float32 by at most 5% of the spread of the
    scores, and 90% of the float32 top-K (K = J/10, as in the paper) stay in the bf16 top-K."""
    model = _model(ModelConfig())  # paper-size dynamics and reward head: the precision that matters
    with torch.no_grad():  # a reward head with some spread across candidates (an untrained one is nearly flat)
        model.reward[-1].weight.mul_(50)
    fp32, bf16 = _bf16_vs_fp32_scores(model)
    spread = fp32.max() - fp32.min()
    assert spread > 0.1
    assert (bf16 - fp32).abs().max() <= 0.05 * spread, float((bf16 - fp32).abs().max() / spread)
    k = len(fp32) // 10
    overlap = len(set(fp32.topk(k).indices.tolist()) & set(bf16.topk(k).indices.tolist())) / k
    assert overlap >= 0.9, overlap


def test_bf16_planner_copy_follows_the_model_weights():
    """The bfloat16 copy is cached (so a compiled rollout compiles once) and refreshed from the model at every
    call."""
    model = _model()
    rollout = model.planner_rollout(torch.bfloat16)
    target = rollout.__self__
    assert target is not model and next(target.reward.parameters()).dtype == torch.bfloat16
    assert "planner" not in "".join(n for n, _ in model.named_modules())  # not a submodule: not in state_dict
    assert set(model.state_dict()) == set(_model().state_dict())
    with torch.no_grad():
        model.reward[-1].bias.add_(1.0)
    assert model.planner_rollout(torch.bfloat16).__self__ is target
    assert torch.allclose(target.reward[-1].bias.float(), model.reward[-1].bias, atol=1e-2)
    assert model.planner_rollout(torch.float32).__self__ is model


def test_bf16_update_loss_stays_close_to_float32():
    """Five Adam updates from the same weights on the same batch, float32 vs bf16 autocast. Tolerance: the losses
    agree within 1% (the image term sums 12288 pixel log-likelihoods in float32; bf16 rounds the decoder's means
    by at most 2^-9 relative, i.e. ~1e-3 per pixel), and the KL's statistics stay float32."""
    obs = torch.randint(0, 256, (3, 8, 64, 64, 3), dtype=torch.uint8, generator=gen(0))
    act = torch.rand(3, 8, 2, generator=gen(1)) * 2 - 1
    rew = torch.rand(3, 8, generator=gen(2))
    losses = {}
    for dtype in (torch.float32, torch.bfloat16):
        model = _model().train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-4)
        g = gen(3)
        out = []
        for _ in range(5):
            image = preprocess(obs, 5, g)
            with precision.autocast(dtype, "cpu"):
                loss, metrics = model.loss(image, act, rew, LossConfig(free_nats=0.0), g)
            assert loss.dtype == torch.float32 and metrics["kl"].dtype == torch.float32
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.append(loss.item())
        losses[dtype] = np.array(out)
    fp32, bf16 = losses[torch.float32], losses[torch.bfloat16]
    assert fp32[-1] < fp32[0] and bf16[-1] < bf16[0]  # both learn
    np.testing.assert_allclose(bf16, fp32, rtol=0.01)


def test_eager_rollout_is_the_step_loop():
    """`imagine_rollout` is `imagine_step` H times with the rewards summed in order: bit-identical, so runs made
    before the planner called it (step by step) resume and replay the same."""
    model = _model()
    belief = _belief(model, 2)
    actions = torch.rand(6, 5, 2, generator=gen(1)) * 2 - 1
    noise = [torch.randn(6, model.dynamics.stoch_size, generator=gen(2)) for _ in range(5)]
    stoch, deter = belief.stoch.repeat_interleave(3, 0), belief.deter.repeat_interleave(3, 0)
    with torch.inference_mode():
        total = torch.zeros(6)
        s, h = stoch, deter
        for k in range(5):
            s, h, reward = model.imagine_step(s, h, actions[:, k], noise[k])
            total = total + reward
        assert torch.equal(model.imagine_rollout(stoch, deter, actions, noise), total)


def test_compiled_imagination_equals_eager():
    """torch.compile (inductor's C++ on CPU) of the planner's whole horizon: the same scores within float32
    rounding, with the prior's noise and without it (no generator: the mean)."""
    pytest.importorskip("torch._inductor")
    model = _model()
    belief = _belief(model, 2)
    actions = torch.rand(2, 16, 4, 2, generator=gen(1)) * 2 - 1
    rollout = model.planner_rollout(torch.float32, compile_rollout=True)
    with torch.inference_mode():
        for g in (gen, lambda seed: None):
            eager = latent_objective(model, belief, g(2))(actions)
            compiled = latent_objective(model, belief, g(2), rollout=rollout)(actions)
            assert torch.allclose(eager, compiled, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # compiling forward and backward takes ~25 s on 2 cores
def test_compiled_update_equals_eager():
    """`compute.compile` compiles the loss's encoder and decoder: the same loss and gradients within float32
    rounding (inductor reorders sums), and the state_dict keeps its keys (checkpoints are interchangeable)."""
    pytest.importorskip("torch._inductor")
    obs = torch.randint(0, 256, (2, 4, 64, 64, 3), dtype=torch.uint8, generator=gen(0))
    act, rew = torch.rand(2, 4, 2, generator=gen(1)) * 2 - 1, torch.rand(2, 4, generator=gen(2))
    results = []
    for compiled in (False, True):
        model = _model().train()
        if compiled:
            model.compile_update()
        loss, _ = model.loss(preprocess(obs, 5, gen(3)), act, rew, LossConfig(), gen(4))
        loss.backward()
        results.append((loss.detach(), {n: p.grad for n, p in model.named_parameters()}, set(model.state_dict())))
    (eager, g_eager, keys_eager), (comp, g_comp, keys_comp) = results
    torch.testing.assert_close(comp, eager, rtol=1e-5, atol=1e-4)
    assert keys_comp == keys_eager and g_comp.keys() == g_eager.keys()
    for name, grad in g_eager.items():
        torch.testing.assert_close(g_comp[name], grad, rtol=1e-3, atol=1e-5, msg=name)


def test_agent_plans_in_the_configured_precision():
    model = _model()
    planner = PlannerConfig(horizon=3, iterations=2, candidates=16, top_k=4)
    obs = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    acts = {}
    for name in ("fp32", "bf16"):
        agent = MPCAgent(model, planner, 5, 0.0, gen(1), torch.device("cpu"), ComputeConfig(plan_precision=name))
        agent.reset(2)
        assert agent.plan_dtype == precision.PRECISIONS[name]
        acts[name] = agent.act(obs, explore=False)
        assert acts[name].dtype == np.float32 and np.all(np.abs(acts[name]) <= 1)
    assert acts["fp32"].shape == acts["bf16"].shape == (2, 2)


@pytest.mark.slow  # inductor compiles a rollout per horizon shape: ~10-20 s on 2 cores with a cold cache
def test_agent_with_compute_compile_plans_on_the_compiled_horizon():
    """`compute.compile`: the agent plans with the compiled whole-horizon rollout (compiled once, reused by the next
    episode), and its scores match eager's within float32 rounding; acting twice from the same seeds gives the same
    actions (the compiled code is deterministic)."""
    pytest.importorskip("torch._inductor")
    model = _model()
    planner = PlannerConfig(horizon=3, iterations=2, candidates=16, top_k=4)
    obs = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    runs = []
    for _ in range(2):
        agent = MPCAgent(model, planner, 5, 0.3, gen(1), torch.device("cpu"), ComputeConfig(compile=True))
        agent.reset(2)
        assert agent.rollout is model.planner_rollout(torch.float32, True)  # cached: one compilation per process
        assert agent.rollout is not model.planner_rollout(torch.float32)  # ... and not the eager method
        runs.append(np.stack([agent.act(obs) for _ in range(2)]))
    assert runs[0].shape == (2, 2, 2) and np.all(np.abs(runs[0]) <= 1) and np.array_equal(*runs)
    actions = torch.rand(2, 16, 3, 2, generator=gen(5)) * 2 - 1
    belief = _belief(model, 2)
    with torch.inference_mode():
        eager = latent_objective(model, belief, gen(2))(actions)
        compiled = latent_objective(model, belief, gen(2), rollout=agent.rollout)(actions)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


def test_precision_names_and_auto():
    assert precision.resolve("fp32", "cpu") == torch.float32
    assert precision.resolve("bf16", "cpu") == torch.bfloat16
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        precision.resolve("fp8", "cpu")
    speedup = precision.bf16_speedup("cpu")
    expect = torch.bfloat16 if speedup >= precision.AUTO_MIN_SPEEDUP else torch.float32
    assert precision.resolve("auto", "cpu") == expect  # decided by the measurement, whatever this CPU is
    assert set(precision.cpu_flags()) <= set(precision.CPU_FLAGS)
    assert precision.autocast(torch.float32, "cpu").__class__.__name__ == "nullcontext"


def test_cem_with_a_bf16_objective_returns_float32_means():
    model = _model()
    belief = _belief(model, 1)
    rollout = model.planner_rollout(torch.bfloat16)
    with torch.inference_mode(), precision.autocast(torch.bfloat16, "cpu"):
        mean = cem(latent_objective(model, belief, gen(0), rollout=rollout), 1, 3, 2, 2, 16, 4, gen(0))
    assert mean.dtype == torch.float32 and mean.shape == (1, 3, 2)


@pytest.mark.parametrize("overshooting", [0, 3])
def test_no_stray_cpu_tensors_in_the_loss_and_the_objective(overshooting):
    """Model and data on the `meta` device (shapes only): any tensor created on the CPU by mistake and mixed in
    raises, as it would on CUDA. Covers the loss with backward and clipping, latent overshooting, and the CEM
    objective (generator=None: means instead of samples, since generators cannot live on `meta`)."""
    model = _model().train().to("meta")
    image = torch.empty(2, 5, 3, 64, 64, device="meta")
    act = torch.empty(2, 5, 2, device="meta")
    rew = torch.empty(2, 5, device="meta")
    loss, metrics = model.loss(image, act, rew, LossConfig(overshooting_distance=overshooting), None)
    assert loss.device.type == "meta" and all(v.device.type == "meta" for v in metrics.values())
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1000.0)
    assert all(p.grad is not None and p.grad.device.type == "meta" for p in model.parameters()
               if p.requires_grad and p.grad is not None)
    belief = model.dynamics.initial(3, "meta")
    scores = latent_objective(model, belief, None)(torch.empty(3, 4, 5, 2, device="meta"))
    assert scores.shape == (3, 4) and scores.device.type == "meta"



def test_parallel_jobs_claim_different_gpus(tmp_path):
    """Several local GPUs: each `--device cuda` job claims a free one (a lock per GPU, freed when the job's process
    dies), so parallel pipeline jobs do not all land on GPU 0. Tested with lock files only (no GPU needed)."""
    import subprocess
    import sys
    import time

    from planet.utils import claim_gpu

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from planet.utils import claim_gpu; "
                               f"print(claim_gpu(3, {str(tmp_path)!r}), flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "0"  # the first job takes GPU 0
        assert claim_gpu(3, tmp_path) == 1  # the next ones the free GPUs
        assert claim_gpu(3, tmp_path) == 2
        time.sleep(0.01)
        assert claim_gpu(3, tmp_path) == 0  # all taken: share the least recently claimed
    finally:
        holder.kill()
        holder.wait()
    assert claim_gpu(3, tmp_path) == 0  # a dead job's GPU is free again
