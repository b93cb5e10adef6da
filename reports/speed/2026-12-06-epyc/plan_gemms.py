import time, statistics, json, collections, torch
from torch.utils._python_dispatch import TorchDispatchMode
from planet import bench
torch.set_num_threads(2)
dev = torch.device("cpu")
shapes = collections.Counter()
class Log(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func == torch.ops.aten.gru_cell.default:
            x, h, wi, wh = args[:4]
            shapes[(tuple(x.shape), (wi.shape[1], wi.shape[0]), True)] += 1
            shapes[(tuple(h.shape), (wh.shape[1], wh.shape[0]), True)] += 1
        if func == torch.ops.aten.linear.default:
            x, w = args[0], args[1]
            shapes[(tuple(x.shape), (w.shape[1], w.shape[0]), len(args) > 2 and args[2] is not None)] += 1
        return func(*args, **(kwargs or {}))
fn = bench._plan_fn(dev, 1000, 10, 12, 100)
with Log():
    fn()
print(dict(shapes))
ops = []
flop = 0
for (sa, sb, add), n in shapes.items():
    a = torch.randn(*sa); b = torch.randn(sb[1], sb[0]).t(); c = torch.randn(sb[1])
    ops.append((a, b, c, add, n)); flop += 2 * sa[0] * sa[1] * sb[1] * n
def gemms():
    for a, b, c, add, n in ops:
        for _ in range(n):
            torch.addmm(c, a, b) if add else a @ b
A = torch.randn(2048, 2048); B = torch.randn(2048, 2048)
def big():
    for _ in range(5): A @ B
def t(fns, r=5):
    for f in fns: f()
    ts = [[] for _ in fns]
    for _ in range(r):
        for f, tt in zip(fns, ts):
            t0 = time.perf_counter(); f(); tt.append(time.perf_counter() - t0)
    return [statistics.median(x) for x in ts]
g, m, p = t([gemms, big, fn], r=9)
rate = 5 * 2 * 2048**3 / m
print(json.dumps({"plan_gemm_flop": flop, "gemms_alone_s": g, "gemm_rate_gflops": flop / g / 1e9,
                  "matmul_2048_gflops": rate / 1e9, "gemms_fraction_of_rate": flop / g / rate,
                  "plan_s": p, "plan_fraction_of_rate": flop / p / rate, "gemm_share_of_plan": g / p}))
