#!/usr/bin/env python3
"""experiments/run.py: the experiments of issue 6 on the CMU motion capture data.

    python3 experiments/run.py --build build --out /tmp/exp --config full|tiny
                               [--seeds 1,2,3] [--docs docs] [--jobs 2]

Every number comes from the built tools: `chiraldata` derives the task data from
data/cmu17.npz, `chiralc build` compiles each example (chiral and --baseline), the produced
programs train, evaluate (`eval`) and predict (`predict`). What the programs do not compute
(test-time flip averaging, PCK per predicted step, the equivariance error on real data) is
computed here from predict's .npy outputs, in plain Python: the machines that run this have
python3 but not necessarily NumPy. The script writes DOCS/results.md and SVG plots into DOCS.

Experiments (issue 6):
 1. lifting: martinez and videopose3d, chiral against --baseline, trained without (--mirror 0)
    and with mirror augmentation (--mirror 0.5), each evaluated in one pass and with test-time
    flip averaging (y = (F(x) + T_out F(T_in x)) / 2);
 2. limited data: 1..100 % of the training clips (subsets drawn by clip, below);
 3. forecasting: PCK@0.05 per predicted step;
 4. action recognition: top-1;
 5. design choices: --activations mixed and --sharing paper against the defaults;
 6. equivariance on real data: |T_out F(x) - F(T_in x)| / |F(x)| on the test set for every
    trained network.
"""
import argparse
import ast
import array
import concurrent.futures
import datetime
import hashlib
import json
import math
import os
import platform
import random
import re
import shlex
import statistics
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree
import zipfile

# ---------------------------------------------------------------------------------------
# Configurations. Times are measured on the development machine (2 cores, AMD EPYC, shared
# with other jobs), one thread per process, two processes at a time:
#   martinez width 255, batch 64: 7.6 s per epoch of the 48,240 training frames (70 mm
#   MPJPE after 2 epochs), eval 0.8 s; 0.2 ms per sample on a 1-clip subset;
#   videopose3d blocks=2 width 255 (27 frames), batch 64: 11.6 s per epoch of every 8th
#   training window (6,030; 108 mm after 2 epochs; batch 256 is as fast but learns half as
#   much per epoch), 6.7 s per pass over the 19,680 test frames;
#   forecast_lstm hidden 104 at -O2: 6.4 s per epoch (8,660 windows), 37 s to compile;
#   action_stconv width 68: 6 s per epoch (2,596 windows, batch 32).
# ---------------------------------------------------------------------------------------
#   Python: P-MPJPE 0.17 ms per pose (3.4 s for the test set), twice per lifting run.
LIFT_MARTINEZ_FULL = ["--batch", "64", "--lr", "0.001", "--decay", "0.96", "--epochs", "10"]
LIFT_VP3D_FULL = ["--batch", "64", "--lr", "0.001", "--decay", "0.95", "--epochs", "8", "--subsample", "8",
                  "--bn-momentum", "layer"]

CONFIGS = {
    # The whole script in well under 90 s on 2 cores: small widths, a fifth of the training
    # clips, a tenth of the test clips, 2 seeds (so that the standard deviation is exercised).
    "tiny": {
        "seeds": [1, 2],
        "opt": "-O0",                     # tiny programs: compiling dominates, not running
        "train_clips": 0.12,              # fraction of the training clips used as "100 %"
        "test_clips": 0.1,                # fraction of the test clips evaluated
        "lifting": {
            "martinez": {"net": "martinez", "sets": ["width=34"],
                         "train": ["--batch", "64", "--lr", "0.003", "--decay", "0.96", "--epochs", "2"]},
            "videopose3d": {"net": "videopose3d", "sets": ["blocks=1", "width=34"],
                            "train": ["--batch", "64", "--lr", "0.003", "--decay", "0.95", "--epochs", "1",
                                      "--subsample", "4", "--bn-momentum", "layer"]},
        },
        "limited": {"model": "martinez", "fractions": [0.01, 0.05, 0.1, 0.25, 0.5, 1.0], "max_epochs": 20},
        "design": {"model": "videopose3d"},
        "forecast": {"sets": ["hidden=26"], "data": [],
                     "train": ["--batch", "64", "--lr", "0.003", "--epochs", "1"]},
        "action": {"sets": ["width=34"], "data": ["--stride", "32"],
                   "train": ["--batch", "32", "--lr", "0.05", "--epochs", "2", "--bn-momentum", "layer"]},
    },
    # Estimate from the times above (not run yet): lifting 12 martinez runs x ~86 s (train 76,
    # eval and predict 3, Python metrics 7) + 12 videopose3d runs x ~120 s (train 93, eval
    # and 2 predicts 20, Python 7) ~ 2,500 s; limited data 45 martinez runs (5 fractions x 3
    # networks x 3 seeds, the 100 % runs reused from lifting; ~480k samples each: ~75 s, 30 s
    # at 1 % where 400 epochs cap it) ~ 3,000 s; design choices 6 videopose3d runs ~ 680 s;
    # forecasting 6 x (12 x 6.4 s + 3 s) ~ 480 s; action 6 x (15 x 6 s + 2 s) ~ 550 s;
    # compiling ~ 100 s (forecast_lstm at -O2: 37 s each). About 7,300 process-seconds, two
    # processes at a time: ~ 65 min on 2 free cores, up to 2 h on a shared machine.
    "full": {
        "seeds": [1, 2, 3],
        "opt": "-O2",
        "train_clips": 1.0,
        "test_clips": 1.0,
        "lifting": {
            "martinez": {"net": "martinez", "sets": ["width=255"], "train": LIFT_MARTINEZ_FULL},
            "videopose3d": {"net": "videopose3d", "sets": ["blocks=2", "width=255"], "train": LIFT_VP3D_FULL},
        },
        "limited": {"model": "martinez", "fractions": [0.01, 0.05, 0.1, 0.25, 0.5, 1.0], "max_epochs": 400},
        "design": {"model": "videopose3d"},
        "forecast": {"sets": ["hidden=104"], "data": [],
                     "train": ["--batch", "64", "--lr", "0.002", "--epochs", "12"]},
        "action": {"sets": ["width=68"], "data": ["--stride", "16"],
                   "train": ["--batch", "32", "--lr", "0.05", "--epochs", "15", "--bn-momentum", "layer"]},
    },
}

# the networks compared: label -> chiralc build flags
NETWORKS = {
    "chiral": [],
    "baseline": ["--baseline"],
    "chiral, activations mixed": ["--activations", "mixed"],
    "chiral, sharing paper": ["--sharing", "paper"],
}
TRAININGS = {"no augmentation": ["--mirror", "0"], "mirror 0.5": ["--mirror", "0.5"]}
# limited data: (network, training)
LIMITED_VARIANTS = [("chiral", "no augmentation"), ("baseline", "no augmentation"), ("baseline", "mirror 0.5")]
FRACTION_SEED = 1000   # the clip subsets of seed s are drawn with random.Random(FRACTION_SEED + s)


class Failure(Exception):
    pass


# ---------------------------------------------------------------------------------------
# .npy / .npz in plain Python (little-endian, C order: what the tools write)
# ---------------------------------------------------------------------------------------
_TYPECODES = {"<f4": "f", "<f8": "d", "<i8": "q", "<i4": "i"}
_DESCR = {v: k for k, v in _TYPECODES.items()}


class Arr:
    """A flat array.array with a shape."""

    def __init__(self, data, shape):
        self.data, self.shape = data, tuple(shape)

    def row(self):
        n = 1
        for s in self.shape[1:]:
            n *= s
        return n


