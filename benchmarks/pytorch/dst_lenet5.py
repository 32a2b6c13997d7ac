#!/usr/bin/python3
"""Dynamic Sparse Training (Liu et al., ICLR 2020) of LeNet-5-Caffe on Fashion-MNIST in PyTorch.

The PyTorch reference for dynsparse's `lenet5_caffe` example and `lenet5_caffe_step`
benchmark: the same recipe (docs: /work/shared/docs/dst-spec.md) and the same network,

  conv 20@5x5 -> relu -> maxpool 2 -> conv 50@5x5 -> relu -> maxpool 2 -> flatten
  -> FC 800-500 -> relu -> FC 500-10,       every layer masked,

with per-filter thresholds on the convolutions and per-neuron thresholds on the dense
layers. A masked convolution views its kernel (c_out, c_in, k, k) as c_out x (c_in*k*k):
  Q = |W| - t[:, None, None, None];  M = step(Q) (strict > 0; backward: surrogate H(Q),
  a custom autograd Function shared with dst_lenet.py); reset rule as in dst_lenet.py;
  y = conv2d(x, W*M) + b.
Loss = mean cross-entropy + alpha * sum over layers of sum(exp(-t)); SGD with momentum.

  /usr/bin/python3 benchmarks/pytorch/dst_lenet5.py [--epochs 20] [--dense] [--json PATH]
  /usr/bin/python3 benchmarks/pytorch/dst_lenet5.py --time-steps 300     # ms per step only

`--time-steps N` times N training steps at the given batch (64) after 10 warm-up steps
and prints the median milliseconds per step (forward, loss, backward, optimizer step),
the figure `lenet5_caffe_step` is compared with.

Like dst_lenet.py, the script re-executes itself once with OPENBLAS_CORETYPE set when
OpenBLAS picked its slow Prescott kernels (see that file and README.md).
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from blas_kernels import openblas, restart_with_fast_blas_kernels  # noqa: E402

if __name__ == "__main__":
    restart_with_fast_blas_kernels(prefer_avx512=True)  # measured faster for LeNet-5 on Zen 5 (docs/benchmarks.md)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import dst_lenet as ref  # noqa: E402  (data loading, BinaryStep, MaskedLinear, surrogates)


class MaskedConv2d(nn.Module):
    """A DST masked convolution with one threshold per output channel (per filter);
    stride, padding and bias as nn.Conv2d's (dst_cifar.py uses them)."""

    def __init__(self, c_in, c_out, k, surrogate="long_tailed", reset_rule=True, stride=1, padding=0,
                 bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c_out, c_in, k, k))
        self.bias = nn.Parameter(torch.empty(c_out)) if bias else None
        self.threshold = nn.Parameter(torch.zeros(c_out))
        self.stride, self.padding = stride, padding
        bound = 1.0 / (c_in * k * k) ** 0.5  # nn.Conv2d's default initialisation
        nn.init.uniform_(self.weight, -bound, bound)
        if bias:
            nn.init.uniform_(self.bias, -bound, bound)
        self.surrogate = surrogate
        self.reset_rule = reset_rule
        self.resets = 0
        self.kept = self.weight.numel()

    def _mask(self):
        q = self.weight.abs() - self.threshold[:, None, None, None]
        return ref.BinaryStep.apply(q, self.surrogate)

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
        return F.conv2d(x, self.weight * mask, self.bias, self.stride, self.padding)

    def remaining(self):
        return self.kept / self.weight.numel()


def make_model(dense, surrogate, reset_rule):
    if dense:
        conv1, conv2 = nn.Conv2d(1, 20, 5), nn.Conv2d(20, 50, 5)
        fc1, fc2 = nn.Linear(800, 500), nn.Linear(500, 10)
    else:
        conv1 = MaskedConv2d(1, 20, 5, surrogate, reset_rule)
        conv2 = MaskedConv2d(20, 50, 5, surrogate, reset_rule)
        fc1 = ref.MaskedLinear(800, 500, surrogate, reset_rule)
        fc2 = ref.MaskedLinear(500, 10, surrogate, reset_rule)
    return nn.Sequential(conv1, nn.ReLU(), nn.MaxPool2d(2), conv2, nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), fc1, nn.ReLU(), fc2)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=ref.DEFAULT_DATA)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--alpha", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch and OpenBLAS threads")
    p.add_argument("--dense", action="store_true", help="plain Conv2d/Linear layers, no regulariser")
    p.add_argument("--surrogate", choices=sorted(ref.SURROGATES), default="long_tailed")
    p.add_argument("--no-reset", action="store_true")
    p.add_argument("--time-steps", type=int, default=0,
                   help="only time N training steps and print the median ms per step")
    p.add_argument("--json", default="")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    if a.epochs <= 0 or a.batch <= 0 or a.threads <= 0 or a.time_steps < 0:
        p.error("--epochs, --batch and --threads must be positive")
    return a


