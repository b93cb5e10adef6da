import json, torch
from planet import bench
torch.set_num_threads(2)
dev = torch.device("cpu")
args = (1000, 10, 12, 100)
fns = [bench._plan_fn(dev, *args), bench._plan_fn(dev, *args, compile_step=True), bench._matmul_fn(dev, 2048, count=5)[0]]
e, c, m = bench._median_times(fns, 7, dev)
rate = 5 * 2 * 2048**3 / m
print(json.dumps({"eager_s": e, "compiled_s": c, "eager_frac": 92.496e9 / e / rate, "compiled_frac": 92.496e9 / c / rate, "rate_gflops": rate / 1e9}))
