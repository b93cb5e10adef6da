"""The dense layers of one paper-size float32 plan (J=1000, I=10, H=12): their shapes (recorded with a dispatch
mode), then those matrix multiplies alone, a block of 2048^3 multiplies and the real plan, timed in turns (9 repeats).
Run with the campaign paused: `python plan_gemms.py`; first line: the shapes (plan_gemm_shapes.txt), then one JSON
line (two runs in plan_gemms.jsonl)."""

import collections
import json

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from planet import bench

torch.set_num_threads(2)
dev = torch.device("cpu")
shapes = collections.Counter()


class RecordDense(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func == torch.ops.aten.gru_cell.default:  # its two gate products
            x, h, w_ih, w_hh = args[:4]
            shapes[(tuple(x.shape), (w_ih.shape[1], w_ih.shape[0]), True)] += 1
            shapes[(tuple(h.shape), (w_hh.shape[1], w_hh.shape[0]), True)] += 1
        if func == torch.ops.aten.linear.default:
            x, w = args[0], args[1]
            shapes[(tuple(x.shape), (w.shape[1], w.shape[0]), len(args) > 2 and args[2] is not None)] += 1
        return func(*args, **(kwargs or {}))


plan = bench._plan_fn(dev, 1000, 10, 12, 100)
with RecordDense():
    plan()
print(dict(shapes))
operands, flop = [], 0
for (a_shape, b_shape, bias), count in shapes.items():
    operands.append((torch.randn(*a_shape), torch.randn(b_shape[1], b_shape[0]).t(), torch.randn(b_shape[1]), bias,
                     count))
    flop += 2 * a_shape[0] * a_shape[1] * b_shape[1] * count


def gemms():
    for a, b, c, bias, count in operands:
        for _ in range(count):
            torch.addmm(c, a, b) if bias else a @ b


big_a, big_b = torch.randn(2048, 2048), torch.randn(2048, 2048)


def block():
    for _ in range(5):
        big_a @ big_b


g, m, p = bench._median_times([gemms, block, plan], 9, dev)  # in turns, after one warm-up each
rate = 5 * 2 * 2048**3 / m
print(json.dumps({"plan_gemm_flop": flop, "gemms_alone_s": g, "gemm_rate_gflops": flop / g / 1e9,
                  "matmul_2048_gflops": rate / 1e9, "gemms_fraction_of_rate": flop / g / rate, "plan_s": p,
                  "plan_fraction_of_rate": flop / p / rate, "gemm_share_of_plan": g / p}))