def npy_parse(blob, what):
    if blob[:6] != b"\x93NUMPY":
        raise Failure(f"{what}: not an .npy file")
    if blob[6] == 1:
        hl, off = int.from_bytes(blob[8:10], "little"), 10
    else:
        hl, off = int.from_bytes(blob[8:12], "little"), 12
    head = ast.literal_eval(blob[off:off + hl].decode("latin1"))
    if head.get("fortran_order"):
        raise Failure(f"{what}: Fortran order is not supported")
    code = _TYPECODES.get(head["descr"])
    if code is None:
        return None                       # strings and other dtypes: not needed here
    data = array.array(code)
    if data.itemsize != int(head["descr"][2:]):
        raise Failure(f"{what}: array.array('{code}') is not {head['descr']} on this machine")
    data.frombytes(blob[off + hl:])
    if sys.byteorder != "little":
        data.byteswap()
    n = 1
    for s in head["shape"]:
        n *= s
    if len(data) != n:
        raise Failure(f"{what}: expected {n} elements for shape {head['shape']}, got {len(data)}")
    return Arr(data, head["shape"])


def npy_bytes(a):
    data = a.data
    if sys.byteorder != "little":
        data = array.array(data.typecode, data)
        data.byteswap()
    shape = "(%s)" % (", ".join(map(str, a.shape)) if len(a.shape) != 1 else f"{a.shape[0]},")
    head = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (_DESCR[data.typecode], shape)
    head += " " * ((-(10 + len(head) + 1)) % 64) + "\n"     # data aligned to 64 bytes
    return b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head.encode("latin1") + data.tobytes()


def _atomic(path, write):
    tmp = f"{path}.tmp{os.getpid()}.{threading.get_ident()}"
    write(tmp)
    os.replace(tmp, path)


def json_write(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f)


def npy_read(path):
    with open(path, "rb") as f:
        a = npy_parse(f.read(), path)
    if a is None:
        raise Failure(f"{path}: unsupported dtype")
    return a


def npy_write(path, a):
    def w(tmp):
        with open(tmp, "wb") as f:
            f.write(npy_bytes(a))
    _atomic(path, w)


def npz_read(path, names=None):
    out = {}
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if names is not None and name not in names:
                continue
            a = npy_parse(z.read(info), f"{path}: array '{name}'")
            if a is not None:
                out[name] = a
    for n in names or ():
        if n not in out:
            raise Failure(f"{path}: expected an array '{n}'")
    return out


def npz_write(path, arrays):
    def w(tmp):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
            for name, a in arrays.items():
                z.writestr(name + ".npy", npy_bytes(a))
    _atomic(path, w)


# ---------------------------------------------------------------------------------------
# Data: subsets by clip, mirrored inputs, prediction windows
# ---------------------------------------------------------------------------------------
def take_sequences(z, keep):
    """The lifting sequences (one per clip and camera) whose source clip is in keep."""
    cs, src = z["clip_start"].data, z["clip_source"].data
    p2, p3 = z["pose2d"], z["pose3d"]
    r2, r3 = p2.row(), p3.row()
    x, y, starts, srcs = array.array("f"), array.array("f"), array.array("q", [0]), array.array("q")
    for s in range(len(src)):
        if src[s] in keep:
            lo, hi = cs[s], cs[s + 1]
            x.extend(p2.data[lo * r2:hi * r2])
            y.extend(p3.data[lo * r3:hi * r3])
            starts.append(starts[-1] + hi - lo)
            srcs.append(src[s])
    n = starts[-1]
    return {"pose2d": Arr(x, (n,) + p2.shape[1:]), "pose3d": Arr(y, (n,) + p3.shape[1:]),
            "clip_start": Arr(starts, (len(starts),)), "clip_source": Arr(srcs, (len(srcs),)),
            "joints_left": z["joints_left"], "joints_right": z["joints_right"]}


def take_windows(z, keep, names):
    """The windows (forecast, action) cut from a clip in keep."""
    wc = z["window_clip"].data
    rows = [i for i in range(len(wc)) if wc[i] in keep]
    out = {}
    for n in names + ["window_clip"]:
        a = z[n]
        r = a.row()
        d = array.array(a.data.typecode)
        for i in rows:
            d.extend(a.data[i * r:(i + 1) * r])
        out[n] = Arr(d, (len(rows),) + a.shape[1:])
    out["joints_left"], out["joints_right"] = z["joints_left"], z["joints_right"]
    return out


def clips_of(z):
    a = z["clip_source"] if "clip_source" in z else z["window_clip"]
    return sorted(set(a.data))


def pick_clips(clips, fraction, seed):
    """The first ceil(fraction x n) clips of a seeded shuffle: nested subsets for one seed."""
    order = list(clips)
    random.Random(seed).shuffle(order)
    return set(order[:max(1, math.ceil(fraction * len(order) - 1e-9))])


def mirror_rows(a, partner, negate, ncoords):
    """T applied to every pose of a [..., joints, coords] array: joint j takes its partner's
    coordinates, the negated coordinates change sign."""
    nj = len(partner)
    stride = nj * ncoords
    if len(a.data) % stride:
        raise Failure(f"mirror: {len(a.data)} values are not a whole number of {nj}x{ncoords} poses")
    out = array.array("f", bytes(len(a.data) * 4))
    for j in range(nj):
        for c in range(ncoords):
            col = a.data[partner[j] * ncoords + c::stride]
            if c in negate:
                col = array.array("f", [-v for v in col])
            out[j * ncoords + c::stride] = col
    return Arr(out, a.shape)


def partners(z, nj):
    p = list(range(nj))
    for l, r in zip(z["joints_left"].data, z["joints_right"].data):
        p[l], p[r] = r, l
    return p


def lifting_windows(z, rf):
    """Predict's input for every test frame: the rf-frame window centred on it, edge frames
    repeated (the runtime's padding), [frames, rf, 17, 2]; for rf 0 the frames themselves."""
    p2 = z["pose2d"]
    if rf == 0:
        return p2
    raw, rb, pad = p2.data.tobytes(), p2.row() * 4, (rf - 1) // 2
    cs = z["clip_start"].data
    parts = []
    for s in range(len(cs) - 1):
        lo, hi = cs[s], cs[s + 1]
        for f in range(lo, hi):
            a = f - pad
            if a >= lo and a + rf <= hi:
                parts.append(raw[a * rb:(a + rf) * rb])
            else:
                for i in range(rf):
                    g = min(max(a + i, lo), hi - 1)
                    parts.append(raw[g * rb:(g + 1) * rb])
    d = array.array("f")
    d.frombytes(b"".join(parts))
    return Arr(d, (p2.shape[0], rf) + p2.shape[1:])


# ---------------------------------------------------------------------------------------
# Metrics (independent of the runtime's: eval's values are compared with these)
# ---------------------------------------------------------------------------------------
def mpjpe(y, t, nc):
    """Mean Euclidean joint error (data units) over all poses and joints."""
    yd, td = y.data, t.data
    if len(yd) != len(td):
        raise Failure(f"prediction has {len(yd)} values, target {len(td)}")
    n = len(yd) // nc
    s = 0.0
    if nc == 3:
        for a, b, c in zip(map(float.__sub__, yd[0::3], td[0::3]), map(float.__sub__, yd[1::3], td[1::3]),
                           map(float.__sub__, yd[2::3], td[2::3])):
            s += math.sqrt(a * a + b * b + c * c)
    else:
        for a, b in zip(map(float.__sub__, yd[0::2], td[0::2]), map(float.__sub__, yd[1::2], td[1::2])):
            s += math.sqrt(a * a + b * b)
    return s / n


