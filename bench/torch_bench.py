"""bench/torch_bench.py: one PyTorch measurement of bench/run.py, in a process of its own.

Networks (VideoPose3D, Pavllo et al. 2019; written here from the paper's description):
- `baseline`: plain nn.Conv1d / nn.BatchNorm1d / ReLU / Dropout, as VideoPose3D writes it;
- `chiral`: the chirality-equivariant network written the way the chirality paper's reference
  code works: every layer keeps its shared (tied) weight blocks, and every call rebuilds the
  dense weight from them with the mirror's sign patterns and masks, then runs a dense
  convolution. The algebra is ../shared/design/chirality.md: T x = s * x[partner]; a weight W is
  equivariant iff W[f', f] = s(f') s(f) W[p(f'), p(f)], so with the joints grouped as
  [left | right | centre] (right aligned to left by the mirror) the free blocks are LL, LR, LC,
  CL, CC and RR = M*LL, RL = M*LR, RC = M*LC, CR = M*CL, CC masked to M = +1 (M the outer
  product of the channel signs). Batch norm uses the statistics of the mirror-augmented batch,
  gamma shared by partners, beta even; every non-odd activation is tanh (activations = paper),
  as chiralc compiles it by default.

Forms: `dilated` (TemporalModel: dilation 3^i, residual centre crop; the inference form) and
`strided` (TemporalModelOptimized1f: stride = kernel = 3, residual x[:, :, 1::3]; training).

--device cuda runs it on the GPU (bench/gpu_run.py) in float32 throughout: TF32 is turned off
for cuBLAS and cuDNN, as chiralc's CUDA programs compute their GEMMs in float32; every timed
call ends with torch.cuda.synchronize(), and the result adds the GPU's peak allocated memory.

Prints one JSON line: {"seconds": median per batch, "compile_s": ..., "error": ...}.
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# Human3.6M's 17 joints in the data's order (examples/videopose3d.net).
JOINTS = ["hip", "rhip", "rknee", "rfoot", "lhip", "lknee", "lfoot", "spine", "thorax", "neck", "head",
          "lshoulder", "lelbow", "lwrist", "rshoulder", "relbow", "rwrist"]
MIRROR = [("lhip", "rhip"), ("lknee", "rknee"), ("lfoot", "rfoot"), ("lshoulder", "rshoulder"),
          ("lelbow", "relbow"), ("lwrist", "rwrist")]
LEFT = [JOINTS.index(a) for a, _ in MIRROR]
RIGHT = [JOINTS.index(b) for _, b in MIRROR]
CENTRE = [j for j in range(len(JOINTS)) if j not in LEFT and j not in RIGHT]


class Kind:
    """A chirality type in the joints layout: every joint a unit of `c` channels with signs `s`."""

    def __init__(self, signs):
        self.c = len(signs)
        self.s = torch.tensor(signs, dtype=torch.float32)
        order = LEFT + RIGHT + CENTRE   # grouped position -> joint
        pos = {j: g for g, j in enumerate(order)}
        # Feature f = joint * c + channel (joint-major) sits at grouped row pos[joint] * c + channel.
        self.gather = torch.tensor([pos[j] * self.c + q for j in range(len(JOINTS)) for q in range(self.c)])
        partner = list(range(len(JOINTS)))
        for l, r in zip(LEFT, RIGHT):
            partner[l], partner[r] = r, l
        self.partner = torch.tensor([partner[j] * self.c + q for j in range(len(JOINTS)) for q in range(self.c)])
        self.sign = self.s.repeat(len(JOINTS))
        # Orbit of every feature: a left/right pair shares one, a centre feature has its own.
        orbit_of_joint = {}
        for i, (l, r) in enumerate(zip(LEFT, RIGHT)):
            orbit_of_joint[l] = orbit_of_joint[r] = i
        for i, j in enumerate(CENTRE):
            orbit_of_joint[j] = len(LEFT) + i
        self.orbit = torch.tensor([orbit_of_joint[j] * self.c + q for j in range(len(JOINTS)) for q in range(self.c)])
        self.width = len(JOINTS) * self.c


def hidden_kind(width, neg_ratio=1 / 3):
    c = width // len(JOINTS)
    n = round(neg_ratio * c)
    return Kind([-1.0] * n + [1.0] * (c - n))


class ChiralConv1d(nn.Module):
    def __init__(self, kin, kout, kernel, stride=1, dilation=1, bias=False):
        super().__init__()
        self.kin, self.kout, self.stride, self.dilation = kin, kout, stride, dilation
        nl, nc, ci, co = len(LEFT), len(CENTRE), kin.c, kout.c
        bound = 1.0 / (kin.width * kernel) ** 0.5

        def block(rows, cols):
            return nn.Parameter(torch.empty(rows, cols, kernel).uniform_(-bound, bound))

        self.w_ll, self.w_lr = block(nl * co, nl * ci), block(nl * co, nl * ci)
        self.w_lc, self.w_cl = block(nl * co, nc * ci), block(nc * co, nl * ci)
        self.w_cc = block(nc * co, nc * ci)
        sign = lambda k, n: k.s.repeat(n)
        self.register_buffer("m_ll", torch.outer(sign(kout, nl), sign(kin, nl))[:, :, None])
        self.register_buffer("m_lc", torch.outer(sign(kout, nl), sign(kin, nc))[:, :, None])
        self.register_buffer("m_cl", torch.outer(sign(kout, nc), sign(kin, nl))[:, :, None])
        self.register_buffer("mask_cc", (torch.outer(sign(kout, nc), sign(kin, nc)) > 0).float()[:, :, None])
        self.register_buffer("g_in", kin.gather)
        self.register_buffer("g_out", kout.gather)
        if bias:
            self.b_l = nn.Parameter(torch.empty(nl * co).uniform_(-bound, bound))
            self.b_c = nn.Parameter(torch.empty(nc * co).uniform_(-bound, bound))
            self.register_buffer("s_l", sign(kout, nl))
            self.register_buffer("even_c", (sign(kout, nc) > 0).float())
        else:
            self.b_l = None

    def dense(self):
        """The dense [out, in, k] weight, rebuilt from the shared blocks (every call)."""
        top = torch.cat([self.w_ll, self.w_lr, self.w_lc], 1)
        mid = torch.cat([self.m_ll * self.w_lr, self.m_ll * self.w_ll, self.m_lc * self.w_lc], 1)
        bot = torch.cat([self.w_cl, self.m_cl * self.w_cl, self.mask_cc * self.w_cc], 1)
        w = torch.cat([top, mid, bot], 0)
        w = w.index_select(0, self.g_out).index_select(1, self.g_in)
        b = None
        if self.b_l is not None:
            b = torch.cat([self.b_l, self.s_l * self.b_l, self.even_c * self.b_c]).index_select(0, self.g_out)
        return w, b

    def forward(self, x):
        w, b = self.dense()
        return F.conv1d(x, w, b, stride=self.stride, dilation=self.dilation)


class ChiralBatchNorm1d(nn.Module):
    """Batch norm over the mirror-augmented batch: mean (m + T m)/2, variance pooled over partners."""

    def __init__(self, kind, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        norbits = (len(LEFT) + len(CENTRE)) * kind.c
        self.gamma = nn.Parameter(torch.ones(norbits))
        self.beta = nn.Parameter(torch.zeros(norbits))
        self.register_buffer("orbit", kind.orbit)
        self.register_buffer("partner", kind.partner)
        self.register_buffer("sign", kind.sign)
        # beta is even: beta_p(f) = s beta_f, zero on negated centre features.
        centre = torch.zeros(kind.width, dtype=torch.bool)
        for j in CENTRE:
            centre[j * kind.c:(j + 1) * kind.c] = True
        right = torch.zeros(kind.width, dtype=torch.bool)
        for j in RIGHT:
            right[j * kind.c:(j + 1) * kind.c] = True
        bsign = torch.where(right, kind.sign, torch.ones_like(kind.sign))
        bsign = torch.where(centre & (kind.sign < 0), torch.zeros_like(bsign), bsign)
        self.register_buffer("beta_sign", bsign)
        self.register_buffer("running_mean", torch.zeros(kind.width))
        self.register_buffer("running_var", torch.ones(kind.width))

    def forward(self, x):
        gamma = self.gamma.index_select(0, self.orbit)
        beta = self.beta.index_select(0, self.orbit) * self.beta_sign
        if self.training:
            m = x.mean((0, 2))
            q = (x * x).mean((0, 2))
            mu = 0.5 * (m + self.sign * m.index_select(0, self.partner))
            var = 0.5 * (q + q.index_select(0, self.partner)) - mu * mu
            with torch.no_grad():
                n = x.shape[0] * x.shape[2]
                self.running_mean.lerp_(mu, self.momentum)
                self.running_var.lerp_(var * n / max(n - 1, 1), self.momentum)
        else:
            mu, var = self.running_mean, self.running_var
        scale = gamma * torch.rsqrt(var + self.eps)
        return x * scale[None, :, None] + (beta - mu * scale)[None, :, None]


class VideoPose3D(nn.Module):
    """TemporalModel (form dilated) or TemporalModelOptimized1f (form strided), 3^(blocks+1) frames."""

    def __init__(self, chiral, form, blocks, width, drop=0.25):
        super().__init__()
        self.form, self.blocks = form, blocks
        strided = form == "strided"
        if chiral:
            kin, kh, kout = Kind([-1.0, 1.0]), hidden_kind(width), Kind([-1.0, 1.0, 1.0])
            conv = lambda a, b, k, **kw: ChiralConv1d(a, b, k, **kw)
            bn = lambda k: ChiralBatchNorm1d(k)
            self.act = torch.tanh
        else:
            kin, kh, kout = 34, width, 51
            conv = lambda a, b, k, bias=False, **kw: nn.Conv1d(a, b, k, bias=bias, **kw)
            bn = lambda k: nn.BatchNorm1d(k, momentum=0.1)
            self.act = F.relu
        self.drop = nn.Dropout(drop)
        self.expand_conv = conv(kin, kh, 3, stride=3 if strided else 1)
        self.expand_bn = bn(kh)
        self.convs, self.bns = nn.ModuleList(), nn.ModuleList()
        for i in range(1, blocks + 1):
            if strided:
                self.convs.append(conv(kh, kh, 3, stride=3))
            else:
                self.convs.append(conv(kh, kh, 3, dilation=3 ** i))
            self.convs.append(conv(kh, kh, 1))
            self.bns.append(bn(kh))
            self.bns.append(bn(kh))
        self.shrink = conv(kh, kout, 1, bias=True)

    def forward(self, x):                       # x: [B, T, 17, 2]
        b, t = x.shape[0], x.shape[1]
        x = x.reshape(b, t, -1).permute(0, 2, 1)
        x = self.drop(self.act(self.expand_bn(self.expand_conv(x))))
        for i in range(self.blocks):
            pad = 3 ** (i + 1)
            res = x[:, :, 1::3] if self.form == "strided" else x[:, :, pad:x.shape[2] - pad]
            x = self.drop(self.act(self.bns[2 * i](self.convs[2 * i](x))))
            x = res + self.drop(self.act(self.bns[2 * i + 1](self.convs[2 * i + 1](x))))
        x = self.shrink(x)
        return x.permute(0, 2, 1).reshape(b, -1, 17, 3)


def out_frames(form, blocks, frames):
    if form == "strided":
        t = (frames - 3) // 3 + 1
        for _ in range(blocks):
            t = (t - 3) // 3 + 1
        return t
    return frames - (3 ** (blocks + 1) - 1)


def mpjpe(pred, target):
    return torch.norm(pred - target, dim=-1).mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--net", choices=["baseline", "chiral"], required=True)
    ap.add_argument("--mode", choices=["infer", "train"], required=True)
    ap.add_argument("--form", choices=["dilated", "strided"], required=True)
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--frames", type=int, required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    dev = torch.device(a.device)
    if a.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        sync = torch.cuda.synchronize
    else:
        sync = lambda: None  # noqa: E731
    model = VideoPose3D(a.net == "chiral", a.form, a.blocks, a.width).to(dev)
    x = torch.randn(a.batch, a.frames, 17, 2, device=dev)
    run = model
    result = {"torch": torch.__version__}
    if a.compile:
        try:
            run = torch.compile(model)
        except Exception as e:  # noqa: BLE001: any failure means "not available here"
            print(json.dumps({"error": f"torch.compile: {type(e).__name__}: {str(e).splitlines()[0][:200]}"}))
            return 0
    try:
        times = []
        if a.mode == "infer":
            model.eval()
            with torch.inference_mode():
                for s in range(a.warmup + a.steps):
                    sync()
                    t0 = time.perf_counter()
                    y = run(x)
                    sync()
                    dt = time.perf_counter() - t0
                    if s == 0:
                        result["first_call_s"] = dt
                    if s >= a.warmup:
                        times.append(dt)
            result["out_frames"] = int(y.shape[1])
        else:
            model.train()
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
            t_out = out_frames(a.form, a.blocks, a.frames)
            target = torch.randn(a.batch, t_out, 17, 3, device=dev)
            for s in range(a.warmup + a.steps):
                sync()
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                loss = mpjpe(run(x), target)
                loss.backward()
                opt.step()
                sync()
                dt = time.perf_counter() - t0
                if s == 0:
                    result["first_call_s"] = dt
                if s >= a.warmup:
                    times.append(dt)
            result["out_frames"] = int(t_out)
        result["seconds"] = statistics.median(times)
        if a.device == "cuda":
            result["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    except Exception as e:  # noqa: BLE001
        what = "torch.compile" if a.compile else "eager"
        msg = str(e).strip().splitlines()
        result = {"error": f"{what}: {type(e).__name__}: {msg[0][:200] if msg else ''}"}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
