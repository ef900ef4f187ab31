#!/usr/bin/env python3
"""bench/gpu_run.py: the GPU benchmark of issue 5, side by side in one run.

    python3 bench/gpu_run.py --build build [--python python3] [--out gpu.md] [--quick] [--no-compile]

VideoPose3D (243-frame receptive field, width 1024 written / 1020 chiral), batch 1024, float32:
- a training step (forward, loss, backward, Adam) of the strided one-frame training form,
  bench/videopose3d_strided.net;
- inference of examples/videopose3d.net (the dilated form) on 243-frame windows, one output
  frame each.
Variants: chiralc `--target cuda` folded, --no-fold and --baseline (timed by the program's own
`bench`, to the device's completion of every batch); PyTorch eager and torch.compile of the
baseline and of the chiral network written like the paper's reference code (dense weights
rebuilt from tied blocks every call; bench/torch_bench.py --device cuda, TF32 off); cuBLAS
sgemm on the folded network's GEMM shapes (bench/cublas_sgemm.cu), the GPU's practical limit
for that arithmetic. The variants take turns, round after round; each figure is the median
of its rounds' medians. Exit status 0 whether the goals hold or not (non-zero only when the
benchmark itself fails).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import run as cpu  # noqa: E402: the CPU benchmark's helpers (kernel IR shapes, children, tables)

BATCH = 1024
VARIANTS = ("folded", "no-fold", "baseline")
GOAL_VS_EAGER_CHIRAL = 2.0  # issue 5: at least 2x PyTorch eager on the chiral network,
# and faster than torch.compile of the baseline


def times(x):
    """'2.60x', or 'n/a' without a figure."""
    return "n/a" if x is None else f"{x:.2f}x"


def build_programs(cc, work, jobs, sets):
    """chiralc build --target cuda of every (mode, variant), several nvcc at a time."""
    nets = {"train": (os.path.join(HERE, "videopose3d_strided.net"), {**sets}),
            "infer": (os.path.join(ROOT, "examples", "videopose3d.net"), {**sets, "frames": 3 ** (sets["blocks"] + 1)})}

    def one(key):
        mode, variant = key
        net, s = nets[mode]
        prog = os.path.join(work, f"{mode}-{variant}")
        cmd = [cc.exe, "build", "--target", "cuda", net, *cc.sets(s), "-O2", "-o", prog] + (
            [] if variant == "folded" else ["--" + variant])
        r = subprocess.run(cmd, capture_output=True, text=True)
        return key, (prog if r.returncode == 0 else None), cpu.last_error(r.stderr) if r.returncode else None

    keys = [(m, v) for m in nets for v in VARIANTS]
    with ThreadPoolExecutor(max_workers=jobs) as ex:
        results = list(ex.map(one, keys))
    return {k: (p, e) for k, p, e in results}, nets


def build_cublas(build, work):
    """BUILD/bench_cublas_sgemm, or bench/cublas_sgemm.cu compiled here (nvcc: CHIRALC_NVCC or PATH)."""
    built = os.path.join(build, "bench_cublas_sgemm")
    if os.access(built, os.X_OK):
        return built, None
    exe = os.path.join(work, "cublas_sgemm")
    nvcc = os.environ.get("CHIRALC_NVCC") or "nvcc"
    r = subprocess.run([nvcc, "-O2", "-std=c++17", "-o", exe, os.path.join(HERE, "cublas_sgemm.cu"), "-lcublas"],
                       capture_output=True, text=True)
    return (exe, None) if r.returncode == 0 else (None, f"nvcc cublas_sgemm.cu failed: {cpu.last_error(r.stderr)}")


def timed(prog, key, steps):
    """One round of a chiralc program (its own `bench`): {"s": seconds} or {"error": ...}."""
    r = cpu.chiralc_bench(prog, BATCH, steps, False)
    return {"s": r[key]} if key in r else {"error": r.get("error", f"no {key} in the program's output")}


def torch_run(python, net, mode, blocks, width, steps, compile_):
    form = "strided" if mode == "train" else "dilated"
    cmd = [python, os.path.join(HERE, "torch_bench.py"), "--device", "cuda", "--net", net, "--mode", mode, "--form",
           form, "--blocks", str(blocks), "--width", str(width), "--frames", str(3 ** (blocks + 1)), "--batch",
           str(BATCH), "--steps", str(steps), "--warmup", "3" if compile_ else "2"] + (["--compile"] if compile_ else [])
    rc, out, err, _ = cpu.run_child(cmd)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if rc != 0 or not lines:
        return {"error": f"exit {rc}: {cpu.last_error(err or out)}"}
    r = json.loads(lines[-1])
    if "seconds" in r:
        r["s"] = r["seconds"]
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="chiralc's build directory (default: build)")
    ap.add_argument("--chiralc", help="the chiralc executable (default: BUILD/chiralc)")
    ap.add_argument("--python", default=sys.executable, help="Python with torch (default: this one)")
    ap.add_argument("--out", help="write the tables as markdown to this file")
    ap.add_argument("--work", help="directory for the built programs (default: a temporary one)")
    ap.add_argument("--quick", action="store_true", help="2 blocks, 1 round, no torch.compile")
    ap.add_argument("--rounds", type=int, help="rounds, the variants taking turns (default 3; --quick 1)")
    ap.add_argument("--steps", type=int, default=10, help="timed batches per measurement (median; default 10)")
    ap.add_argument("--no-compile", dest="compile", action="store_false", default=None)
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    ap.add_argument("--jobs", type=int, default=6, help="nvcc builds at a time (default 6)")
    a = ap.parse_args()
    blocks = 2 if a.quick else 4
    rounds = a.rounds or (1 if a.quick else 3)
    do_compile = (not a.quick) if a.compile is None else a.compile
    sets = {"blocks": blocks, "width": 1024}
    work = a.work or tempfile.mkdtemp(prefix="chiralc-gpubench-")
    os.makedirs(work, exist_ok=True)
    cc = cpu.Chiralc(a.build, work, None, exe=a.chiralc)

    cpu.log("gpu_run: building the CUDA programs and cublas_sgemm")
    progs, nets = build_programs(cc, work, a.jobs, sets)
    sg_exe, sg_err = build_cublas(a.build, work)
    runs = {}  # (mode, name) -> callable
    for (mode, variant), (prog, err) in progs.items():
        key = "infer_s" if mode == "infer" else "train_s"
        runs[(mode, f"chiralc {variant}")] = ((lambda prog=prog, key=key: timed(prog, key, a.steps)) if prog else
                                              (lambda err=err: {"error": err}))
    if not a.no_torch:
        for mode in ("train", "infer"):
            for net in ("chiral", "baseline"):
                for comp in (False, True) if do_compile else (False,):
                    name = f"PyTorch {'torch.compile' if comp else 'eager'} {net}"
                    runs[(mode, name)] = (lambda mode=mode, net=net, comp=comp:
                                          torch_run(a.python, net, mode, blocks, 1024, a.steps, comp))
    # the cuBLAS limit on the folded programs' GEMM shapes, every round too
    shapes, macs = {}, {}
    fns = {"train": {"forward_train", "backward_train"}, "infer": {"forward_infer"}}
    for mode, (net, s) in nets.items():
        kir = cc.kir(net, s)
        shapes[mode] = cpu.gemm_shapes(kir, fns[mode], BATCH, merge=True)
        macs[mode] = cpu.macs_of(cpu.gemm_shapes(kir, fns[mode], BATCH))
    per = {k: [] for k in runs}
    sg = {m: [] for m in shapes}
    for r in range(rounds):
        for k, f in runs.items():
            res = f()
            per[k].append(res)
            cpu.log(f"  round {r + 1}, {k[0]}, {k[1]}: {cpu.fmt(res.get('s'), '.5f')} s {res.get('error', '')}")
        for mode in shapes:
            if sg_exe:
                sg[mode].append(cpu.sgemm_rate(sg_exe, shapes[mode], 0.1))
    res = {}
    for k, lst in per.items():
        ok = [x for x in lst if "s" in x]
        res[k] = {**ok[-1], "s": statistics.median(x["s"] for x in ok), "rounds": [x["s"] for x in ok]} if ok else lst[-1]
    limit = {m: cpu.median_run(v) if v else {"error": sg_err} for m, v in sg.items()}
    dev = re.search(r"^device (.*)", limit["train"].get("raw", ""), re.M)

    md = [f"GPU benchmark on {dev.group(1) if dev else 'the GPU'}: VideoPose3D, {3 ** (blocks + 1)}-frame field, "
          f"width 1024 (1020 chiral), batch {BATCH}, float32 (TF32 off), medians of {rounds} rounds of "
          f"{a.steps} batches", ""]
    for mode, title in (("train", "Training step (strided form: forward, loss, backward, Adam)"),
                        ("infer", "Inference (dilated form, one output frame per window)")):
        t_ch = res.get((mode, "PyTorch eager chiral"), {}).get("s")
        t_cb = res.get((mode, "PyTorch torch.compile baseline"), {}).get("s")
        rows = []
        for (m, name), r in res.items():
            if m != mode:
                continue
            t = r.get("s")
            rows.append([name, cpu.fmt(t and 1e3 * t, ".2f") if t else f"n/a ({r.get('error', '?')})",
                         cpu.fmt(t and BATCH / t, ",.0f"), cpu.fmt(cpu.ratio(t, t_ch), ".2f"),
                         cpu.fmt(cpu.ratio(t, t_cb), ".2f"),
                         cpu.fmt(r.get("gpu_peak_mb"), ",.0f") if "gpu_peak_mb" in r else "-"])
        md += [f"**{title}**", "", cpu.table(["variant", "ms / batch", "samples/s", "x PyTorch eager chiral",
                                              "x torch.compile baseline", "GPU peak MB"], rows), ""]
        t_f = res.get((mode, "chiralc folded"), {}).get("s")
        lim = limit[mode]
        if t_f and "gflops" in lim:
            achieved = 2 * macs[mode] / t_f / 1e9
            md.append(f"- cuBLAS limit: {macs[mode] / 1e9:.1f} G useful multiply-adds (the folded GEMMs) in "
                      f"{1e3 * t_f:.2f} ms: {achieved:,.0f} GFLOP/s; cuBLAS sgemm on the same shapes "
                      f"{lim['gflops']:,.0f} GFLOP/s ({1e3 * lim['seconds']:.2f} ms); fraction "
                      f"{100 * achieved / lim['gflops']:.0f}%")
        else:
            md.append(f"- cuBLAS limit: n/a ({lim.get('error', 'no chiralc time')})")
        t_nf = res.get((mode, "chiralc no-fold"), {}).get("s")
        md.append(f"- folded vs `--no-fold`: {times(cpu.ratio(t_f, t_nf))}")
        v_ch, v_cb = cpu.ratio(t_f, t_ch), cpu.ratio(t_f, t_cb)
        md.append(f"- goals: {times(v_ch)} PyTorch eager chiral (>= {GOAL_VS_EAGER_CHIRAL}: "
                  f"{'holds' if v_ch and v_ch >= GOAL_VS_EAGER_CHIRAL else 'fails' if v_ch else 'n/a'}); "
                  f"{times(v_cb)} torch.compile baseline (> 1: "
                  f"{'holds' if v_cb and v_cb > 1 else 'fails' if v_cb else 'n/a'})")
        md.append("")
    text = "\n".join(md)
    print(text)
    if a.out:  # whole or not at all
        with open(a.out + ".tmp", "w") as f:
            f.write(text + "\n")
        os.replace(a.out + ".tmp", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