def _max_eigvec4(m):
    """The eigenvector of the largest eigenvalue of a symmetric 4x4 matrix (cyclic Jacobi)."""
    a = [r[:] for r in m]
    v = [[1.0 if i == j else 0.0 for j in range(4)] for i in range(4)]
    scale = sum(abs(a[i][j]) for i in range(4) for j in range(4)) or 1.0
    for _ in range(60):
        off = sum(abs(a[i][j]) for i in range(4) for j in range(i + 1, 4))
        if off <= 1e-15 * scale:
            break
        for p in range(3):
            for q in range(p + 1, 4):
                apq = a[p][q]
                if apq == 0.0:
                    continue
                th = (a[q][q] - a[p][p]) / (2.0 * apq)
                t = (1.0 if th >= 0 else -1.0) / (abs(th) + math.sqrt(th * th + 1.0))
                c = 1.0 / math.sqrt(t * t + 1.0)
                s = t * c
                for k in range(4):
                    akp, akq = a[k][p], a[k][q]
                    a[k][p], a[k][q] = c * akp - s * akq, s * akp + c * akq
                for k in range(4):
                    apk, aqk = a[p][k], a[q][k]
                    a[p][k], a[q][k] = c * apk - s * aqk, s * apk + c * aqk
                for k in range(4):
                    vkp, vkq = v[k][p], v[k][q]
                    v[k][p], v[k][q] = c * vkp - s * vkq, s * vkp + c * vkq
    i = max(range(4), key=lambda k: a[k][k])
    return [v[k][i] for k in range(4)]


