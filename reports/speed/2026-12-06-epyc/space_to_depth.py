import time, statistics, json, torch, torch.nn.functional as F
from planet import ops
torch.set_num_threads(2); torch.manual_seed(0)
CL = torch.channels_last; N = 800
def s2d_conv(x, w, b):
    n, c, h, wd = x.shape
    o = w.shape[0]
    he, we = h - h % 2, wd - wd % 2
    xs = F.pixel_unshuffle(x[:, :, :he, :we], 2)
    w2 = w.reshape(o, c, 2, 2, 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(o, 4 * c, 2, 2)
    return F.conv2d(xs.contiguous(memory_format=CL), w2.contiguous(memory_format=CL), b)
def t(fns, r=5):
    for f in fns: f()
    ts=[[] for _ in fns]
    for _ in range(r):
        for f, tt in zip(fns, ts):
            t0=time.perf_counter(); f(); tt.append(time.perf_counter()-t0)
    return [statistics.median(tt) for tt in ts]
for cin, cout, hin in ((3,32,64),(32,64,31),(64,128,14),(128,256,6)):
    x = torch.randn(N, cin, hin, hin).contiguous(memory_format=CL).requires_grad_(cin != 3)
    w = torch.randn(cout, cin, 4, 4).contiguous(memory_format=CL).requires_grad_()
    b = torch.zeros(cout, requires_grad=True)
    ref = F.conv2d(x, w, b, stride=2); alt = s2d_conv(x, w, b)
    err = (ref - alt).abs().max().item() / ref.abs().max().item()
    g = torch.randn_like(ref).contiguous(memory_format=CL)
    f1 = lambda: F.conv2d(x, w, b, stride=2)
    f2 = lambda: s2d_conv(x, w, b)
    def fb1(): F.conv2d(x, w, b, stride=2).backward(g)
    def fb2(): s2d_conv(x, w, b).backward(g)
    a, bb, c, d = t([f1, f2, fb1, fb2])
    print(json.dumps({"enc": f"{cin}->{cout} in{hin}", "rel_err": err, "fwd_native_ms": round(a*1e3,1), "fwd_s2d_ms": round(bb*1e3,1), "fb_native_ms": round(c*1e3,1), "fb_s2d_ms": round(d*1e3,1)}))
# decoder 128->64 k5 native vs sub-pixel
for cin, cout, k, hin in ((128,64,5,5),(64,32,6,13),(32,3,6,30)):
    x = torch.randn(N, cin, hin, hin).contiguous(memory_format=CL).requires_grad_()
    w = torch.randn(cin, cout, k, k).contiguous(memory_format=CL).requires_grad_()
    b = torch.zeros(cout, requires_grad=True)
    f1 = lambda: F.conv_transpose2d(x, w, b, stride=2)
    f2 = lambda: ops.conv_transpose2d_s2(x, w, b)
    g = torch.randn_like(f1()).contiguous(memory_format=CL)
    def fb1(): f1().backward(g)
    def fb2(): f2().backward(g)
    a, bb, c, d = t([f1, f2, fb1, fb2])
    print(json.dumps({"dec": f"{cin}->{cout} k{k} in{hin}", "fwd_native_ms": round(a*1e3,1), "fwd_sub_ms": round(bb*1e3,1), "fb_native_ms": round(c*1e3,1), "fb_sub_ms": round(d*1e3,1)}))
