"""`planet.bench.bench_episode` (one `cpu`-preset cartpole training episode and one 10-episode evaluation) in one
precision. Usage: python user_episode.py PRECISION CODE_LABEL [--retain] (--retain keeps freed memory in the
process, as the `planet` CLI does; without it, as in user_episode_before.py, whose code had no such setting)."""

import json
import sys

import torch

from planet import bench
from planet.utils import retain_freed_memory

if "--retain" in sys.argv:
    assert retain_freed_memory()
torch.set_num_threads(2)
result = bench.bench_episode(torch.device("cpu"), sys.argv[1], sys.argv[1])
print(json.dumps(result | {"code": sys.argv[2]}))
