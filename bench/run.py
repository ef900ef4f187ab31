#!/usr/bin/env python3
"""bench/run.py: the benchmark of issue 4 (item 3), side by side in one run.

    python3 bench/run.py --build build [--quick] [--out bench.md] [--python bench/.venv/bin/python]

VideoPose3D (243-frame receptive field, width 1024 written / 1020 chiral):
- inference over one long sequence: examples/videopose3d.net with --set frames=1242 (1,000
  output frames), batch 1;
- a training step (forward, loss, backward, Adam) of the strided one-frame training form,
  bench/videopose3d_strided.net, at batch 256 and 1024.
Variants: chiralc folded, --no-fold and --baseline (chiralc build -O2, timed by the program's
own `bench --threads 2`); PyTorch eager and torch.compile of the baseline and of the chiral
network written like the paper's reference code (bench/torch_bench.py); OpenBLAS sgemm on the
folded network's GEMM shapes (bench/sgemm.c), the machine's practical limit, measured after
every round of the programs (the median is the limit). Every measurement runs in a fresh
child process; its peak resident set is its maximum RSS (wait4). 2 threads everywhere. The
issue's targets are computed from the figures, not asserted: exit status 0 whether they hold
or not (non-zero only when the benchmark itself fails).
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
THREADS = 2
# --openblas-coretype: None leaves the environment's OPENBLAS_CORETYPE (or its absence) alone;
# "auto" removes it, so that OpenBLAS picks the kernels for this CPU; a name sets it.
OPENBLAS_CORETYPE = None

# Sizes. `frames` of the inference net: receptive field - 1 + output frames.
FULL = dict(blocks=4, width=1024, infer_out=1000, infer_steps=5, infer_rounds=3, train_batches=[256, 1024], train_steps=3,
            train_steps_big=2, train_rounds=3, sgemm_min_time=0.2)
QUICK = dict(blocks=2, width=1024, infer_out=100, infer_steps=3, infer_rounds=1, train_batches=[32], train_steps=2,
             train_steps_big=2, train_rounds=1, sgemm_min_time=0.03)

# The issue's targets (issue 4, "What must hold").
TARGET_INFER_VS_CHIRAL, TARGET_INFER_VS_BASE, TARGET_INFER_FRAC = 2.2, 1.8, 0.85
TARGET_TRAIN_VS_CHIRAL, TARGET_TRAIN_VS_BASE, TARGET_TRAIN_FRAC = 4.0, 2.5, 0.60
TARGET_FOLD, TARGET_MEM = 1.8, 0.5


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def child_env():
    env = dict(os.environ)
    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(THREADS)
    if OPENBLAS_CORETYPE == "auto":
        env.pop("OPENBLAS_CORETYPE", None)
    elif OPENBLAS_CORETYPE:
        env["OPENBLAS_CORETYPE"] = OPENBLAS_CORETYPE
    return env


def run_child(cmd, stop_at=None, timeout=None):
    """Runs cmd in a fresh process. Returns (status, stdout, stderr, peak MB).

    stop_at: a regex; once a stdout line matches, the child is killed (what it would do after
    that is not part of the measurement, and its peak memory is what it used up to then)."""
    errf = tempfile.TemporaryFile(mode="w+")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, text=True, env=child_env())
    out, killed, t0 = [], False, time.monotonic()
    for line in p.stdout:
        out.append(line)
        if stop_at and re.search(stop_at, line):
            os.kill(p.pid, signal.SIGKILL)
            killed = True
            break
        if timeout and time.monotonic() - t0 > timeout:
            os.kill(p.pid, signal.SIGKILL)
            out.append(f"[killed after {timeout} s]\n")
            break
    out.append(p.stdout.read())
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = 0 if killed else os.waitstatus_to_exitcode(status)
    errf.seek(0)
    err = errf.read()
    errf.close()
    return p.returncode, "".join(out), err, ru.ru_maxrss / 1024.0


# ---------------------------------------------------------------- chiralc

class Chiralc:
    def __init__(self, build, work, backend, exe=None):
        self.exe = exe or os.path.join(build, "chiralc")
        if not os.access(self.exe, os.X_OK):
            sys.exit(f"bench: no chiralc at {self.exe} (build it first, or pass --build DIR)")
        self.work, self.backend = work, backend

    def sets(self, sets):
        return [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]

    def build(self, net, sets, variant, tag):
        prog = os.path.join(self.work, f"{tag}-{variant}")
        cmd = [self.exe, "build", net, *self.sets(sets), "-O2", "-o", prog]
        if variant != "folded":
            cmd.append("--" + variant)
        if self.backend:
            cmd += ["--backend", self.backend]
        t0 = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
        if r.returncode != 0:
            return None, f"chiralc build failed: {last_error(r.stderr)}", 0.0
        return prog, None, time.monotonic() - t0

    def kir(self, net, sets, variant="folded"):
        extra = [] if variant == "folded" else ["--" + variant]
        r = subprocess.run([self.exe, "emit", "kir", net, "--train", *self.sets(sets), *extra], capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise RuntimeError(f"chiralc emit kir failed: {last_error(r.stderr)}")
        return r.stdout

    def table_macs(self, net, sets):
        r = subprocess.run([self.exe, "inspect", net, "--table", *self.sets(sets)], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            if line.startswith("total"):
                return int(line.split()[-1].replace(",", ""))
        return None


def last_error(text):
    lines = [ln for ln in text.splitlines() if "error" in ln]
    return (lines[0] if lines else text.strip().splitlines()[-1] if text.strip() else "?").strip()


def prog_frames(prog):
    """(input frames, output frames) from `PROG info`."""
    r = subprocess.run([prog, "info"], capture_output=True, text=True)
    dims = re.findall(r"^\s+\S+\s+\[N, (\d+),", r.stdout, re.M)
    return (int(dims[0]), int(dims[1])) if len(dims) >= 2 else (None, None)


def chiralc_bench(prog, batch, steps, infer_only):
    """`PROG bench`: forward (infer) seconds, training step seconds, peak MB."""
    cmd = [prog, "bench", "--batch", str(batch), "--steps", str(steps), "--threads", str(THREADS)]
    stop = None
    if infer_only and shutil.which("stdbuf"):
        # the line after the forward's own: its GEMMs' part of it (CPU programs print it)
        cmd, stop = ["stdbuf", "-oL", *cmd], r"^\s+its GEMMs"
    rc, out, err, peak = run_child(cmd, stop_at=stop)
    if rc != 0:
        return {"error": f"bench exit {rc}: {last_error(err or out)}"}
    res = {"peak_mb": peak, "raw": out}
    m = re.search(r"forward \(infer\)\s+([\d.]+) ms", out)
    if m:
        res["infer_s"] = float(m.group(1)) / 1e3
    m = re.search(r"training step\s+([\d.]+) ms", out)
    if m:
        res["train_s"] = float(m.group(1)) / 1e3
    # the wall time inside rt_sgemm during each (medians over the steps)
    for key, what in (("infer_gemm_s", r"forward \(infer\)"), ("train_gemm_s", "training step")):
        m = re.search(what + r"\s+[\d.]+ ms.*\n\s+its GEMMs\s+([\d.]+) ms", out)
        if m:
            res[key] = float(m.group(1)) / 1e3
    m = re.search(r"threads \(.*\), OpenBLAS (\S+)", out)
    if m:
        res["blas_core"] = m.group(1)
    return res


# ---------------------------------------------------------------- GEMM shapes and sgemm

def gemm_shapes(kir_text, fns, batch, merge=False):
    """The GEMM steps of the kernel IR functions `fns` at the given batch:
    {(m, n, k, ta, tb, count): occurrences}.

    merge: a strided batch of `count` GEMMs that share B (stride 0; the per-sample transposed
    convolution of a backward pass) counts as the one GEMM of m * count rows it amounts to: the
    network's arithmetic in the shape a BLAS runs best, the practical limit the issue asks for."""
    shapes, fn, pending = {}, None, None

    def dim(s):
        if not re.fullmatch(r"[\dN*+]+", s):
            raise RuntimeError(f"unexpected GEMM extent '{s}' in the kernel IR")
        return int(eval(s.replace("N", str(batch))))  # only digits, N, * and +

    for line in kir_text.splitlines():
        m = re.match(r"fn (\w+)", line)
        if m:
            fn = m.group(1)
            continue
        m = re.match(r"\s+gemm (?:x(\S+) )?m (\S+) n (\S+) k (\S+)", line)
        if m:
            pending = (dim(m.group(2)), dim(m.group(3)), dim(m.group(4)), dim(m.group(1)) if m.group(1) else 1)
            continue
        if pending and fn in fns:
            mm, nn, kk, count = pending
            ta, tb = ("T" if "A^T" in line else "N"), ("T" if "B^T" in line else "N")
            b_stride = re.search(r"\bB(?:\^T)? \S+ ld \d+ stride (\d+)", line)
            if merge and count > 1 and ta == "N" and b_stride and b_stride.group(1) == "0":
                mm, count = mm * count, 1
            key = (mm, nn, kk, ta, tb, count)
            shapes[key] = shapes.get(key, 0) + 1
        pending = None
    return shapes


