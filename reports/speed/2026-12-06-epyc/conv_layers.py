import time, statistics, json, torch, torch.nn.functional as F
from planet import ops
torch.set_num_threads(2); torch.manual_seed(0)
CL = torch.channels_last
N = 800
def conv_flop(n, cin, cout, k, oh, ow): return 2*n*cin*cout*k*k*oh*ow
layers = []
# encoder: k4 s2
for cin, cout, hin in ((3,32,64),(32,64,31),(64,128,14),(128,256,6)):
    layers.append(("enc", cin, cout, 4, hin))
# decoder deconvs (after the 1x1 one): 128->64 k5 from 5x5, 64->32 k6 from 13x13, 32->3 k6 from 30x30
for cin, cout, k, hin, sub in ((128,64,5,5,True),(64,32,6,13,False),(32,3,6,30,True)):
    layers.append(("dec"+("_sub" if sub else ""), cin, cout, k, hin))
def t(fn, r=5):
    fn(); ts=[]
    for _ in range(r):
        t0=time.perf_counter(); fn(); ts.append(time.perf_counter()-t0)
    return statistics.median(ts)
for kind, cin, cout, k, hin in layers:
    x = torch.randn(N, cin, hin, hin).contiguous(memory_format=CL).requires_grad_(cin != 3)
    if kind == "enc":
        w = torch.randn(cout, cin, k, k).contiguous(memory_format=CL).requires_grad_()
        b = torch.zeros(cout, requires_grad=True)
        f = lambda: F.conv2d(x, w, b, stride=2)
    else:
        w = torch.randn(cin, cout, k, k).contiguous(memory_format=CL).requires_grad_()
        b = torch.zeros(cout, requires_grad=True)
        if kind == "dec_sub":
            f = lambda: ops.conv_transpose2d_s2(x, w, b)
        else:
            f = lambda: F.conv_transpose2d(x, w, b, stride=2)
    y = f(); g = torch.randn_like(y).contiguous(memory_format=CL)
    oh = y.shape[-1]
    fl = conv_flop(N, cin, cout, k, oh if kind=="enc" else hin, oh if kind=="enc" else hin)
    tf = t(f)
    def fb():
        yy = f(); yy.backward(g)
    tfb = t(fb)
    tb = tfb - tf
    nb = 2 if cin != 3 else 1
    print(json.dumps({"layer": f"{kind} {cin}->{cout} k{k} in{hin}", "fwd_ms": round(tf*1e3,1), "bwd_ms": round(tb*1e3,1),
          "fwd_gflops": round(fl/tf/1e9,1), "bwd_gflops": round(nb*fl/tb/1e9,1)}))
