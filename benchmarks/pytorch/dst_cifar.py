#!/usr/bin/python3
"""DST training step of the CIFAR-10 models (VGG-16, WideResNet-16-8) in PyTorch.

The PyTorch reference for dynsparse's `cifar_step` benchmark: the same networks as
include/dynsparse/models/ (docs: /work/shared/docs/dst-spec.md), masked the same way, with
the masked-layer helpers of dst_lenet.py (BinaryStep, MaskedLinear) and dst_lenet5.py
(MaskedConv2d, here with stride, padding and no bias):

  VGG-16:   13 x (masked conv 3x3 pad 1 no bias, BatchNorm2d, ReLU), max pools after convs
            2, 4, 7, 10, AvgPool2d(2), masked FC 512-512, BatchNorm1d, ReLU, masked FC 512-10
  WRN-16-8: masked conv 3x3 16, 3 groups x 2 pre-activation basic blocks (128, 256, 512
            channels, strides 1, 2, 2; masked 1x1 shortcut in each group's first block),
            BatchNorm2d, ReLU, global average pool, masked FC 512-10

One step: forward, cross-entropy + alpha * sum exp(-t), zero_grad, backward, SGD (lr 0.1,
momentum 0.9, weight decay 1e-4 on every parameter, thresholds included). Inputs are
random (the cost does not depend on pixel values).

  /usr/bin/python3 benchmarks/pytorch/dst_cifar.py --model vgg16|wrn16_8 [--time-steps 5]
        [--warmup 1] [--batch 64] [--threads 1] [--dense] [--json PATH]

Prints the median milliseconds per step. Re-executes itself once with OPENBLAS_CORETYPE
set when OpenBLAS picked its slow Prescott kernels, or its AVX2 kernels on an AVX-512 CPU,
exactly as cifar_step does (see blas_kernels.py); torch's convolutions run on oneDNN
(mkldnn) either way, its FC layers on OpenBLAS.
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
    restart_with_fast_blas_kernels(prefer_avx512=True)  # as cifar_step does

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import dst_lenet as ref  # noqa: E402  (BinaryStep, MaskedLinear, surrogates)
from dst_lenet5 import MaskedConv2d  # noqa: E402


def conv(c_in, c_out, k, stride, dense):
    if dense:
        return nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False)
    return MaskedConv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False)


def linear(c_in, c_out, dense):
    return nn.Linear(c_in, c_out) if dense else ref.MaskedLinear(c_in, c_out)


def vgg16(dense):
    layers, c_in = [], 3
    for i, c in enumerate([64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512], 1):
        layers += [conv(c_in, c, 3, 1, dense), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        if i in (2, 4, 7, 10):
            layers.append(nn.MaxPool2d(2))
        c_in = c
    layers += [nn.AvgPool2d(2), nn.Flatten(), linear(512, 512, dense), nn.BatchNorm1d(512),
               nn.ReLU(inplace=True), linear(512, 10, dense)]
    return nn.Sequential(*layers)


class PreActBlock(nn.Module):
    """WideResNet's basic block; a 1x1 shortcut on the pre-activated input when the shape changes."""

    def __init__(self, c_in, c_out, stride, dense):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), conv(c_in, c_out, 3, stride, dense)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), conv(c_out, c_out, 3, 1, dense)
        self.shortcut = None if c_in == c_out and stride == 1 else conv(c_in, c_out, 1, stride, dense)

    def forward(self, x):
        o = F.relu(self.bn1(x))
        y = self.conv2(F.relu(self.bn2(self.conv1(o))))
        return y + (x if self.shortcut is None else self.shortcut(o))


def wrn16_8(dense, k=8):
    widths = [16 * k, 32 * k, 64 * k]
    layers, c_in = [conv(3, 16, 3, 1, dense)], 16
    for c, stride in zip(widths, (1, 2, 2)):
        layers += [PreActBlock(c_in, c, stride, dense), PreActBlock(c, c, 1, dense)]
        c_in = c
    layers += [nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               linear(c_in, 10, dense)]
    return nn.Sequential(*layers)


def thresholds(model):
    return [m.threshold for m in model.modules() if hasattr(m, "threshold")]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=["vgg16", "wrn16_8"], default="vgg16")
    p.add_argument("--time-steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--alpha", type=float, default=5e-6)
    p.add_argument("--dense", action="store_true")
    p.add_argument("--json", default="")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    blas = openblas()
    blas_core = "unknown"
    if blas is not None:
        blas.openblas_set_num_threads(a.threads)
        blas_core = blas.openblas_get_corename().decode()
    torch.manual_seed(1)
    model = vgg16(a.dense) if a.model == "vgg16" else wrn16_8(a.dense)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    ts = thresholds(model)
    x = torch.empty(a.batch, 3, 32, 32).uniform_(-2, 2)
    y = torch.randint(0, 10, (a.batch,))

    def step():
        out = model(x)
        loss = F.cross_entropy(out, y)
        if ts and not a.dense:
            loss = loss + a.alpha * sum(torch.exp(-t).sum() for t in ts)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.time_steps):
        t0 = time.perf_counter()
        step()
        times.append(1e3 * (time.perf_counter() - t0))
    med = statistics.median(times)
    kind = "dense" if a.dense else "DST"
    print(f"torch {torch.__version__}, OpenBLAS {blas_core}, mkldnn {torch.backends.mkldnn.is_available()}, "
          f"{a.threads} thread(s): {a.model} {kind} step, batch {a.batch}: median {med:.1f} ms over "
          f"{len(times)} steps (min {min(times):.1f}, max {max(times):.1f})", flush=True)
    if a.json:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(dict(model=a.model, framework="pytorch", dense=a.dense, ms_per_step=med, step_ms=times,
                           batch=a.batch, threads=a.threads, blas_core=blas_core,
                           torch_version=torch.__version__), f, indent=2)
        os.replace(tmp, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