def macs_of(shapes):
    return sum(m * n * k * c * t for (m, n, k, _, _, c), t in shapes.items())


def build_sgemm(work, runtime_lib=None):
    """bench/sgemm.c built alone (OpenBLAS's own threads), or with runtime_lib (libchiralrt.a)
    for --runtime (the GEMMs issued through rt_sgemm, as the compiled programs issue them)."""
    exe = os.path.join(work, "sgemm_rt" if runtime_lib else "sgemm")
    cc = os.environ.get("CC", "cc")
    extra = ["-DSGEMM_RUNTIME", "-I", ROOT] if runtime_lib else []
    libs = [runtime_lib, "-lopenblas", "-lpthread", "-lm"] if runtime_lib else ["-lopenblas"]
    r = None
    for inc in ([], ["-I", "/usr/include/x86_64-linux-gnu/openblas-pthread"]):   # Debian's cblas.h when not on the path
        r = subprocess.run([cc, "-O2", "-std=c11", *extra, *inc, "-o", exe, os.path.join(HERE, "sgemm.c"), *libs],
                           capture_output=True, text=True)
        if r.returncode == 0:
            return exe, None
    return None, f"cc sgemm.c{' with libchiralrt' if runtime_lib else ''} failed: {last_error(r.stderr)}"


