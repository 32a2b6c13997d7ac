#!/usr/bin/python3
"""Dynamic Sparse Training (Liu et al., ICLR 2020) of LeNet-300-100 on Fashion-MNIST in PyTorch.

The PyTorch reference for dynsparse's C++ example `lenet_300_100`: the same recipe
(docs: /work/shared/docs/dst-spec.md), written the idiomatic PyTorch way, so accuracy,
remaining ratio, speed and memory can be compared.

  /usr/bin/python3 benchmarks/pytorch/dst_lenet.py [--epochs 20] [--dense] [--json PATH] ...

Masked linear layer: W (out x in), b (out), per-neuron threshold t (out).
  Q = |W| - t[:, None];  M = step(Q) (strict > 0; backward: a surrogate H(Q));
  if kept(M) <= 1% of M: t := 0, recompute M (the reset rule, counted);
  y = x (W*M)^T + b.
Loss = mean cross-entropy + alpha * sum over layers of sum(exp(-t)); SGD with momentum.

BLAS: Debian's torch does its float GEMMs (nn.Linear -> addmm) with the system OpenBLAS
0.3.21, which does not recognise recent Xeons and then runs its slow Prescott kernels. As the
C++ programs do, this script re-executes itself once with OPENBLAS_CORETYPE set to the best
kernel set for the CPU when OpenBLAS picked Prescott and OPENBLAS_CORETYPE is unset (set
OPENBLAS_CORETYPE yourself, e.g. to Prescott, to override). It also sets OpenBLAS's own
thread count: torch.set_num_threads does not reach OpenBLAS's pthread pool.
"""
import argparse
import gzip
import json
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from blas_kernels import openblas, restart_with_fast_blas_kernels  # noqa: E402

if __name__ == "__main__":
    restart_with_fast_blas_kernels()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"


# ----------------------------------------------------------------------------- data