def write_json(path, summary):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def main(argv=None):
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    blas = openblas()
    blas_core = "unknown"
    if blas is not None:
        blas.openblas_set_num_threads(a.threads)
        blas_core = blas.openblas_get_corename().decode()
    print(f"torch {torch.__version__}, OpenBLAS kernels {blas_core}, {a.threads} thread(s), "
          f"mkldnn {torch.backends.mkldnn.is_available()}", flush=True)
    xtr, ytr, xte, yte, mean, std = ref.load_fashion_mnist(a.data)
    xtr, xte = xtr.view(-1, 1, 28, 28), xte.view(-1, 1, 28, 28)

    torch.manual_seed(a.seed)
    model = make_model(a.dense, a.surrogate, not a.no_reset)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum, weight_decay=0.0)
    alpha = 0.0 if a.dense else a.alpha
    shuffle = torch.Generator().manual_seed(a.seed)
    desc = "dense baseline" if a.dense else f"DST, {a.surrogate}, per-filter/per-neuron, alpha {alpha:g}"
    print(f"LeNet-5-Caffe, {desc}; SGD lr {a.lr:g} momentum {a.momentum:g}, batch {a.batch}", flush=True)

    def step(x, y):
        out = model(x)
        ce = F.cross_entropy(out, y)
        loss = ce + ref.regulariser(model, alpha) if alpha else ce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(ce)

    n = xtr.shape[0]
    if a.time_steps:
        order = torch.randperm(n, generator=shuffle)
        times, cpu_times = [], []
        for s in range(a.time_steps + 10):
            first = (s * a.batch) % (n - a.batch)
            idx = order[first:first + a.batch]
            x, y = xtr[idx], ytr[idx]
            c0 = time.process_time()  # CPU time of the process: robust to other jobs
            t0 = time.perf_counter()
            step(x, y)
            if s >= 10:
                times.append(1e3 * (time.perf_counter() - t0))
                cpu_times.append(1e3 * (time.process_time() - c0))
        med, cpu_med = statistics.median(times), statistics.median(cpu_times)
        print(f"median CPU ms/step over {a.time_steps} steps: {cpu_med:.3f}")
        print(f"median ms/step over {a.time_steps} steps: {med:.3f}  (mean {statistics.mean(times):.3f})")
        if a.json:
            write_json(a.json, dict(model="lenet5_caffe", framework="pytorch", dense=a.dense,
                                    ms_per_step=med, cpu_ms_per_step=cpu_med, steps=a.time_steps, batch=a.batch,
                                    threads=a.threads, blas_core=blas_core,
                                    torch_version=torch.__version__))
        return 0

    steps = (n + a.batch - 1) // a.batch
    history = []
    test_loss = acc = 0.0
    for epoch in range(1, a.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=shuffle)
        loss_sum = 0.0
        for s in range(steps):
            idx = order[s * a.batch:(s + 1) * a.batch]
            loss_sum += step(xtr[idx], ytr[idx])
        seconds = time.perf_counter() - t0
        model.eval()
        test_loss, acc = ref.evaluate(model, xte, yte)
        remaining, per_layer = ref.model_remaining(model)
        history.append(dict(seconds=seconds, acc=acc, remaining=remaining))
        print(f"epoch {epoch:2d}/{a.epochs}  train loss {loss_sum / steps:.4f}  test loss {test_loss:.4f}  "
              f"acc {acc:6.2f}%  remaining {100 * remaining:6.2f}%  train {seconds:.2f} s", flush=True)
        if not a.quiet and not a.dense:
            print("           per layer: " + "  ".join(
                f"[{i}] {100 * r:6.2f}%" for i, r in enumerate(per_layer)), flush=True)
    remaining, per_layer = ref.model_remaining(model)
    per_epoch = statistics.median(h["seconds"] for h in history)
    print(f"\n== final ==\ntest accuracy    {acc:.2f}%\nremaining ratio  {100 * remaining:.2f}%\n"
          f"time             {per_epoch:.3f} s per training epoch", flush=True)
    if a.json:
        write_json(a.json, dict(
            model="lenet5_caffe", framework="pytorch", dense=a.dense, test_accuracy=acc,
            test_loss=test_loss, remaining_ratio=remaining, layer_remaining=per_layer,
            epochs=len(history), seconds_per_epoch=per_epoch,
            epoch_eval_accuracy=[h["acc"] for h in history],
            epoch_remaining=[h["remaining"] for h in history],
            resets=sum(m.resets for m in ref.masked_layers(model)), batch=a.batch, lr=a.lr,
            momentum=a.momentum, alpha=alpha, seed=a.seed, threads=a.threads,
            blas_core=blas_core, torch_version=torch.__version__))
    return 0


if __name__ == "__main__":
    sys.exit(main())
