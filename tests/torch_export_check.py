#!/usr/bin/env python3
"""Loads a chiralc dense export into stock PyTorch layers and checks it.

    torch_export_check.py check DENSE.safetensors --in X.npy --out Y.npy [--tol 1e-5]
        builds the network of the file's graph (metadata "graph") from nn.Conv1d,
        nn.Linear, nn.BatchNorm1d, nn.LSTM, nn.GRU and tensor ops, loads the weights
        by name with load_state_dict(strict=True), runs it in eval mode on X and
        compares with Y (the program's `predict` output): max abs error relative to
        max(1, max |Y|) < tol. Then mirrors X with the input's partner/sign arrays and
        checks that the output is the mirrored output (same tolerance).
    torch_export_check.py data INFO.txt TRAIN.npz X.npy [--n N] [--seed S]
        random training data and inputs shaped as the program's `info` prints them
        (for tests/run_torch_export.sh).

Exit status: 0 pass, 1 fail, 2 bad usage, 77 skipped (torch, numpy or safetensors
missing), the code ctest's SKIP_RETURN_CODE expects.
"""
import argparse
import json
import re
import sys

SKIP = 77


def need_modules(torch_too=True):
    try:
        import numpy  # noqa: F401
        import safetensors  # noqa: F401
        if torch_too:
            import torch  # noqa: F401
    except ImportError as e:
        print(f"torch_export_check: skipped: {e}")
        sys.exit(SKIP)


# ---- the network ----------------------------------------------------------------------------


def build_net(graph):
    import torch
    from torch import nn
    import torch.nn.functional as F

    acts = {
        "relu": lambda x, s: F.relu(x),
        "leaky_relu": lambda x, s: F.leaky_relu(x, s),
        "elu": lambda x, s: F.elu(x),
        "gelu": lambda x, s: F.gelu(x),
        "sigmoid": lambda x, s: torch.sigmoid(x),
        "tanh": lambda x, s: torch.tanh(x),
        "softsign": lambda x, s: F.softsign(x),
        "hardtanh": lambda x, s: F.hardtanh(x),
    }

    class Net(nn.Module):
        """One stock module per layer, registered under the node's name (n<id>), so that
        the state_dict keys are the export's names."""

        def __init__(self):
            super().__init__()
            self.nodes = graph["nodes"]
            for n in self.nodes:
                op, name = n["op"], n["name"]
                if op in ("linear", "invariant"):
                    self.add_module(name, nn.Linear(n["in"], n["out"], bias=n["bias"]))
                elif op == "conv1d":
                    self.add_module(name, nn.Conv1d(n["in"], n["out"], n["kernel"], stride=n["stride"],
                                                    padding=n["padding"], dilation=n["dilation"], bias=n["bias"]))
                elif op == "batchnorm":
                    self.add_module(name, nn.BatchNorm1d(n["features"], eps=n["eps"], momentum=n["momentum"]))
                elif op in ("lstm", "gru"):
                    cls = nn.LSTM if op == "lstm" else nn.GRU
                    self.add_module(name, cls(n["in"], n["hidden"], num_layers=n["layers"], batch_first=True,
                                              dropout=n["p"] if n["layers"] > 1 else 0.0))
            for n in self.nodes:
                if n["op"] == "act" and "act_neg" in n:
                    self.register_buffer("mask_" + n["name"], torch.tensor(n["neg_mask"], dtype=torch.bool),
                                         persistent=False)

        def forward(self, *inputs):
            v, final, outs = {}, {}, {}
            for n in self.nodes:
                op, name = n["op"], n["name"]
                x = v[n["inputs"][0]] if n["inputs"] else None
                if op == "input":
                    y = inputs[n["io"]]
                elif op == "output":
                    outs[n["io"]] = x
                    y = x
                elif op in ("linear", "invariant"):
                    y = getattr(self, name)(x)
                elif op == "conv1d":
                    y = getattr(self, name)(x.transpose(1, 2)).transpose(1, 2)
                elif op == "batchnorm":
                    m = getattr(self, name)
                    y = m(x.transpose(1, 2)).transpose(1, 2) if x.dim() == 3 else m(x)
                elif op == "dropout":
                    y = F.dropout(x, n["p"], self.training)
                elif op == "act":
                    y = acts[n["act"]](x, n["slope"])
                    if "act_neg" in n:
                        y = torch.where(getattr(self, "mask_" + name), acts[n["act_neg"]](x, n["slope"]), y)
                elif op == "add":
                    y = x + v[n["inputs"][1]]
                elif op == "sub":
                    y = x - v[n["inputs"][1]]
                elif op == "concat":
                    y = torch.cat([v[i] for i in n["inputs"]], dim=-1)
                elif op == "crop":
                    c = n["crop"]
                    y = x[:, c:x.shape[1] - c:n.get("stride", 1)]
                elif op == "meanpool":
                    y = x.mean(dim=1)
                elif op == "last":
                    y = x[:, -1]
                elif op == "repeat":
                    y = x.unsqueeze(1).repeat(1, n["frames_out"], 1)
                elif op == "flatten":
                    y = x.reshape(x.shape[0], -1)
                elif op == "softmax":
                    y = torch.softmax(x, dim=-1)
                elif op in ("lstm", "gru"):
                    init = final[n["init"]] if n["init"] else None
                    y, final[name] = getattr(self, name)(x, init)
                else:
                    raise SystemExit(f"torch_export_check: op {op} ({name}) is not known")
                v[name] = y
            return [outs[i] for i in range(len(outs))]

    return Net()