def _read_idx(path):
    """An unsigned-byte IDX file (plain or .gz), read straight into a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        head = f.read(4)
        if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08 or head[3] == 0:
            raise ValueError(f"{path}: not an unsigned-byte IDX file")
        dims_raw = f.read(4 * head[3])
        dims = [int.from_bytes(dims_raw[4 * i:4 * i + 4], "big") for i in range(head[3])]
        data = np.empty(dims, dtype=np.uint8)
        got = f.readinto(memoryview(data.reshape(-1)))
        if got != data.size or f.read(1):
            raise ValueError(f"{path}: expected {data.size} bytes of data for shape {dims}")
    return data


def _find(directory, name):
    for candidate in (os.path.join(directory, name), os.path.join(directory, name + ".gz")):
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(f"{directory}: missing {name}[.gz]")


def load_fashion_mnist(directory):
    """Pixels scaled to [0,1], then standardised with the scalar mean and (population)
    standard deviation of all training pixels, as dynsparse::standardize does (two passes,
    double accumulators). Works in place, so the peak memory is about that of the C++ side."""
    def pair(prefix):
        x = _read_idx(_find(directory, f"{prefix}-images-idx3-ubyte"))
        y = _read_idx(_find(directory, f"{prefix}-labels-idx1-ubyte"))
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{directory}: {prefix}: {x.shape[0]} images but {y.shape[0]} labels")
        out = x.reshape(x.shape[0], -1).astype(np.float32)
        out *= np.float32(1.0 / 255.0)
        return out, y.astype(np.int64)

    xtr, ytr = pair("train")
    xte, yte = pair("t10k")
    chunks = range(0, xtr.shape[0], 4096)
    mean = sum(float(xtr[i:i + 4096].sum(dtype=np.float64)) for i in chunks) / xtr.size
    sq = sum(float(((xtr[i:i + 4096].astype(np.float64) - mean) ** 2).sum()) for i in chunks)
    std = (sq / xtr.size) ** 0.5
    mean32, inv = np.float32(mean), np.float32(1.0) / np.float32(std)
    for x in (xtr, xte):
        x -= mean32
        x *= inv
    return (torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte), torch.from_numpy(yte),
            mean, std)


# ----------------------------------------------------------------------------- DST layer

def _long_tailed(q):
    a = q.abs()
    return torch.where(a <= 0.4, 2.0 - 4.0 * a, 0.4 * (a <= 1.0).to(q.dtype))


def _ste(q):
    return (q.abs() <= 1.0).to(q.dtype)


def _sigmoid(q, k=4.0):
    s = torch.sigmoid(k * q)
    return k * s * (1.0 - s)


SURROGATES = {"long_tailed": _long_tailed, "ste": _ste, "sigmoid": _sigmoid}


class BinaryStep(torch.autograd.Function):
    """Forward: the exact step S(q) = 1 if q > 0 else 0. Backward: grad * H(q)."""

    @staticmethod
    def forward(ctx, q, surrogate):
        ctx.save_for_backward(q)
        ctx.surrogate = surrogate
        return (q > 0).to(q.dtype)

    @staticmethod
    def backward(ctx, grad):
        (q,) = ctx.saved_tensors
        return grad * SURROGATES[ctx.surrogate](q), None


class MaskedLinear(nn.Module):
    def __init__(self, fan_in, fan_out, surrogate="long_tailed", reset_rule=True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(fan_out, fan_in))
        self.bias = nn.Parameter(torch.empty(fan_out))
        self.threshold = nn.Parameter(torch.zeros(fan_out))
        bound = 1.0 / fan_in ** 0.5  # = nn.Linear's default initialisation
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)
        self.surrogate = surrogate
        self.reset_rule = reset_rule
        self.resets = 0
        self.kept = self.weight.numel()

    def _mask(self):
        q = self.weight.abs() - self.threshold[:, None]
        return BinaryStep.apply(q, self.surrogate)

    def forward(self, x):
        mask = self._mask()
        kept = int(torch.count_nonzero(mask.detach()))
        if self.reset_rule and kept * 100 <= mask.numel():
            with torch.no_grad():
                self.threshold.zero_()
            self.resets += 1
            mask = self._mask()
            kept = int(torch.count_nonzero(mask.detach()))
        self.kept = kept
        return F.linear(x, self.weight * mask, self.bias)

    def remaining(self):
        return self.kept / self.weight.numel()


def make_model(dense, surrogate, reset_rule):
    sizes = [784, 300, 100, 10]
    layers = []
    for i in range(3):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]) if dense
                      else MaskedLinear(sizes[i], sizes[i + 1], surrogate, reset_rule))
        if i < 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def masked_layers(model):
    """The DST layers of a model (any module with thresholds, e.g. dst_lenet5's convs)."""
    return [m for m in model if hasattr(m, "threshold")]


def regulariser(model, alpha):
    return alpha * sum(torch.exp(-m.threshold).sum() for m in masked_layers(model))


# ----------------------------------------------------------------------------- training

def evaluate(model, x, y, batch=1000):
    """Mean cross-entropy and accuracy (%); the masked layers' forward (and reset rule) runs
    as in training, as in the C++ trainer."""
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for first in range(0, x.shape[0], batch):
            out = model(x[first:first + batch])
            target = y[first:first + batch]
            loss_sum += float(F.cross_entropy(out, target, reduction="sum"))
            correct += int((out.argmax(1) == target).sum())
    return loss_sum / x.shape[0], 100.0 * correct / x.shape[0]


def model_remaining(model):
    layers = masked_layers(model)
    if not layers:
        return 1.0, [1.0] * sum(1 for m in model if hasattr(m, "weight"))
    kept = sum(m.kept for m in layers)
    total = sum(m.weight.numel() for m in layers)
    return kept / total, [m.remaining() for m in layers]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=DEFAULT_DATA, help="directory of the IDX (.gz) files")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--alpha", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch and OpenBLAS threads")
    p.add_argument("--dense", action="store_true", help="plain nn.Linear layers, no regulariser")
    p.add_argument("--surrogate", choices=sorted(SURROGATES), default="long_tailed")
    p.add_argument("--no-reset", action="store_true", help="switch off the 1%% reset rule")
    p.add_argument("--max-steps", type=int, default=0, help="stop each epoch after N steps (0: all)")
    p.add_argument("--json", default="", help="write a summary of the run as JSON")
    p.add_argument("--quiet", action="store_true", help="no per-layer lines")
    a = p.parse_args(argv)
    if a.epochs <= 0 or a.batch <= 0 or a.threads <= 0 or a.max_steps < 0:
        p.error("--epochs, --batch and --threads must be positive, --max-steps non-negative")
    return a