def sgemm_rate(exe, shapes, min_time, runtime=False):
    args = [f"{m},{n},{k},{ta},{tb},{c},{t}" for (m, n, k, ta, tb, c), t in sorted(shapes.items())]
    rc, out, err, peak = run_child([exe, "--min-time", str(min_time), *(["--runtime", str(THREADS)] if runtime else []),
                                    *args])
    m = re.search(r"^total (\S+) (\S+) (\S+)", out, re.M)
    if rc != 0 or not m:
        return {"error": f"sgemm failed: {last_error(err or out)}"}
    return {"flops": float(m.group(1)), "seconds": float(m.group(2)), "gflops": float(m.group(3)), "peak_mb": peak,
            "raw": out}


def median_run(results, key="seconds"):
    """The result whose `key` is the median of those that have it (the lower of the middle two
    for an even count), with every one's figure under 'rounds'."""
    ok = sorted((r for r in results if key in r), key=lambda r: r[key])
    if not ok:
        return results[-1] if results else {"error": "not measured"}
    res = dict(ok[(len(ok) - 1) // 2])
    res["rounds"] = [r[key] for r in results if key in r]
    return res


def sgemm_limit(exe, why, kir_text, fns, batch, min_time, rounds=None):
    """Useful multiply-adds of the GEMMs of `fns`, and the sgemm rate on their shapes: merged
    (the limit) with the rate on the shapes as the compiled code issues them under 'issued'.
    rounds: measurements of the merged shapes taken between the programs' rounds; the median
    one is the limit (measured once, here, without)."""
    merged = gemm_shapes(kir_text, fns, batch, merge=True)
    issued = gemm_shapes(kir_text, fns, batch)
    macs = macs_of(issued)
    if not issued:
        return macs, {"error": "no GEMM steps found in the kernel IR"}
    if not exe:
        return macs, {"error": why}
    res = median_run(rounds) if rounds else sgemm_rate(exe, merged, min_time)
    res["issued"] = sgemm_rate(exe, issued, min_time) if issued != merged else res
    return macs, res


# ---------------------------------------------------------------- PyTorch

def torch_version(python):
    if not python:
        return None, "no Python interpreter for PyTorch"
    try:
        r = subprocess.run([python, "-c", "import torch, numpy; print(torch.__version__)"], capture_output=True,
                           text=True)
    except OSError as e:
        return None, f"cannot run {python}: {e.strerror}"
    if r.returncode != 0:
        return None, f"PyTorch (or numpy) is not installed for {python}"
    return r.stdout.strip(), None


def torch_bench(python, net, mode, form, blocks, width, frames, batch, steps, compile_):
    cmd = [python, os.path.join(HERE, "torch_bench.py"), "--net", net, "--mode", mode, "--form", form,
           "--blocks", str(blocks), "--width", str(width), "--frames", str(frames), "--batch", str(batch),
           "--steps", str(steps), "--warmup", "2" if compile_ else "1", "--threads", str(THREADS)]
    if compile_:
        cmd.append("--compile")
    rc, out, err, peak = run_child(cmd)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if rc != 0 or not lines:
        return {"error": f"exit {rc}: {last_error(err or out)}"}
    res = json.loads(lines[-1])
    res["peak_mb"] = peak
    return res


# ---------------------------------------------------------------- formatting

def gemm_split_line(tf, gf, tn, gn):
    """The training step split, inside the programs, into the wall time of their GEMMs
    (`PROG bench`'s "its GEMMs") and the rest, and what that makes of the fold target:
    for folded / --no-fold >= TARGET_FOLD the folded rest may take at most
    tn / TARGET_FOLD - gf; with every kernel of --no-fold's rest free (the folded step
    runs each of them too) the ratio is gn / (gf + rf - rn), folding's own loop
    kernels (analyses, syntheses, S^T) then its only cost besides the GEMMs."""
    rf, rn = tf - gf, tn - gn
    need = tn / TARGET_FOLD - gf
    best = gn / (gf + max(rf - rn, 0.0))
    return (f"the step inside the programs (wall time in `rt_sgemm` against the rest: loop kernels, loss, Adam): "
            f"folded {gf:.3f} + {rf:.3f} s, `--no-fold` {gn:.3f} + {rn:.3f} s; the GEMMs {gn / gf:.2f}x apart. "
            f"For {TARGET_FOLD}x the folded rest could take at most {need:.3f} s "
            f"({'less than' if need < rn else 'at least'} `--no-fold`'s {rn:.3f} s, every kernel of which the folded "
            f"step runs too); with all of `--no-fold`'s rest free in both, folding's own {max(rf - rn, 0.0):.3f} s would "
            f"leave {best:.2f}x")


def fmt(x, spec, unit=""):
    return "n/a" if x is None else format(x, spec) + unit


def ratio(a, b):
    """How many times faster `a` is than `b`, given times."""
    return None if a is None or b is None or a <= 0 else b / a


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="chiralc's build directory (default: build)")
    ap.add_argument("--quick", action="store_true", help="small sizes, few steps, no torch.compile (about a minute)")
    ap.add_argument("--out", help="write the tables as markdown to this file")
    ap.add_argument("--python", help="Python with torch (default: bench/.venv/bin/python, else this Python)")
    ap.add_argument("--work", help="directory for the built programs (default: a temporary one)")
    ap.add_argument("--backend", help="chiralc build --backend (default: chiralc's own default)")
    ap.add_argument("--batches", help="training batches, comma-separated (default: 256,1024; --quick: 32)")
    ap.add_argument("--infer-steps", type=int, help="timed inference passes (median) per round")
    ap.add_argument("--infer-rounds", type=int, help="inference rounds, the variants taking turns (default 3; --quick: 1)")
    ap.add_argument("--train-rounds", type=int,
                    help="training rounds of the chiralc variants, taking turns (default 3; --quick: 1)")
    ap.add_argument("--train-steps", type=int, help="timed training steps (median) at every batch")
    ap.add_argument("--compile", dest="compile", action="store_true", default=None,
                    help="measure torch.compile (default: yes, except with --quick)")
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch altogether")
    ap.add_argument("--openblas-coretype", metavar="NAME",
                    help="OpenBLAS kernels for the chiralc programs and the sgemm bound alike: a core name "
                         "(SkylakeX, Haswell, ...), or 'auto' for OpenBLAS's own choice for this CPU "
                         "(default: the environment's OPENBLAS_CORETYPE, if any)")
    a = ap.parse_args()
    global OPENBLAS_CORETYPE
    if a.openblas_coretype is not None:
        if not re.fullmatch(r"auto|[A-Za-z][A-Za-z0-9_]*", a.openblas_coretype):
            ap.error(f"--openblas-coretype: '{a.openblas_coretype}' is not a core name (SkylakeX, Haswell, ...) "
                     "or 'auto'")
        OPENBLAS_CORETYPE = a.openblas_coretype

    cfg = dict(QUICK if a.quick else FULL)
    if a.batches:
        cfg["train_batches"] = [int(b) for b in a.batches.split(",")]
    if a.infer_steps:
        cfg["infer_steps"] = a.infer_steps
    if a.infer_rounds:
        cfg["infer_rounds"] = a.infer_rounds
    if a.train_rounds:
        cfg["train_rounds"] = a.train_rounds
    if a.train_steps:
        cfg["train_steps"] = cfg["train_steps_big"] = a.train_steps
    do_compile = (not a.quick) if a.compile is None else a.compile
    blocks, width = cfg["blocks"], cfg["width"]
    field = 3 ** (blocks + 1)
    infer_frames = field - 1 + cfg["infer_out"]
    big_batch = max(cfg["train_batches"])

    work = a.work or tempfile.mkdtemp(prefix="chiralc-bench-")
    os.makedirs(work, exist_ok=True)
    cc = Chiralc(os.path.abspath(a.build), work, a.backend)
    python = a.python or (os.path.join(HERE, ".venv", "bin", "python")
                          if os.path.exists(os.path.join(HERE, ".venv", "bin", "python")) else sys.executable)
    tv, why_no_torch = (None, "--no-torch") if a.no_torch else torch_version(python)
    if tv is None:
        log(f"bench: PyTorch rows are n/a: {why_no_torch} (sh bench/setup.sh makes a venv; or pass --python)")
    started = time.monotonic()
    load = os.getloadavg()
    log(f"bench: {'quick' if a.quick else 'full'} run, work dir {work}, load average {load[0]:.2f} at the start")

    infer_net = os.path.join(ROOT, "examples", "videopose3d.net")
    infer_sets = {"blocks": blocks, "width": width, "frames": infer_frames}
    train_net, train_form = os.path.join(HERE, "videopose3d_strided.net"), "strided"
    train_sets = {"blocks": blocks, "width": width}
    notes = []

    # The strided form needs crop(x, n, stride=s); until the compiler has it, the dilated
    # form (the same function, more frames computed) stands in, for every variant alike.
    probe = subprocess.run([cc.exe, "inspect", train_net, "--table", *cc.sets(train_sets)], capture_output=True,
                           text=True)
    if probe.returncode != 0:
        notes.append(f"the strided training form does not compile here ({last_error(probe.stderr)}); "
                     "the training rows use the dilated form at 3^(blocks+1) frames (one output frame), "
                     "for chiralc and PyTorch alike")
        log("bench: " + notes[-1])
        train_net, train_form = infer_net, "dilated"
        train_sets = {"blocks": blocks, "width": width, "frames": field}

    sg_exe, sg_err = build_sgemm(work)
    if sg_err:
        log("bench: " + sg_err)
    rtlib = os.path.join(os.path.abspath(a.build), "libchiralrt.a")
    sg_rt_exe, sg_rt_err = build_sgemm(work, rtlib) if os.path.exists(rtlib) else (None, f"no {rtlib}")
    if sg_rt_err:
        log("bench: " + sg_rt_err)

    # ---- inference
    R = {"infer": {}, "train": {b: {} for b in cfg["train_batches"]}}
    rounds = cfg["infer_rounds"]
    log(f"bench: inference, {infer_frames} input frames, batch 1, {rounds} rounds")
    # The variants take turns, round after round, and each one's figure is the median of its
    # rounds' medians: a slow minute of a shared machine then falls on every variant alike
    # instead of on whichever ran in it (one variant after another, two runs of this
    # benchmark differed by a third on the same program).
    runs = {}  # name -> callable running one round
    for variant in ("folded", "no-fold", "baseline"):
        prog, err, bs = cc.build(infer_net, infer_sets, variant, "infer")
        if err:
            R["infer"]["chiralc " + variant] = {"error": err}
            continue
        if variant == "folded":
            fin, fout = prog_frames(prog)
            if fout != cfg["infer_out"]:
                notes.append(f"inference program: {fout} output frames from {fin} (expected {cfg['infer_out']})")
            out_frames = fout or cfg["infer_out"]
        runs["chiralc " + variant] = (lambda prog=prog, bs=bs: dict(chiralc_bench(prog, 1, cfg["infer_steps"], True),
                                                                    build_s=bs), "infer_s")
    if tv:
        for net in ("baseline", "chiral"):
            for comp in (False, True) if do_compile else (False,):
                name = f"PyTorch {'torch.compile' if comp else 'eager'} {net}"
                runs[name] = (lambda net=net, comp=comp: torch_bench(python, net, "infer", "dilated", blocks, width,
                                                                     infer_frames, 1, cfg["infer_steps"], comp),
                              "seconds")
    # The sgemm bound takes its turn in every round too: measured once, a slow minute moved
    # it by a third (289 against 394 GFLOP/s in two runs of the same shapes).
    kir_infer = cc.kir(infer_net, infer_sets)
    bound_shapes = gemm_shapes(kir_infer, {"forward_infer"}, 1, merge=True)
    per_round = {name: [] for name in runs}
    bound_rounds = []
    for r in range(rounds):
        for name, (run, key) in runs.items():
            res = run()
            per_round[name].append(res)
            log(f"  round {r + 1}, {name}: {fmt(res.get(key), '.4f')} s/pass {res.get('error', '')}")
        if sg_exe and bound_shapes:
            bound_rounds.append(sgemm_rate(sg_exe, bound_shapes, cfg["sgemm_min_time"]))
            log(f"  round {r + 1}, sgemm bound: {fmt(bound_rounds[-1].get('gflops'), '.1f')} GFLOP/s")
    for name, (run, key) in runs.items():
        res_list = per_round[name]
        ok = [x for x in res_list if key in x]
        if not ok:
            R["infer"][name] = res_list[-1]
            continue
        res = dict(ok[-1])
        res[key] = statistics.median(x[key] for x in ok)
        res["peak_mb"] = max((x.get("peak_mb") or 0) for x in ok) or None
        res["rounds"] = [x[key] for x in ok]
        R["infer"][name] = res
        if name.startswith("PyTorch") and res.get("out_frames") != out_frames:
            notes.append(f"{name}: {res.get('out_frames')} output frames, chiralc {out_frames}")
    macs_infer, sg_infer = sgemm_limit(sg_exe, sg_err, kir_infer, {"forward_infer"}, 1, cfg["sgemm_min_time"],
                                       bound_rounds)
    tab_macs = cc.table_macs(infer_net, infer_sets)
    if tab_macs is not None and tab_macs != macs_infer:
        notes.append(f"inference: GEMM multiply-adds {macs_infer:,} differ from inspect --table's {tab_macs:,}")
    log(f"  sgemm on the folded shapes: {fmt(sg_infer.get('gflops'), '.1f')} GFLOP/s")

    # ---- training
    sg_train, macs_train, sg_train_nofold, sg_issued_rt = {}, {}, {}, {}
    macs_train_nofold = None
    kir_train = cc.kir(train_net, train_sets)
    try:
        kir_train_nofold = cc.kir(train_net, train_sets, "no-fold")
    except RuntimeError as e:
        kir_train_nofold = None
        notes.append(f"no --no-fold kernel IR for the GEMM ceiling: {e}")
    progs = {}
    for variant in ("folded", "no-fold", "baseline"):
        prog, err, bs = cc.build(train_net, train_sets, variant, "train")
        progs[variant] = (prog, err, bs)
    for b in cfg["train_batches"]:
        steps = cfg["train_steps_big"] if b == big_batch and len(cfg["train_batches"]) > 1 else cfg["train_steps"]
        rounds = cfg["train_rounds"]
        log(f"bench: training step, {train_form} form, batch {b}, {steps} timed steps, {rounds} rounds")
        # as for inference, the chiralc variants take turns and each one's figure is the median
        # of its rounds: one variant after another, the same two programs' ratio moved by a
        # tenth from run to run (folded against --no-fold: 1.40x and 1.74x half an hour apart)
        per_round = {v: [] for v in progs}
        fns = {"forward_train", "backward_train"}
        bounds = {"folded": gemm_shapes(kir_train, fns, b, merge=True) if sg_exe else None,
                  "no-fold": gemm_shapes(kir_train_nofold, fns, b, merge=True)
                  if sg_exe and kir_train_nofold and b == big_batch else None}
        bound_rounds = {k: [] for k in bounds}
        for r in range(rounds):
            for variant, (prog, err, bs) in progs.items():
                res = {"error": err} if err else chiralc_bench(prog, b, steps, infer_only=False)
                per_round[variant].append(res)
                log(f"  round {r + 1}, chiralc {variant}: {fmt(res.get('train_s'), '.3f')} s/step "
                    f"{res.get('error', '')}")
            for k, shapes in bounds.items():
                if shapes:
                    bound_rounds[k].append(sgemm_rate(sg_exe, shapes, cfg["sgemm_min_time"]))
                    log(f"  round {r + 1}, sgemm bound ({k} shapes): "
                        f"{fmt(bound_rounds[k][-1].get('seconds'), '.3f')} s")
        for variant, (prog, err, bs) in progs.items():
            ok = [x for x in per_round[variant] if "train_s" in x]
            if not ok:
                R["train"][b]["chiralc " + variant] = per_round[variant][-1]
                continue
            res = dict(ok[-1])
            res["train_s"] = statistics.median(x["train_s"] for x in ok)
            gemm = [x["train_gemm_s"] for x in ok if "train_gemm_s" in x]
            res["train_gemm_s"] = statistics.median(gemm) if gemm else None
            res["peak_mb"] = max((x.get("peak_mb") or 0) for x in ok) or None
            res["rounds"] = [x["train_s"] for x in ok]
            res["build_s"] = bs
            R["train"][b]["chiralc " + variant] = res
        macs_train[b], sg_train[b] = sgemm_limit(sg_exe, sg_err, kir_train, fns, b, cfg["sgemm_min_time"],
                                                 bound_rounds["folded"])
        log(f"  sgemm on the folded shapes: {fmt(sg_train[b].get('gflops'), '.1f')} GFLOP/s")
        if b == big_batch and kir_train_nofold:
            macs_train_nofold, sg_train_nofold = sgemm_limit(sg_exe, sg_err, kir_train_nofold, fns, b,
                                                             cfg["sgemm_min_time"], bound_rounds["no-fold"])
            log(f"  sgemm on the --no-fold shapes: {fmt(sg_train_nofold.get('seconds'), '.3f')} s")
            if sg_rt_exe:
                # the same bound with each GEMM issued as the programs issue it (rt_sgemm's
                # single-threaded parts on the runtime's pool), where the rates per shape differ
                for name, text in (("folded", kir_train), ("no-fold", kir_train_nofold)):
                    issued = gemm_shapes(text, fns, b)
                    sg_issued_rt[name] = sgemm_rate(sg_rt_exe, issued, cfg["sgemm_min_time"], runtime=True)
                log(f"  rt_sgemm, folded and --no-fold shapes: {fmt(sg_issued_rt['folded'].get('seconds'), '.3f')} s, "
                    f"{fmt(sg_issued_rt['no-fold'].get('seconds'), '.3f')} s")
        if tv:
            for net in ("baseline", "chiral"):
                for comp in (False, True) if do_compile else (False,):
                    name = f"PyTorch {'torch.compile' if comp else 'eager'} {net}"
                    res = torch_bench(python, net, "train", train_form, blocks, width, field, b, steps, comp)
                    R["train"][b][name] = res
                    log(f"  {name}: {fmt(res.get('seconds'), '.3f')} s/step {res.get('error', '')}")

    # ---- tables
    order = ["chiralc folded", "chiralc no-fold", "chiralc baseline", "PyTorch eager baseline",
             "PyTorch eager chiral", "PyTorch torch.compile baseline", "PyTorch torch.compile chiral"]
    label = {"chiralc folded": "chiralc (folded)", "chiralc no-fold": "chiralc `--no-fold`",
             "chiralc baseline": "chiralc `--baseline`", "PyTorch eager baseline": "PyTorch eager, baseline",
             "PyTorch eager chiral": "PyTorch eager, chiral (reference style)",
             "PyTorch torch.compile baseline": "torch.compile, baseline",
             "PyTorch torch.compile chiral": "torch.compile, chiral (reference style)"}
    no_torch = f"n/a ({why_no_torch})" if tv is None else None

    md = []
    title = "quick sizes (smoke test, not the issue's measurement)" if a.quick else "issue 4 sizes"
    md.append(f"Benchmark: VideoPose3D, {blocks} blocks ({field}-frame receptive field), width {width} written / "
              f"{(width // 17) * 17} chiral, {THREADS} threads; {title}.")
    cores = sorted({r.get("blas_core") for part in R.values() if isinstance(part, dict)
                    for r in part.values() if isinstance(r, dict) and r.get("blas_core")})
    if cores:
        env = child_env().get("OPENBLAS_CORETYPE")
        how = ("chosen by OpenBLAS for this CPU" if not env else
               f"OPENBLAS_CORETYPE={env} " + ("from --openblas-coretype" if OPENBLAS_CORETYPE else "in the environment"))
        md.append(f"OpenBLAS kernels in the chiralc programs and bench/sgemm.c: {', '.join(cores)} ({how}).")
    md.append("")

    # inference
    ri = R["infer"]
    t_ch, t_base = ri.get("PyTorch eager chiral", {}).get("seconds"), ri.get("PyTorch eager baseline", {}).get("seconds")
    t_fold_i = ri.get("chiralc folded", {}).get("infer_s")
    t_nofold_i = ri.get("chiralc no-fold", {}).get("infer_s")
    rows = []
    for key in order:
        if key not in ri and not (key.startswith("PyTorch") and no_torch):
            if key.startswith("PyTorch torch.compile") and not do_compile:
                rows.append([label[key], "n/a (not measured: --no-compile/--quick)", "", "", "", ""])
            continue
        r = ri.get(key, {})
        t = r.get("infer_s") if key.startswith("chiralc") else r.get("seconds")
        if t is None:
            rows.append([label[key], r.get("error") and "n/a (" + r["error"] + ")" or no_torch or "n/a", "", "", "", ""])
            continue
        rows.append([label[key], f"{1e3 * t:.1f}", f"{out_frames / t:,.0f}", fmt(ratio(t, t_ch), ".2f"),
                     fmt(ratio(t, t_base), ".2f"), f"{r['peak_mb']:,.0f}"])
    md.append(f"**Inference**, one sequence: {infer_frames} input frames -> {out_frames} output frames, batch 1 "
              f"(median of {cfg['infer_rounds']} rounds' medians of {cfg['infer_steps']}, the variants taking turns)")
    md.append("")
    md.append(table(["variant", "ms / pass", "frames/s", "x PyTorch chiral", "x PyTorch baseline", "peak MB"], rows))
    md.append("")

    def frac_line(macs, t, sg):
        if t is None or "gflops" not in sg:
            return None, f"n/a ({sg.get('error', 'no chiralc time')})"
        achieved = 2 * macs / t / 1e9
        f = achieved / sg["gflops"]
        iss = sg.get("issued", {})
        issued = "" if iss is sg else (f" (on the shapes as issued, strided batches one GEMM a sample: "
                                       f"{fmt(iss.get('gflops'), '.1f')} GFLOP/s)")
        rounds = sg.get("rounds") or []
        of = (f"; the median of {len(rounds)}, one after each round of the programs: "
              f"{', '.join(f'{1e3 * x:.1f}' for x in rounds)} ms" if len(rounds) > 1 else "")
        return f, (f"{macs / 1e9:.2f} G useful multiply-adds (folded GEMMs) in {1e3 * t:.1f} ms: "
                   f"{achieved:.1f} GFLOP/s; OpenBLAS sgemm on the same shapes {sg['gflops']:.1f} GFLOP/s "
                   f"({1e3 * sg['seconds']:.1f} ms{of}){issued}; fraction {100 * f:.0f}%")

    frac_i, line_i = frac_line(macs_infer, t_fold_i, sg_infer)
    md.append(f"- sgemm limit: {line_i}")
    md.append(f"- folded vs `--no-fold`: {fmt(ratio(t_fold_i, t_nofold_i), '.2f')}x")
    md.append("")

    # training
    fold_train, frac_train, mem_ratio = {}, {}, {}
    for b in cfg["train_batches"]:
        rt = R["train"][b]
        tc = rt.get("PyTorch eager chiral", {}).get("seconds")
        tb = rt.get("PyTorch eager baseline", {}).get("seconds")
        rows = []
        for key in order:
            if key not in rt and not (key.startswith("PyTorch") and no_torch):
                if key.startswith("PyTorch torch.compile") and not do_compile:
                    rows.append([label[key], "n/a (not measured: --no-compile/--quick)", "", "", "", ""])
                continue
            r = rt.get(key, {})
            t = r.get("train_s") if key.startswith("chiralc") else r.get("seconds")
            if t is None:
                rows.append([label[key], r.get("error") and "n/a (" + r["error"] + ")" or no_torch or "n/a", "", "", "", ""])
                continue
            rows.append([label[key], f"{t:.3f}", f"{b / t:,.0f}", fmt(ratio(t, tc), ".2f"), fmt(ratio(t, tb), ".2f"),
                         f"{r['peak_mb']:,.0f}"])
        steps = cfg["train_steps_big"] if b == big_batch and len(cfg["train_batches"]) > 1 else cfg["train_steps"]
        md.append(f"**Training step** (forward, loss, backward, Adam), {train_form} form, {field} frames -> 1, "
                  f"batch {b} (chiralc: median of {cfg['train_rounds']} rounds' medians of {steps}, the variants "
                  f"taking turns; PyTorch: median of {steps})")
        md.append("")
        md.append(table(["variant", "s / step", "samples/s", "x PyTorch chiral", "x PyTorch baseline", "peak MB"],
                        rows))
        md.append("")
        tf = rt.get("chiralc folded", {}).get("train_s")
        frac_train[b], line = frac_line(macs_train[b], tf, sg_train[b])
        t_nf = rt.get("chiralc no-fold", {}).get("train_s")
        fold_train[b] = ratio(tf, t_nf)
        pm, pc = rt.get("chiralc folded", {}).get("peak_mb"), rt.get("PyTorch eager chiral", {}).get("peak_mb")
        mem_ratio[b] = pm / pc if pm and pc and "seconds" in rt.get("PyTorch eager chiral", {}) else None
        md.append(f"- sgemm limit: {line}")
        md.append(f"- folded vs `--no-fold`: {fmt(fold_train[b], '.2f')}x; peak memory folded / PyTorch eager chiral: "
                  f"{fmt(mem_ratio[b], '.2f')}")
        rounds_of = {v: rt.get("chiralc " + v, {}).get("rounds") for v in ("folded", "no-fold")}
        if all(rounds_of.values()) and len(rounds_of["folded"]) > 1:
            per = [f"{n / f:.2f}x" for f, n in zip(rounds_of["folded"], rounds_of["no-fold"])]
            md.append(f"- folded vs `--no-fold` round by round: {', '.join(per)}")
        if b == big_batch and "seconds" in sg_train_nofold and "seconds" in sg_train[b]:
            # the ratio were the step its GEMMs alone, each at OpenBLAS's rate on its shapes: the
            # loop kernels (batchnorm, tanh, dropout, residuals), which both variants run,
            # can only pull the measured ratio below this
            g_f, g_n = sg_train[b]["seconds"], sg_train_nofold["seconds"]
            md.append(f"- the GEMMs alone at the sgemm rate: folded {g_f:.3f} s, `--no-fold` {g_n:.3f} s: "
                      f"{g_n / g_f:.2f}x, the most folded vs `--no-fold` could be were the rest free; the rest of "
                      f"the step (loop kernels, loss, Adam, and the GEMMs' shortfall from that rate): folded "
                      f"{fmt(tf - g_f if tf else None, '.3f')} s, `--no-fold` {fmt(t_nf - g_n if t_nf else None, '.3f')} s")
        if b == big_batch and all("seconds" in sg_issued_rt.get(v, {}) for v in ("folded", "no-fold")):
            r_f, r_n = sg_issued_rt["folded"]["seconds"], sg_issued_rt["no-fold"]["seconds"]
            md.append(f"- the GEMMs alone as the programs issue them (each shape through `rt_sgemm`, the "
                      f"runtime's {THREADS} threads each running single-threaded OpenBLAS on parts of C): folded "
                      f"{r_f:.3f} s, `--no-fold` {r_n:.3f} s: {r_n / r_f:.2f}x; the rest of the step: folded "
                      f"{fmt(tf - r_f if tf else None, '.3f')} s, `--no-fold` {fmt(t_nf - r_n if t_nf else None, '.3f')} s")
            if tf and t_nf and macs_train_nofold:
                # what folding could give at best with the loop kernels as they are: the folded
                # GEMMs costing exactly their multiply-adds' share of --no-fold's as issued, and
                # the rest of the folded step (its analyses and syntheses included) no longer
                # than --no-fold's; past this only loop kernels both variants run can move it
                share = macs_train[b] / macs_train_nofold
                best = share * r_n + (t_nf - r_n)
                what = ("n/a (the GEMMs alone took longer than the step they are part of: the host's noise)"
                        if t_nf <= r_n or tf <= r_f else
                        f"the folded GEMMs at their multiply-adds' share of `--no-fold`'s as issued "
                        f"({macs_train[b] / 1e9:.1f} of {macs_train_nofold / 1e9:.1f} G, {share:.3f}) and the "
                        f"folded rest no longer than `--no-fold`'s: {best:.3f} s against {t_nf:.3f} s, "
                        f"{t_nf / best:.2f}x")
                md.append(f"- folded vs `--no-fold` at best with the rest of the step as it is: {what}")
        gf, gn = (rt.get("chiralc " + v, {}).get("train_gemm_s") for v in ("folded", "no-fold"))
        if b == big_batch and tf and t_nf and gf and gn:
            md.append("- " + gemm_split_line(tf, gf, t_nf, gn))
        md.append("")

    # targets
    rb = R["train"][big_batch]
    tfb = rb.get("chiralc folded", {}).get("train_s")
    targets = [
        ("inference: folded vs PyTorch eager chiral", ratio(t_fold_i, t_ch), TARGET_INFER_VS_CHIRAL, "x"),
        ("inference: folded vs PyTorch eager baseline", ratio(t_fold_i, t_base), TARGET_INFER_VS_BASE, "x"),
        ("inference: fraction of the sgemm rate", frac_i, TARGET_INFER_FRAC, "%"),
        (f"training (batch {big_batch}): folded vs PyTorch eager chiral",
         ratio(tfb, rb.get("PyTorch eager chiral", {}).get("seconds")), TARGET_TRAIN_VS_CHIRAL, "x"),
        (f"training (batch {big_batch}): folded vs PyTorch eager baseline",
         ratio(tfb, rb.get("PyTorch eager baseline", {}).get("seconds")), TARGET_TRAIN_VS_BASE, "x"),
        (f"training (batch {big_batch}): fraction of the sgemm rate", frac_train[big_batch], TARGET_TRAIN_FRAC, "%"),
        ("inference: folded vs --no-fold", ratio(t_fold_i, t_nofold_i), TARGET_FOLD, "x"),
        (f"training (batch {big_batch}): folded vs --no-fold", fold_train[big_batch], TARGET_FOLD, "x"),
    ]
    rows = []
    for name, v, goal, unit in targets:
        shown = fmt(v, ".2f", "x") if unit == "x" else fmt(None if v is None else 100 * v, ".0f", "%")
        want = f">= {goal}x" if unit == "x" else f">= {100 * goal:.0f}%"
        rows.append([name, want, shown, "n/a" if v is None else ("yes" if v >= goal else "**no**")])
    mr = mem_ratio[big_batch]
    rows.append([f"training (batch {big_batch}): peak memory folded / PyTorch eager chiral", f"<= {TARGET_MEM}",
                 fmt(mr, ".2f"), "n/a" if mr is None else ("yes" if mr <= TARGET_MEM else "**no**")])
    caveat = (" (at quick sizes: indicative only)" if a.quick else
              f" (training at batch {big_batch}, the issue's is 1024)" if big_batch != 1024 else "")
    md.append("**Issue 4 targets**" + caveat)
    md.append("")
    md.append(table(["target", "wanted", "measured", "holds"], rows))
    md.append("")
    cmdline = "python3 bench/run.py " + " ".join(sys.argv[1:])
    md.append(f"Command: `{cmdline}`; PyTorch {tv or 'n/a'}; chiralc backend {a.backend or 'default'}; "
              f"load average {load[0]:.2f} at the start; {time.monotonic() - started:.0f} s in all.")
    md.append("Peak MB: the child process's maximum resident set. The chiralc inference process is stopped once it "
              "has printed its inference time, so its figure leaves out the training steps `bench` runs next.")
    for n in notes:
        md.append(f"Note: {n}.")
    text = "\n".join(md) + "\n"
    print(text)
    if a.out:
        tmp = a.out + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, a.out)
        log(f"bench: wrote {a.out}")
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