def mirror(x, io):
    """(T x)_f = sign[f] x[partner[f]] on the last axis; the identity for a trivial type."""
    import torch
    if io["partner"] is None:
        return x
    p = torch.tensor(io["partner"], dtype=torch.long)
    s = torch.tensor(io["sign"], dtype=x.dtype)
    return x[..., p] * s


def as_model(a, io):
    """[N, frames?, joints, coords] or [N, frames?, features] -> [N, frames?, features]."""
    n = a.shape[0]
    return a.reshape((n, io["frames"], io["features"]) if io["frames"] else (n, io["features"]))


def max_rel(a, b):
    import torch
    return (torch.max(torch.abs(a - b)) / max(1.0, float(torch.max(torch.abs(b))))).item()


def cmd_check(args):
    need_modules()
    import numpy as np
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(args.dense, framework="pt") as f:
        meta = f.metadata() or {}
    if "graph" not in meta:
        print(f"{args.dense}: no 'graph' in the metadata: not a chiralc dense export")
        return 1
    graph = json.loads(meta["graph"])
    net = build_net(graph)
    weights = load_file(args.dense)
    net.load_state_dict(weights, strict=True)  # every name and shape must match the stock modules
    net = net.double().eval()
    if len(graph["inputs"]) != 1 or len(graph["outputs"]) != 1:
        print("torch_export_check: only models with one input and one output are checked")
        return 1
    ii, oi = graph["inputs"][0], graph["outputs"][0]
    x = torch.from_numpy(as_model(np.load(args.inp), ii).astype(np.float64))
    ok = True
    with torch.no_grad():
        y = net(x)[0]
        if args.out:
            want = torch.from_numpy(as_model(np.load(args.out), oi).astype(np.float64))
            if tuple(want.shape) != tuple(y.shape):
                print(f"{args.out}: shape {tuple(want.shape)}, the PyTorch network gives {tuple(y.shape)}")
                return 1
            err = max_rel(y, want)
            good = err < args.tol
            ok &= good
            print(f"{graph['model']}: PyTorch vs predict: max error {err:.3e} (relative to max(1, |y|)) "
                  f"{'ok' if good else 'FAILED'}")
        ym = net(mirror(x, ii))[0]
        err = max_rel(ym, mirror(y, oi))
        good = err < args.tol
        ok &= good
        print(f"{graph['model']}: equivariance of the PyTorch network: max error {err:.3e} "
              f"{'ok' if good else 'FAILED'}")
    n_params = sum(t.numel() for k, t in weights.items() if not k.endswith("num_batches_tracked"))
    print(f"{graph['model']}: {len(weights)} tensors, {n_params} dense weights, loaded with strict=True")
    return 0 if ok else 1


# ---- random data for the wrapper --------------------------------------------------------------

IO_LINE = re.compile(r"^\s+(\S+)\s+\[N((?:, \d+)*)\]\s+(int64 labels|float32)")


def cmd_data(args):
    need_modules(torch_too=False)  # torch takes seconds to import: the check needs it, not this
    import numpy as np
    section, ins, outs = None, [], []
    with open(args.info) as f:
        for line in f:
            if line.startswith("inputs:"):
                section = ins
            elif line.startswith("outputs:"):
                section = outs
            elif not line.startswith(" "):
                section = None
            m = IO_LINE.match(line)
            if m and section is not None:
                dims = [int(d) for d in m.group(2).split(", ")[1:]]
                section.append((m.group(1), dims, m.group(3) == "int64 labels"))
    if len(ins) != 1 or len(outs) != 1:
        print(f"{args.info}: expected one input and one output, found {len(ins)} and {len(outs)}")
        return 1
    rng = np.random.default_rng(args.seed)
    (xn, xd, _), (yn, yd, cls) = ins[0], outs[0]
    arrays = {xn: rng.standard_normal([args.n] + xd).astype(np.float32)}
    if cls:  # labels [N] or [N, frames]; the last extent is the class count
        arrays[yn] = rng.integers(0, yd[-1], size=[args.n] + yd[:-1]).astype(np.int64)
    else:
        arrays[yn] = rng.standard_normal([args.n] + yd).astype(np.float32)
    np.savez(args.train, **arrays)
    np.save(args.x, rng.standard_normal([max(1, args.n // 4)] + xd).astype(np.float32))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("dense")
    c.add_argument("--in", dest="inp", required=True)
    c.add_argument("--out")
    c.add_argument("--tol", type=float, default=1e-5)
    d = sub.add_parser("data")
    d.add_argument("info")
    d.add_argument("train")
    d.add_argument("x")
    d.add_argument("--n", type=int, default=32)
    d.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    sys.exit(cmd_check(args) if args.cmd == "check" else cmd_data(args))


if __name__ == "__main__":
    main()