def main(argv=None):
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    blas = openblas()
    blas_core = "unknown"
    if blas is not None:
        blas.openblas_set_num_threads(a.threads)  # torch.set_num_threads does not reach it
        blas_core = blas.openblas_get_corename().decode()
    print(f"torch {torch.__version__}, OpenBLAS kernels {blas_core}, {a.threads} thread(s)", flush=True)

    try:
        xtr, ytr, xte, yte, mean, std = load_fashion_mnist(a.data)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"loaded {a.data}: {xtr.shape[0]} train, {xte.shape[0]} test, "
          f"standardised with mean {mean:.4f} std {std:.4f}", flush=True)

    torch.manual_seed(a.seed)
    model = make_model(a.dense, a.surrogate, not a.no_reset)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum, weight_decay=0.0)
    alpha = 0.0 if a.dense else a.alpha
    shuffle = torch.Generator().manual_seed(a.seed)
    desc = "dense baseline" if a.dense else f"DST, {a.surrogate}, per-neuron thresholds, alpha {alpha:g}"
    print(f"LeNet-300-100, {desc}; SGD lr {a.lr:g} momentum {a.momentum:g}, batch {a.batch}", flush=True)

    n = xtr.shape[0]
    steps = (n + a.batch - 1) // a.batch
    if a.max_steps:
        steps = min(steps, a.max_steps)
    history = []
    test_loss = acc = 0.0
    for epoch in range(1, a.epochs + 1):
        model.train()
        resets_before = sum(m.resets for m in masked_layers(model))
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=shuffle)
        loss_sum = 0.0
        for s in range(steps):
            idx = order[s * a.batch:(s + 1) * a.batch]  # the last partial batch is kept
            x, y = xtr[idx], ytr[idx]
            out = model(x)
            ce = F.cross_entropy(out, y)
            loss = ce + regulariser(model, alpha) if alpha else ce
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(ce)
        seconds = time.perf_counter() - t0
        train_loss = loss_sum / steps
        model.eval()
        test_loss, acc = evaluate(model, xte, yte)
        remaining, per_layer = model_remaining(model)
        resets = sum(m.resets for m in masked_layers(model)) - resets_before
        reg = float(regulariser(model, alpha)) if alpha else 0.0
        history.append(dict(seconds=seconds, train_loss=train_loss, acc=acc, remaining=remaining))
        print(f"epoch {epoch:2d}/{a.epochs}  train loss {train_loss:.4f}  reg {reg:.4f}  "
              f"test loss {test_loss:.4f}  acc {acc:6.2f}%  remaining {100 * remaining:6.2f}%  "
              f"resets {resets}  train {seconds:.2f} s", flush=True)
        if not a.quiet and not a.dense:
            print("           per layer: " + "  ".join(
                f"[{i}] {100 * r:6.2f}%" for i, r in enumerate(per_layer)), flush=True)

    remaining, per_layer = model_remaining(model)
    epoch_seconds = [h["seconds"] for h in history]
    per_epoch = statistics.median(epoch_seconds)
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"\n== final ==\ntest accuracy    {acc:.2f}%\nremaining ratio  {100 * remaining:.2f}%  "
          f"per layer {', '.join(f'{100 * r:.2f}%' for r in per_layer)}\n"
          f"time             {per_epoch:.3f} s per training epoch (median of {len(epoch_seconds)}"
          f"{f', {steps} steps each' if a.max_steps else ''})\n"
          f"peak RSS         {peak_rss_mib:.1f} MiB", flush=True)
    if a.json:
        summary = dict(
            model="lenet_300_100", framework="pytorch", dense=a.dense,
            surrogate="none" if a.dense else a.surrogate,
            test_accuracy=acc, test_loss=test_loss,
            remaining_ratio=remaining, layer_remaining=per_layer,
            epochs=len(history), seconds_per_epoch=per_epoch, epoch_seconds=epoch_seconds,
            epoch_eval_accuracy=[h["acc"] for h in history],
            epoch_remaining=[h["remaining"] for h in history],
            epoch_train_loss=[h["train_loss"] for h in history],
            steps_per_epoch=steps, max_steps=a.max_steps,
            resets=sum(m.resets for m in masked_layers(model)),
            batch=a.batch, lr=a.lr, momentum=a.momentum, alpha=alpha, seed=a.seed,
            peak_rss_mib=peak_rss_mib, torch_version=torch.__version__, threads=a.threads,
            blas_core=blas_core, openblas_coretype_env=os.environ.get("OPENBLAS_CORETYPE", ""),
        )
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
        os.replace(tmp, a.json)
        print(f"summary          {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