def procrustes_error(y, t):
    """Mean joint error of one 3D pose y (list of (x, y, z)) after the similarity transform
    (rotation, scale, translation) that best aligns it with t: VideoPose3D's p_mpjpe. The
    rotation is Horn's (1987) closed form, the unit quaternion of the largest eigenvalue of
    the 4x4 matrix below, which is a proper rotation by construction (no reflection)."""
    n = len(t)
    my = [sum(p[c] for p in y) / n for c in range(3)]
    mt = [sum(p[c] for p in t) / n for c in range(3)]
    a = [(p[0] - my[0], p[1] - my[1], p[2] - my[2]) for p in y]
    b = [(p[0] - mt[0], p[1] - mt[1], p[2] - mt[2]) for p in t]
    S = [[sum(pa[i] * pb[j] for pa, pb in zip(a, b)) for j in range(3)] for i in range(3)]
    (sxx, sxy, sxz), (syx, syy, syz), (szx, szy, szz) = S
    N = [[sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
         [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
         [szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy],
         [sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz]]
    w, x, yq, z = _max_eigvec4(N)
    R = [[w * w + x * x - yq * yq - z * z, 2 * (x * yq - w * z), 2 * (x * z + w * yq)],
         [2 * (x * yq + w * z), w * w - x * x + yq * yq - z * z, 2 * (yq * z - w * x)],
         [2 * (x * z - w * yq), 2 * (yq * z + w * x), w * w - x * x - yq * yq + z * z]]
    ra = [(R[0][0] * p[0] + R[0][1] * p[1] + R[0][2] * p[2], R[1][0] * p[0] + R[1][1] * p[1] + R[1][2] * p[2],
           R[2][0] * p[0] + R[2][1] * p[1] + R[2][2] * p[2]) for p in a]
    na = sum(p[0] * p[0] + p[1] * p[1] + p[2] * p[2] for p in a)
    sc = sum(p[0] * q[0] + p[1] * q[1] + p[2] * q[2] for p, q in zip(ra, b)) / na if na > 0 else 0.0
    return sum(math.sqrt((sc * p[0] - q[0]) ** 2 + (sc * p[1] - q[1]) ** 2 + (sc * p[2] - q[2]) ** 2)
               for p, q in zip(ra, b)) / n


def p_mpjpe(y, t, nj):
    yd, td = y.data.tolist(), t.data.tolist()
    st = nj * 3
    s = 0.0
    for r in range(0, len(yd), st):
        yp = [yd[r + 3 * j:r + 3 * j + 3] for j in range(nj)]
        tp = [td[r + 3 * j:r + 3 * j + 3] for j in range(nj)]
        s += procrustes_error(yp, tp)
    return s / (len(yd) // st)


def pck_per_step(y, t, steps, nj, thr=0.05):
    """PCK per predicted step: a joint is correct within thr x the longer side of the target
    pose's bounding box (the runtime's PCK@0.05)."""
    yd, td = y.data.tolist(), t.data.tolist()
    st = nj * 2
    hits = [0] * steps
    npose = len(td) // st
    for r in range(npose):
        o = r * st
        xs, ys = td[o:o + st:2], td[o + 1:o + st:2]
        lim = thr * max(max(xs) - min(xs), max(ys) - min(ys))
        h = 0
        for j in range(nj):
            dx, dy = yd[o + 2 * j] - td[o + 2 * j], yd[o + 2 * j + 1] - td[o + 2 * j + 1]
            if math.sqrt(dx * dx + dy * dy) <= lim:
                h += 1
        hits[r % steps] += h
    per = npose // steps * nj
    return [100.0 * h / per for h in hits]


def topk(logits, labels, k):
    nc = logits.row()
    yd = logits.data
    hits = 0
    for r, lab in enumerate(labels.data):
        row = yd[r * nc:(r + 1) * nc]
        sl = row[lab]
        rank = sum(1 for c in range(nc) if row[c] > sl or (row[c] == sl and c < lab))
        hits += rank < k
    return 100.0 * hits / len(labels.data)


def rel_diff(a, b):
    """|a - b| / |a| over the whole arrays (Frobenius norms)."""
    num = sum((u - v) * (u - v) for u, v in zip(a.data, b.data))
    den = sum(u * u for u in a.data)
    return math.sqrt(num / den) if den > 0 else float("nan")


def flip_average(y, ym_back):
    return Arr(array.array("f", [(u + v) * 0.5 for u, v in zip(y.data, ym_back.data)]), y.shape)


def selftest():
    """The metrics on hand-made cases: a rotated, scaled, shifted pose aligns exactly; a
    mirrored one does not (no reflections); MPJPE of a known offset; mirror twice is identity."""
    rnd = random.Random(5)
    t = [[rnd.uniform(-1, 1) for _ in range(3)] for _ in range(17)]
    ang = 0.7
    c, s = math.cos(ang), math.sin(ang)
    y = [[2.0 * (c * p[0] - s * p[2]) + 0.3, 2.0 * p[1] - 0.1, 2.0 * (s * p[0] + c * p[2]) + 5] for p in t]
    e = procrustes_error(y, t)
    assert e < 1e-9, f"procrustes of a similar pose: {e}"
    ym = [[-p[0], p[1], p[2]] for p in t]
    assert procrustes_error(ym, t) > 1e-2, "a reflection must not align"
    ya = Arr(array.array("f", [v + (0.3 if i % 3 == 0 else 0.0) for i, v in enumerate(sum(t, []))]), (1, 17, 3))
    ta = Arr(array.array("f", sum(t, [])), (1, 17, 3))
    assert abs(mpjpe(ya, ta, 3) - 0.3) < 1e-6
    p = [0, 4, 5, 6, 1, 2, 3] + list(range(7, 17))
    back = mirror_rows(mirror_rows(ta, p, {0}, 3), p, {0}, 3)
    assert back.data == ta.data
    blob = npy_bytes(ta)
    assert len(blob) % 64 == (17 * 3 * 4) % 64 and npy_parse(blob, "self").data == ta.data


# ---------------------------------------------------------------------------------------
# Running the tools
# ---------------------------------------------------------------------------------------
class Runner:
    def __init__(self, build, work, jobs, log):
        self.build, self.work, self.jobs = build, work, jobs
        self.threads = 1 if jobs > 1 else 2
        self.log = log
        self.commands = []
        self.lock = threading.Lock()

    def run(self, argv, cwd=None):
        with self.lock:
            self.commands.append(" ".join(shlex.quote(a) for a in argv))
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
        if p.returncode != 0:
            raise Failure(f"command failed ({p.returncode}): {' '.join(argv)}\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
        return p.stdout

    def say(self, msg):
        with self.lock:
            print(msg, file=self.log, flush=True)


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r"^\s+(\S+)\s+([-+0-9.eEnaif]+)\s", line + " ")
        if m:
            try:
                out[m.group(1)] = float(m.group(2))
            except ValueError:
                pass
    return out


def parse_info(text):
    m = re.search(r"^parameters\s+(\d+)", text, re.M)
    shape = re.search(r"^inputs:\s*\n\s+\S+\s+\[N,([^\]]*)\]", text, re.M)
    dims = [int(v) for v in shape.group(1).split(",") if v.strip()] if shape else []
    return {"params": int(m.group(1)) if m else 0, "in_dims": dims}


def mean_std(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return float("nan"), float("nan")
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def fmt(xs, digits=1):
    m, s = mean_std(xs)
    if math.isnan(m):
        return "n/a"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def fmt_e(xs):
    m, s = mean_std(xs)
    return f"{m:.2e} ± {s:.1e}"


# ---------------------------------------------------------------------------------------
# SVG line plots
# ---------------------------------------------------------------------------------------
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def _ticks(lo, hi, n=5):
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    first = math.floor(lo / step) * step
    out, v = [], first
    while v <= hi + 1e-9 * step:
        out.append(v)
        v += step
    return out


def svg_lineplot(path, title, xlabel, ylabel, series, logx=False, xticks=None):
    """series: [(label, xs, means, stds)]; error bars of one standard deviation."""
    W, H, L, R, T, B = 640, 400, 70, 170, 40, 55
    xs_all = [x for _, xs, _, _ in series for x in xs]
    ys_all = [m + d for _, _, ms, ds in series for m, d in zip(ms, ds)] + \
             [m - d for _, _, ms, ds in series for m, d in zip(ms, ds)]
    ys_all = [y for y in ys_all if not math.isnan(y)] or [0, 1]
    fx = (lambda v: math.log10(v)) if logx else (lambda v: v)
    x0, x1 = fx(min(xs_all)), fx(max(xs_all))
    if x1 == x0:
        x1 = x0 + 1
    yt = _ticks(min(ys_all), max(ys_all))
    y0, y1 = yt[0], yt[-1]
    if y1 == y0:
        y1 = y0 + 1

    def px(v):
        return L + (fx(v) - x0) / (x1 - x0) * (W - L - R)

    def py(v):
        return H - B - (v - y0) / (y1 - y0) * (H - T - B)

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         f'font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{(L + W - R) / 2}" y="22" text-anchor="middle" font-size="14">{_esc(title)}</text>',
         f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
         f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>']
    for v in yt:
        o.append(f'<line x1="{L - 4}" y1="{py(v):.1f}" x2="{W - R}" y2="{py(v):.1f}" stroke="#ddd"/>')
        o.append(f'<text x="{L - 7}" y="{py(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    for v in (xticks or sorted(set(xs_all))):
        o.append(f'<line x1="{px(v):.1f}" y1="{H - B}" x2="{px(v):.1f}" y2="{H - B + 4}" stroke="black"/>')
        o.append(f'<text x="{px(v):.1f}" y="{H - B + 17}" text-anchor="middle">{v:g}</text>')
    o.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">{_esc(xlabel)}</text>')
    o.append(f'<text transform="translate(18 {(T + H - B) / 2}) rotate(-90)" text-anchor="middle">'
             f'{_esc(ylabel)}</text>')
    for k, (label, xs, ms, ds) in enumerate(series):
        col = COLOURS[k % len(COLOURS)]
        pts = " ".join(f"{px(x):.1f},{py(m):.1f}" for x, m in zip(xs, ms) if not math.isnan(m))
        o.append(f'<polyline points="{pts}" fill="none" stroke="{col}" stroke-width="2"/>')
        for x, m, d in zip(xs, ms, ds):
            if math.isnan(m):
                continue
            o.append(f'<circle cx="{px(x):.1f}" cy="{py(m):.1f}" r="3" fill="{col}"/>')
            if d > 0:
                o.append(f'<line x1="{px(x):.1f}" y1="{py(m - d):.1f}" x2="{px(x):.1f}" y2="{py(m + d):.1f}" '
                         f'stroke="{col}"/>')
        ly = T + 10 + 20 * k
        o.append(f'<line x1="{W - R + 12}" y1="{ly}" x2="{W - R + 32}" y2="{ly}" stroke="{col}" stroke-width="2"/>')
        o.append(f'<text x="{W - R + 38}" y="{ly + 4}">{_esc(label)}</text>')
    o.append("</svg>\n")

    def w(tmp):
        with open(tmp, "w") as f:
            f.write("\n".join(o))
    _atomic(path, w)


def _esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---------------------------------------------------------------------------------------
# The experiments
# ---------------------------------------------------------------------------------------
class Experiments:
    def __init__(self, args, cfg):
        self.args, self.cfg = args, cfg
        self.work = os.path.abspath(args.out)
        os.makedirs(self.work, exist_ok=True)
        self.r = Runner(os.path.abspath(args.build), self.work, args.jobs, sys.stdout)
        self.chiralc = os.path.abspath(args.chiralc or os.path.join(self.r.build, "chiralc"))
        self.chiraldata = os.path.abspath(args.chiraldata or os.path.join(self.r.build, "chiraldata"))
        for tool in (self.chiralc, self.chiraldata):
            if not os.access(tool, os.X_OK):
                raise Failure(f"{tool}: no such program (build it, or give --build)")
        self.src = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
        self.programs = {}      # key -> (path, info)
        self.results = {}       # run key -> metrics
        self.stage_time = {}

    # ---- data -------------------------------------------------------------------------
    def prepare_data(self):
        cfg = self.cfg
        d = {}
        for task, extra in (("lifting", []), ("forecast", cfg["forecast"]["data"]), ("action", cfg["action"]["data"])):
            out = os.path.join(self.work, "data", task)
            self.r.run([self.chiraldata, task, "--in", os.path.join(self.src, "data", "cmu17.npz"), "--out", out,
                        "--seed", "1"] + extra)
            d[task] = out
        # the "100 %" training set and the test set, both cut by clip
        self.data = {}
        z = npz_read(os.path.join(d["lifting"], "train.npz"))
        clips = clips_of(z)
        keep = pick_clips(clips, cfg["train_clips"], FRACTION_SEED)
        train = take_sequences(z, keep)
        zt = npz_read(os.path.join(d["lifting"], "test.npz"))
        test = take_sequences(zt, pick_clips(clips_of(zt), cfg["test_clips"], FRACTION_SEED))
        self.data["lifting"] = self._save("lifting", train, test)
        self.lift_train, self.lift_test = train, test
        self.lift_clips = sorted(keep)
        self.lift_partner = partners(z, 17)
        for task, names in (("forecast", ["observed", "predicted"]), ("action", ["pose2d", "action"])):
            z = npz_read(os.path.join(d[task], "train.npz"))
            train = take_windows(z, pick_clips(clips_of(z), cfg["train_clips"], FRACTION_SEED), names)
            zt = npz_read(os.path.join(d[task], "test.npz"))
            test = take_windows(zt, pick_clips(clips_of(zt), cfg["test_clips"], FRACTION_SEED), names)
            self.data[task] = self._save(task, train, test)
            setattr(self, task + "_test", test)
            setattr(self, task + "_partner", partners(z, z[names[0]].shape[2]))
        self.forecast_in = self._save_inputs("forecast", self.forecast_test["observed"], self.forecast_partner)
        self.action_in = self._save_inputs("action", self.action_test["pose2d"], self.action_partner)
        self.lift_in = {}
        self.subsets = {}

    def _save(self, task, train, test):
        base = os.path.join(self.work, "sets", task)
        os.makedirs(base, exist_ok=True)
        npz_write(os.path.join(base, "train.npz"), train)
        npz_write(os.path.join(base, "test.npz"), test)
        return {"train": os.path.join(base, "train.npz"), "test": os.path.join(base, "test.npz"),
                "ntrain": train[next(iter(train))].shape[0], "ntest": test[next(iter(test))].shape[0]}

    def _save_inputs(self, name, x, partner):
        base = os.path.join(self.work, "sets", "inputs")
        os.makedirs(base, exist_ok=True)
        p, pm = os.path.join(base, name + ".npy"), os.path.join(base, name + "_mirror.npy")
        npy_write(p, x)
        npy_write(pm, mirror_rows(x, partner, {0}, 2))
        return p, pm

    def lifting_inputs(self, rf):
        with self.r.lock:
            if rf not in self.lift_in:
                x = lifting_windows(self.lift_test, rf)
                self.lift_in[rf] = self._save_inputs(f"lifting_rf{rf}", x, self.lift_partner)
            return self.lift_in[rf]

    def limited_subset(self, fraction, seed):
        """Training clips for one fraction and seed: all cameras of the first ceil(f x n)
        clips of a shuffle seeded by the seed (nested: 5 % holds the 1 % clips)."""
        key = (fraction, seed)
        if fraction >= 1.0:
            return self.data["lifting"]["train"], len(self.lift_clips), self.data["lifting"]["ntrain"]
        with self.r.lock:
            if key not in self.subsets:
                keep = pick_clips(self.lift_clips, fraction, FRACTION_SEED + seed)
                same = [v for k, v in self.subsets.items() if k[1] == seed and v[3] == keep]
                if same:        # few clips: two fractions may round to the same clips
                    self.subsets[key] = same[0]
                else:
                    sub = take_sequences(self.lift_train, keep)
                    path = os.path.join(self.work, "sets", "lifting", f"train_{fraction:g}_s{seed}.npz")
                    npz_write(path, sub)
                    self.subsets[key] = (path, len(keep), sub["pose2d"].shape[0], keep)
            return self.subsets[key][:3]

    # ---- programs ---------------------------------------------------------------------
    def program(self, net, sets, network):
        return (net, tuple(sets), network)

    def build(self, key):
        net, sets, network = key
        name = f"{net}-{'-'.join(s.replace('=', '') for s in sets)}-{network.replace(', ', '-').replace(' ', '_')}"
        path = os.path.join(self.work, "bin", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        argv = [self.chiralc, "build", os.path.join(self.src, "examples", net + ".net")]
        for s in sets:
            argv += ["--set", s]
        argv += NETWORKS[network] + [self.cfg["opt"], "-o", path]
        self.r.run(argv)
        info = parse_info(self.r.run([path, "info"]))
        self.programs[key] = (path, info)

    # ---- one trained network ----------------------------------------------------------
    def train_eval(self, run):
        """Train, eval on the test set, predict on x and T_in x; metrics from the outputs."""
        key = run["key"]
        prog, info = self.programs[run["program"]]
        task = run["task"]
        tag = hashlib.sha1(repr(key).encode()).hexdigest()[:12]
        d = os.path.join(self.work, "runs", tag)
        os.makedirs(d, exist_ok=True)
        ck = os.path.join(d, "ckpt.safetensors")
        done = os.path.join(d, "result.json")
        if self.args.resume and os.path.exists(done):
            with open(done) as f:
                self.results[key] = json.load(f)
            self.r.say(f"  {run['label']}: reused {done}")
            return
        th = ["--threads", str(self.r.threads)]
        t0 = time.time()
        self.r.run([prog, "train", "--data", run["train_data"], "--seed", str(run["seed"]), "--save", ck,
                    "--log", os.path.join(d, "run.csv"), "--no-progress"] + run["args"] + th)
        t_train = time.time() - t0
        ev = parse_metrics(self.r.run([prog, "eval", "--data", self.data[task]["test"], "--load", ck, "--batch", "256"]
                                      + th))
        if task == "lifting":
            rf = info["in_dims"][0] if len(info["in_dims"]) == 3 else 0
            xin, xmin = self.lifting_inputs(rf)
        else:
            xin, xmin = self.forecast_in if task == "forecast" else self.action_in
        y_p, ym_p = os.path.join(d, "y.npy"), os.path.join(d, "y_mirror.npy")
        self.r.run([prog, "predict", "--load", ck, "--in", xin, "--out", y_p, "--batch", "256"] + th)
        self.r.run([prog, "predict", "--load", ck, "--in", xmin, "--out", ym_p, "--batch", "256"] + th)
        y, ym = npy_read(y_p), npy_read(ym_p)
        os.remove(y_p)      # 8 MB a lifting run: the checkpoint can make them again
        os.remove(ym_p)
        res = {"eval": ev, "train_s": t_train, "params": info["params"]}
        if task == "lifting":
            t = self.lift_test["pose3d"]
            ym_back = mirror_rows(ym, self.lift_partner, {0}, 3)
            res["equivariance"] = rel_diff(y, ym_back)
            res["mpjpe"] = 1000.0 * mpjpe(y, t, 3)
            res["check_mpjpe"] = abs(res["mpjpe"] - ev["MPJPE"])
            if run.get("flip"):
                fa = flip_average(y, ym_back)
                res["flip_mpjpe"] = 1000.0 * mpjpe(fa, t, 3)
                res["flip_p_mpjpe"] = 1000.0 * p_mpjpe(fa, t, 17)
                res["p_mpjpe"] = 1000.0 * p_mpjpe(y, t, 17)
                res["check_p_mpjpe"] = abs(res["p_mpjpe"] - ev["P-MPJPE"])
        elif task == "forecast":
            t = self.forecast_test["predicted"]
            ym_back = mirror_rows(ym, self.forecast_partner, {0}, 2)
            res["equivariance"] = rel_diff(y, ym_back)
            res["pck_steps"] = pck_per_step(y, t, t.shape[1], t.shape[2])
            res["check_pck"] = abs(statistics.fmean(res["pck_steps"]) - ev["PCK@0.05"])
        else:
            labels = self.action_test["action"]
            res["equivariance"] = rel_diff(y, ym)         # the output is invariant: T_out = identity
            res["top1"] = topk(y, labels, 1)
            res["check_top1"] = abs(res["top1"] - ev["top-1"])
        self.results[key] = res
        _atomic(done, lambda tmp: json_write(tmp, res))
        self.r.say(f"  {run['label']}: {time.time() - t0:.1f} s, eval {ev}, equivariance {res['equivariance']:.2e}")

    # ---- the plan -----------------------------------------------------------------------
    def plan(self):
        cfg, seeds = self.cfg, self.seeds
        runs = {}

        def add(exp, task, model, net, sets, network, training, args, seed, train_data=None, flip=False, extra=(),
                label=None, nsamples=None):
            prog = self.program(net, sets, network)
            targs = list(args) + TRAININGS[training] if training else list(args)
            key = (prog, train_data or task, tuple(targs), seed)
            r = runs.get(key)
            if r is None:
                r = runs[key] = {"key": key, "program": prog, "task": task, "args": targs, "seed": seed,
                                 "train_data": train_data, "flip": flip, "uses": [],
                                 "nsamples": nsamples or self.data[task]["ntrain"],
                                 "label": label or f"{model} {network} {training or ''} seed {seed}"}
            r["flip"] = r["flip"] or flip
            r["uses"].append((exp, model, network, training) + tuple(extra))
            return key

        self.lift_keys = {}
        for model, m in cfg["lifting"].items():
            for network in ("chiral", "baseline"):
                for training in TRAININGS:
                    for s in seeds:
                        self.lift_keys[(model, network, training, s)] = add(
                            "lifting", "lifting", model, m["net"], m["sets"], network, training, m["train"], s,
                            flip=True)
        lim = cfg["limited"]
        m = cfg["lifting"][lim["model"]]
        self.limited_keys = {}
        base_epochs = int(m["train"][m["train"].index("--epochs") + 1])
        base_decay = float(m["train"][m["train"].index("--decay") + 1])
        n100 = self.data["lifting"]["ntrain"]
        for f in lim["fractions"]:
            for s in seeds:
                path, nclips, nframes = self.limited_subset(f, s)
                # the same number of training samples at every fraction (epochs scaled by
                # 1/f, capped), the learning rate decayed by the same factor over the run
                ep = min(lim["max_epochs"], max(base_epochs, round(base_epochs * n100 / max(1, nframes))))
                args = list(m["train"])
                args[args.index("--epochs") + 1] = str(ep)
                args[args.index("--decay") + 1] = f"{base_decay ** (base_epochs / ep):.6g}"
                for network, training in LIMITED_VARIANTS:
                    self.limited_keys[(f, network, training, s)] = (
                        add("limited", "lifting", lim["model"], m["net"], m["sets"], network, training, args, s,
                            train_data=path if f < 1.0 else None, extra=(f,), nsamples=nframes,
                            label=f"{lim['model']} {network} {training} {100 * f:g} % seed {s}"), nclips, nframes, ep)
        dm = cfg["design"]["model"]
        m = cfg["lifting"][dm]
        self.design_keys = {}
        for network in NETWORKS:
            for s in seeds:
                self.design_keys[(network, s)] = add("design", "lifting", dm, m["net"], m["sets"], network,
                                                     "no augmentation", m["train"], s)
        for task in ("forecast", "action"):
            c = cfg[task]
            net = "forecast_lstm" if task == "forecast" else "action_stconv"
            keys = {}
            for network in ("chiral", "baseline"):
                for s in seeds:
                    keys[(network, s)] = add(task, task, net, net, c["sets"], network, None, c["train"], s)
            setattr(self, task + "_keys", keys)
        for r in runs.values():
            if r["train_data"] is None:
                r["train_data"] = self.data[r["task"]]["train"]
        return runs

    def main(self):
        t_all = time.time()
        self.seeds = self.args.seeds or self.cfg["seeds"]
        t = time.time()
        self.r.say("== data")
        self.prepare_data()
        self.stage_time["data"] = time.time() - t
        runs = self.plan()
        progs = sorted({r["program"] for r in runs.values()})
        if self.args.plan:
            for r in sorted(runs.values(), key=lambda r: r["label"]):
                print(f"{r['label']}: {r['train_data']} {' '.join(r['args'])}")
            print(f"{len(progs)} programs, {len(runs)} training runs")
            return False
        self.r.say(f"== compile {len(progs)} programs, then {len(runs)} training runs, {self.args.jobs} at a time")
        with concurrent.futures.ThreadPoolExecutor(self.args.jobs) as pool:
            t = time.time()
            for f in [pool.submit(self.build, k) for k in progs]:
                f.result()
            self.stage_time["compile"] = time.time() - t
            t = time.time()
            # longest first, so that two workers finish together
            order = sorted(runs.values(), key=lambda r: -self._cost(r))
            futs = [pool.submit(self.train_eval, r) for r in order]
            for f in futs:
                f.result()
            self.stage_time["runs"] = time.time() - t
        self.total_s = time.time() - t_all
        self.runs = runs
        write_report(self)
        return True

    # rough training cost per sample (ms, measured at the full widths): only orders the runs
    COST = {"martinez": 0.16, "videopose3d": 1.9, "forecast_lstm": 0.74, "action_stconv": 2.3}

    def _cost(self, r):
        a = r["args"]
        ep = int(a[a.index("--epochs") + 1]) if "--epochs" in a else 1
        sub = int(a[a.index("--subsample") + 1]) if "--subsample" in a else 1
        return ep * r["nsamples"] / sub * self.COST.get(r["program"][0], 1.0)


# ---------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------
def verdict(what, chiral, base, unit, lower_better=True, digits=1, against="baseline"):
    """One neutral sentence comparing mean values; says so when the chiral network does not win."""
    mc, sc = mean_std(chiral)
    mb, sb = mean_std(base)
    if math.isnan(mc) or math.isnan(mb):
        return f"- {what}: no result."
    better = mc < mb if lower_better else mc > mb
    diff = abs(mc - mb)
    within = diff <= max(sc, sb)
    dunit = "percentage points" if unit == "%" else unit
    s = f"- {what}: chiral {mc:.{digits}f} {unit}, {against} {mb:.{digits}f} {unit}: "
    if better:
        s += f"the chiral network is better by {diff:.{digits}f} {dunit}"
    elif diff == 0:
        s += "the same"
    else:
        s += f"**the chiral network does not beat the {against}** (worse by {diff:.{digits}f} {dunit})"
    if within and diff > 0:
        s += ", a difference within one standard deviation of the seeds"
    return s + "."


def machine():
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs (nproc), {cpu}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def write_report(ex):
    cfg, seeds, R = ex.cfg, ex.seeds, ex.results
    docs = os.path.abspath(ex.args.docs)
    os.makedirs(docs, exist_ok=True)
    L = []
    cmd = "python3 " + " ".join(shlex.quote(a) for a in sys.argv)
    L += ["# Results: chirality nets on CMU motion capture", "",
          f"Generated by `experiments/run.py` (config **{ex.args.config}**) on "
          f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}. Every number below is the mean ± the "
          f"standard deviation over the seeds {', '.join(map(str, seeds))} (n = {len(seeds)}).", "",
          f"- command: `{cmd}`",
          f"- machine: {machine()}; {ex.args.jobs} runs at a time, {ex.r.threads} OpenBLAS thread(s) each",
          f"- run time: {ex.total_s:.0f} s in all (data {ex.stage_time['data']:.0f} s, compiling "
          f"{ex.stage_time['compile']:.0f} s, {len(ex.runs)} training runs {ex.stage_time['runs']:.0f} s)",
          f"- data: `chiraldata lifting|forecast|action --seed 1` on data/cmu17.npz (balanced split); "
          f"training clips used as 100 %: {cfg['train_clips']:g} of them, test clips: {cfg['test_clips']:g} of "
          f"them (a shuffle seeded with {FRACTION_SEED}); lifting: {ex.data['lifting']['ntrain']} training and "
          f"{ex.data['lifting']['ntest']} test frames, forecasting: {ex.data['forecast']['ntrain']} / "
          f"{ex.data['forecast']['ntest']} windows, action: {ex.data['action']['ntrain']} / "
          f"{ex.data['action']['ntest']} windows",
          "- configuration (compile `--set` values and training options):", ""]
    L += ["| experiment | model | chiralc build | training options |", "|---|---|---|---|"]
    for model, m in cfg["lifting"].items():
        L.append(f"| lifting | {m['net']} | {' '.join('--set ' + s for s in m['sets'])} {cfg['opt']} | "
                 f"`{' '.join(m['train'])}` |")
    for task, net in (("forecast", "forecast_lstm"), ("action", "action_stconv")):
        c = cfg[task]
        L.append(f"| {task} | {net} | {' '.join('--set ' + s for s in c['sets'])} {cfg['opt']} | "
                 f"`{' '.join(c['train'])}` |")
    L += ["", "Chiral networks are built with `chiralc build` (the model's own chirality settings), "
          "baselines with `--baseline` (the written network, the same widths). Augmentation: "
          "`--mirror 0` or `--mirror 0.5`. Python recomputes each metric that eval prints from "
          "predict's outputs, as a check (largest difference at the end).", ""]

    # 1 lifting
    L += ["## 1. Lifting (2D to 3D)", "",
          "MPJPE and P-MPJPE (mm) on the test split. *single pass*: eval's numbers; *flip average*: "
          "y = (F(x) + T_out F(T_in x)) / 2, computed here from two predict passes.", "",
          "| model | network | training | test | MPJPE (mm) | P-MPJPE (mm) | parameters |",
          "|---|---|---|---|---|---|---|"]
    verdicts = []
    for model in cfg["lifting"]:
        for network in ("chiral", "baseline"):
            for training in TRAININGS:
                rs = [R[ex.lift_keys[(model, network, training, s)]] for s in seeds]
                L.append(f"| {model} | {network} | {training} | single pass | "
                         f"{fmt([r['eval']['MPJPE'] for r in rs])} | {fmt([r['eval']['P-MPJPE'] for r in rs])} | "
                         f"{rs[0]['params']} |")
                L.append(f"| {model} | {network} | {training} | flip average | "
                         f"{fmt([r['flip_mpjpe'] for r in rs])} | {fmt([r['flip_p_mpjpe'] for r in rs])} | "
                         f"{rs[0]['params']} |")
        for training in TRAININGS:
            for test, pre in (("single pass", None), ("flip average", "flip_")):
                c = [R[ex.lift_keys[(model, "chiral", training, s)]] for s in seeds]
                b = [R[ex.lift_keys[(model, "baseline", training, s)]] for s in seeds]
                for metric in ("MPJPE", "P-MPJPE"):
                    k = None if pre is None else pre + metric.lower().replace("-", "_")
                    get = (lambda r: r["eval"][metric]) if k is None else (lambda r: r[k])
                    verdicts.append(verdict(f"{model}, {training}, {test}, {metric}", [get(r) for r in c],
                                            [get(r) for r in b], "mm"))
    L += [""] + verdicts + [""]

    # 2 limited data
    lim = cfg["limited"]
    L += ["## 2. Limited training data", "",
          f"{lim['model']}, trained on a fraction of the training clips. Subsets are drawn by clip: the "
          f"training clips are shuffled with `random.Random({FRACTION_SEED} + seed)` and the first "
          f"ceil(f x {len(ex.lift_clips)}) clips are kept with all four cameras, so the subsets of one seed "
          "are nested and chiral and baseline see the same clips. Each run sees about the same number of "
          "training samples (epochs scaled by 1/f, at most "
          f"{lim['max_epochs']}; the learning-rate decay per epoch scaled so that the run decays as much "
          "as the 100 % run). Metrics from eval.", "",
          "| fraction | clips | frames | epochs | network | training | MPJPE (mm) | P-MPJPE (mm) |",
          "|---|---|---|---|---|---|---|---|"]
    series = []
    for network, training in LIMITED_VARIANTS:
        xs, ms, ds = [], [], []
        for f in lim["fractions"]:
            ks = [ex.limited_keys[(f, network, training, s)] for s in seeds]
            rs = [R[k[0]] for k in ks]
            clips = sorted({k[1] for k in ks})
            frames = [k[2] for k in ks]
            L.append(f"| {100 * f:g} % | {'/'.join(map(str, clips))} | {round(statistics.fmean(frames))} | "
                     f"{ks[0][3]} | {network} | {training} | {fmt([r['eval']['MPJPE'] for r in rs])} | "
                     f"{fmt([r['eval']['P-MPJPE'] for r in rs])} |")
            m, s = mean_std([r["eval"]["MPJPE"] for r in rs])
            xs.append(100 * f)
            ms.append(m)
            ds.append(s)
        series.append((f"{network}, {training}", xs, ms, ds))
    svg_lineplot(os.path.join(docs, "limited_data.svg"), f"{lim['model']}: MPJPE against training data",
                 "training clips (%)", "MPJPE (mm)", series, logx=True)
    L += ["", "![MPJPE against the fraction of training clips](limited_data.svg)", ""]
    for f in lim["fractions"]:
        c = [R[ex.limited_keys[(f, "chiral", "no augmentation", s)][0]]["eval"]["MPJPE"] for s in seeds]
        b = [R[ex.limited_keys[(f, "baseline", "no augmentation", s)][0]]["eval"]["MPJPE"] for s in seeds]
        bm = [R[ex.limited_keys[(f, "baseline", "mirror 0.5", s)][0]]["eval"]["MPJPE"] for s in seeds]
        L.append(verdict(f"{100 * f:g} % of the clips, MPJPE", c, b, "mm"))
        L.append(verdict(f"{100 * f:g} % of the clips, MPJPE", c, bm, "mm",
                         against="baseline trained with mirror 0.5"))
    L.append("")

    # 3 forecasting
    fk = ex.forecast_keys
    steps = len(R[fk[("chiral", seeds[0])]]["pck_steps"])
    L += ["## 3. Forecasting (forecast_lstm)", "",
          "PCK@0.05 (%) per predicted step (a joint is correct within 0.05 x the longer side of the true "
          "pose's bounding box), computed here from predict's outputs; *all steps*: eval's PCK@0.05.", "",
          "| step | chiral PCK@0.05 (%) | baseline PCK@0.05 (%) |", "|---|---|---|"]
    series = []
    for network in ("chiral", "baseline"):
        rs = [R[fk[(network, s)]] for s in seeds]
        ms = [mean_std([r["pck_steps"][i] for r in rs]) for i in range(steps)]
        series.append((network, list(range(1, steps + 1)), [m for m, _ in ms], [s for _, s in ms]))
    for i in range(steps):
        c = [R[fk[("chiral", s)]]["pck_steps"][i] for s in seeds]
        b = [R[fk[("baseline", s)]]["pck_steps"][i] for s in seeds]
        L.append(f"| {i + 1} | {fmt(c)} | {fmt(b)} |")
    c = [R[fk[("chiral", s)]]["eval"]["PCK@0.05"] for s in seeds]
    b = [R[fk[("baseline", s)]]["eval"]["PCK@0.05"] for s in seeds]
    L.append(f"| all steps | {fmt(c)} | {fmt(b)} |")
    svg_lineplot(os.path.join(docs, "forecast_pck.svg"), "forecast_lstm: PCK@0.05 per predicted step",
                 "predicted step (frames at 30 fps)", "PCK@0.05 (%)", series)
    L += ["", "![PCK@0.05 per predicted step](forecast_pck.svg)", "",
          verdict("forecasting, PCK@0.05 over all steps", c, b, "%", lower_better=False),
          verdict("forecasting, PCK@0.05 at the last step",
                  [R[fk[("chiral", s)]]["pck_steps"][-1] for s in seeds],
                  [R[fk[("baseline", s)]]["pck_steps"][-1] for s in seeds], "%", lower_better=False),
          f"- parameters: chiral {R[fk[('chiral', seeds[0])]]['params']}, baseline "
          f"{R[fk[('baseline', seeds[0])]]['params']}.", ""]

    # 4 action
    ak = ex.action_keys
    L += ["## 4. Action recognition (action_stconv)", "",
          "Top-1 and top-5 accuracy (%) on the test windows (eval). The chiral network's invariance layer "
          "makes its class scores the same for a pose and its mirror image.", "",
          "| network | top-1 (%) | top-5 (%) | parameters |", "|---|---|---|---|"]
    for network in ("chiral", "baseline"):
        rs = [R[ak[(network, s)]] for s in seeds]
        L.append(f"| {network} | {fmt([r['eval']['top-1'] for r in rs])} | "
                 f"{fmt([r['eval'].get('top-5', float('nan')) for r in rs])} | {rs[0]['params']} |")
    L += ["", verdict("action recognition, top-1", [R[ak[("chiral", s)]]["eval"]["top-1"] for s in seeds],
                      [R[ak[("baseline", s)]]["eval"]["top-1"] for s in seeds], "%", lower_better=False), ""]

    # 5 design choices
    dm = cfg["design"]["model"]
    L += ["## 5. Design choices the paper did not test", "",
          f"{dm} without augmentation: the default chiral network (the model's own `chirality` block) "
          "against `--activations mixed` (tanh only on negated features) and `--sharing paper` (the "
          "paper's subset of shared weights), and the baseline for reference.", "",
          "| network | MPJPE (mm) | P-MPJPE (mm) | parameters | equivariance error |", "|---|---|---|---|---|"]
    for network in NETWORKS:
        rs = [R[ex.design_keys[(network, s)]] for s in seeds]
        L.append(f"| {network} | {fmt([r['eval']['MPJPE'] for r in rs])} | "
                 f"{fmt([r['eval']['P-MPJPE'] for r in rs])} | {rs[0]['params']} | "
                 f"{fmt_e([r['equivariance'] for r in rs])} |")
    L.append("")
    dflt = [R[ex.design_keys[("chiral", s)]]["eval"]["MPJPE"] for s in seeds]
    for network in ("chiral, activations mixed", "chiral, sharing paper"):
        alt = [R[ex.design_keys[(network, s)]]["eval"]["MPJPE"] for s in seeds]
        m0, m1 = statistics.fmean(dflt), statistics.fmean(alt)
        L.append(f"- {network}: MPJPE {m1:.1f} mm against {m0:.1f} mm for the default chiral network "
                 f"({'lower' if m1 < m0 else 'not lower'}, by {abs(m1 - m0):.1f} mm).")
    L.append("")

    # 6 equivariance
    L += ["## 6. Equivariance on real data", "",
          "For every trained network, on the test set: |T_out F(x) - F(T_in x)| / |F(x)| (Frobenius norms "
          "over the whole test set; for the action network T_out is the identity). Chiral networks should "
          "be at float32 rounding; the baselines show how far an ordinary network is from it.", "",
          "| experiment | model | network | training | equivariance error | largest |", "|---|---|---|---|---|---|"]
    groups = {}
    for r in ex.runs.values():
        for use in r["uses"]:
            exp, model, network, training = use[:4]
            label, frac = training or "-", 0.0
            if exp == "limited":
                label, frac = f"{label}, {100 * use[4]:g} % clips", use[4]
            groups.setdefault((exp, model, network, training or "-", frac, label), []).append(
                R[r["key"]]["equivariance"])
    order = ["lifting", "limited", "design", "forecast", "action"]
    for (exp, model, network, _, _, label), vals in sorted(groups.items(),
                                                            key=lambda kv: (order.index(kv[0][0]),) + kv[0][1:]):
        L.append(f"| {exp} | {model} | {network} | {label} | {fmt_e(vals)} | {max(vals):.2e} |")
    ch = [v for k, vs in groups.items() if k[2].startswith("chiral") for v in vs]
    bl = [v for k, vs in groups.items() if k[2] == "baseline" for v in vs]
    L += ["", f"- chiral networks: largest error {max(ch):.2e}; baselines: smallest error {min(bl):.2e}."]
    if max(ch) == 0:
        L.append("- The chiral networks' error is exactly 0: the folded programs compute the mirrored input "
                 "with the same floating-point operations, permuted and with exact sign changes.")
    L.append("")

    # checks and commands
    checks = {"MPJPE": [], "P-MPJPE": [], "PCK@0.05": [], "top-1": []}
    for res in R.values():
        for k, name in (("check_mpjpe", "MPJPE"), ("check_p_mpjpe", "P-MPJPE"), ("check_pck", "PCK@0.05"),
                        ("check_top1", "top-1")):
            if k in res:
                checks[name].append(res[k])
    L += ["## Checks and commands", "",
          "Largest difference between eval's metric and the same metric recomputed here from predict's "
          "outputs (eval prints 4 decimals): " +
          ", ".join(f"{k} {max(v):.4f}" for k, v in checks.items() if v) + ".", "",
          "<details><summary>Every command run, in order of completion</summary>", "", "```"]
    L += [f"WORK={shlex.quote(ex.work)}  BUILD={shlex.quote(ex.r.build)}  SRC={shlex.quote(ex.src)}"]
    L += [c.replace(ex.work, "$WORK").replace(ex.r.build, "$BUILD").replace(ex.src, "$SRC")
          for c in ex.r.commands] + ["```", "", "</details>", ""]
    text = "\n".join(L)

    def w(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    _atomic(os.path.join(docs, "results.md"), w)
    print(f"wrote {os.path.join(docs, 'results.md')} ({ex.total_s:.0f} s)")
    worst = max((max(v) for v in checks.values() if v), default=0.0)
    if worst > 0.05:
        raise Failure(f"eval and the recomputed metrics differ by {worst:.4f}")


def expected_rows(cfg, seeds):
    """The table rows results.md must hold, as (heading, first cells): the test checks them."""
    rows = []
    for model in cfg["lifting"]:
        for network in ("chiral", "baseline"):
            for training in TRAININGS:
                for test in ("single pass", "flip average"):
                    rows.append(("## 1.", [model, network, training, test]))
    for network, training in LIMITED_VARIANTS:
        for f in cfg["limited"]["fractions"]:
            rows.append(("## 2.", [f"{100 * f:g} %", None, None, None, network, training]))
    return rows


def check_report(path, cfg, seeds):
    """Every table of results.md with its rows; numbers, not n/a or nan. Returns error lines."""
    text = open(path).read()
    errs = []
    sections = re.split(r"^(?=## )", text, flags=re.M)
    table = {}
    for sec in sections:
        head = sec.splitlines()[0] if sec else ""
        rows = [[c.strip() for c in l.strip().strip("|").split("|")] for l in sec.splitlines()
                if l.startswith("|") and not l.startswith("|---")]
        table[head[:5]] = rows[1:] if rows else []
    want = {"## 1.": 4 * len(cfg["lifting"]) * 2, "## 2.": len(cfg["limited"]["fractions"]) * len(LIMITED_VARIANTS),
            "## 3.": None, "## 4.": 2, "## 5.": len(NETWORKS), "## 6.": None}
    for h, n in want.items():
        if h not in table:
            errs.append(f"no section '{h}'")
        elif n is not None and len(table[h]) != n:
            errs.append(f"section '{h}': {len(table[h])} rows, expected {n}")
    for h, cells in expected_rows(cfg, seeds):
        if not any(all(c is None or c == r[i] for i, c in enumerate(cells)) for r in table.get(h, [])):
            errs.append(f"section '{h}': no row {cells}")
    if "## 3." in table:
        labels = [r[0] for r in table["## 3."]]
        if labels[-1:] != ["all steps"] or not all(x.isdigit() for x in labels[:-1]) or len(labels) < 2:
            errs.append(f"section '## 3.': rows {labels}")
    if "## 6." in table:
        nets = {r[2] for r in table["## 6."]}
        for n in NETWORKS:
            if n not in nets:
                errs.append(f"section '## 6.': no row for network '{n}'")
    for h, rows in table.items():
        for r in rows:
            if any(c in ("n/a", "nan") or "nan" in c for c in r):
                errs.append(f"section '{h}': row {r} has no number")
    for svg in ("limited_data.svg", "forecast_pck.svg"):
        p = os.path.join(os.path.dirname(path), svg)
        try:
            root = xml.etree.ElementTree.parse(p).getroot()
            if not root.findall("{http://www.w3.org/2000/svg}polyline"):
                errs.append(f"{svg}: no lines")
        except (OSError, xml.etree.ElementTree.ParseError) as e:
            errs.append(f"{svg}: {e}")
    return errs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build", help="the build folder with chiralc and chiraldata")
    ap.add_argument("--chiralc", help="the chiralc program (default: BUILD/chiralc)")
    ap.add_argument("--chiraldata", help="the chiraldata program (default: BUILD/chiraldata)")
    ap.add_argument("--out", required=False, help="work folder (data, programs, checkpoints)")
    ap.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    ap.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], help="e.g. 1,2,3")
    ap.add_argument("--docs", default=None, help="where results.md and the plots go (default: docs/)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="runs at a time")
    ap.add_argument("--check", action="store_true", help="after the run, check results.md's tables")
    ap.add_argument("--resume", action="store_true",
                    help="reuse the runs an earlier, interrupted run of the same command finished in OUT")
    ap.add_argument("--plan", action="store_true", help="derive the data, list the runs, run nothing")
    ap.add_argument("--selftest", action="store_true", help="only the metric self-test")
    args = ap.parse_args()
    try:
        selftest()
        if args.selftest:
            print("selftest: ok")
            return 0
        if not args.out:
            ap.error("--out is required")
        if args.docs is None:
            args.docs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs")
        cfg = CONFIGS[args.config]
        if args.seeds is not None and len(args.seeds) < 1:
            ap.error("--seeds: at least one")
        ex = Experiments(args, cfg)
        if ex.main() and args.check:
            errs = check_report(os.path.join(args.docs, "results.md"), cfg, ex.seeds)
            for e in errs:
                print(f"check: {e}", file=sys.stderr)
            if errs:
                return 1
            print("check: every table has its rows")
    except Failure as e:
        print(f"run.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
