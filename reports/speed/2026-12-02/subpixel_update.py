"""One world-model update (planet.bench._update_fn: paper-size model, random batch) with the decoder's sub-pixel
layers off (native transposed convolutions) and on (the default on CPU), timed in turns in one process; float32 and
bf16 at B=16, float32 at B=50; FLOP counted by FlopCounterMode for both. Usage: python subpixel_update.py B REPEATS"""

import json
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from planet import bench, models
from planet.utils import retain_freed_memory

retain_freed_memory()  # as the `planet` CLI does
torch.set_num_threads(2)
batch, repeats = int(sys.argv[1]), int(sys.argv[2])
dtypes = [torch.float32, torch.bfloat16] if batch == 16 else [torch.float32]
plain_init = models.Decoder.__init__
fns, names, flop = [], [], {}
for dtype in dtypes:
    for layers in ((), (2, 6)):
        def init(self, *args, _layers=layers, **kwargs):
            plain_init(self, *args, **kwargs)
            self._subpixel_layers = _layers
        models.Decoder.__init__ = init
        name = f"{str(dtype).removeprefix('torch.')}_{'subpixel' if layers else 'native'}"
        fns.append(bench._update_fn(torch.device("cpu"), batch, 50, dtype=dtype))
        names.append(name)
        if dtype == torch.float32:
            counter = FlopCounterMode(display=False)
            with counter:
                fns[-1]()
            flop[name] = counter.get_total_flops()
models.Decoder.__init__ = plain_init
seconds = bench._median_times(fns, repeats, torch.device("cpu"))
print(json.dumps({"batch": batch, "repeats": repeats, "flop": flop,
                  "update_s": {n: round(s, 3) for n, s in zip(names, seconds, strict=True)}}))
