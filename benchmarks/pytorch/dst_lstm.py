#!/usr/bin/python3
"""Dynamic Sparse Training (Liu et al., ICLR 2020) of LSTM-a / LSTM-b on Fashion-MNIST in PyTorch.

The PyTorch reference for dynsparse's `lstm_mnist` example and `lstm_a_step` benchmark:
the same recipe (docs: /work/shared/docs/dst-spec.md) and the same network,

  image rows as 28 steps of 28 inputs -> LSTM(hidden) -> LSTM(hidden) -> last hidden
  state -> FC hidden-10 (unmasked, as in the paper),

hidden 128 (LSTM-a) or 256 (LSTM-b). Dense: nn.LSTM(28, hidden, num_layers=2,
batch_first=True), PyTorch's fused LSTM op. DST: the same nn.LSTM's parameters, each of the
four weight matrices W_ih, W_hh of each layer (4*hidden rows: the gates i, f, g, o stacked)
with one threshold per row, i.e. per hidden unit of each gate matrix:
  Q = |W| - t[:, None];  M = step(Q) (strict > 0; backward: surrogate H(Q), dst_lenet.py's
  BinaryStep);  reset rule per LSTM layer (both its matrices together, as in dynsparse);
and the masked weights W*M are fed to the same fused op (torch._VF.lstm, which nn.LSTM
calls). Loss = mean cross-entropy + alpha * sum(exp(-t)); Adam lr 1e-3, batch 100, alpha 1e-4.

  /usr/bin/python3 benchmarks/pytorch/dst_lstm.py [--hidden 128|256] [--dense] [--epochs 20] [--json PATH]
  /usr/bin/python3 benchmarks/pytorch/dst_lstm.py --time-steps 50        # ms per step only

`--time-steps N` times N training steps (after 5 warm-up steps) and prints the median
milliseconds per step (forward, loss, backward, optimizer step), the figure `lstm_a_step`
is compared with. Re-executes itself once with OPENBLAS_CORETYPE set when OpenBLAS picked
its slow Prescott kernels (see blas_kernels.py and README.md).
"""
import argparse
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

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import _VF  # noqa: E402

import dst_lenet as ref  # noqa: E402  (data loading, BinaryStep, surrogates, evaluation)

STEPS, FEATURES, CLASSES, LAYERS = 28, 28, 10, 2


class LSTMNet(nn.Module):
    """Two stacked LSTMs, the last hidden state, a dense head; masked=True adds DST."""

    def __init__(self, hidden, masked, surrogate="long_tailed", reset_rule=True):
        super().__init__()
        self.lstm = nn.LSTM(FEATURES, hidden, num_layers=LAYERS, batch_first=True)
        self.fc = nn.Linear(hidden, CLASSES)
        self.hidden = hidden
        self.masked = masked
        self.surrogate = surrogate
        self.reset_rule = reset_rule
        self.resets = 0
        names = self.lstm._flat_weights_names
        self.weight_names = [n for n in names if n.startswith("weight")]
        self.threshold = nn.ParameterDict(
            {n: nn.Parameter(torch.zeros(4 * hidden)) for n in self.weight_names} if masked else {})
        self.kept = {n: getattr(self.lstm, n).numel() for n in self.weight_names}

    def _masks(self, layer):
        names = [f"weight_ih_l{layer}", f"weight_hh_l{layer}"]
        masks = {n: ref.BinaryStep.apply(getattr(self.lstm, n).abs() - self.threshold[n][:, None],
                                         self.surrogate) for n in names}
        return names, masks

    def forward(self, x):
        if self.masked:
            flat = {}
            for layer in range(LAYERS):
                names, masks = self._masks(layer)
                kept = {n: int(torch.count_nonzero(m.detach())) for n, m in masks.items()}
                if self.reset_rule and sum(kept.values()) * 100 <= sum(m.numel() for m in masks.values()):
                    with torch.no_grad():
                        for n in names:
                            self.threshold[n].zero_()
                    self.resets += 1
                    names, masks = self._masks(layer)
                    kept = {n: int(torch.count_nonzero(m.detach())) for n, m in masks.items()}
                self.kept.update(kept)
                for n in names:
                    flat[n] = getattr(self.lstm, n) * masks[n]
            weights = [flat.get(n, getattr(self.lstm, n)) for n in self.lstm._flat_weights_names]
            h0 = x.new_zeros(LAYERS, x.shape[0], self.hidden)
            out = _VF.lstm(x, (h0, h0), weights, True, LAYERS, 0.0, self.training, False, True)[0]
        else:
            out = self.lstm(x)[0]
        return self.fc(out[:, -1])

    def regulariser(self, alpha):
        return alpha * sum(torch.exp(-t).sum() for t in self.threshold.values())

    def remaining(self):
        """Model remaining ratio and that of each gate matrix (W_ih, W_hh of each layer)."""
        total = {n: getattr(self.lstm, n).numel() for n in self.weight_names}
        return (sum(self.kept.values()) / sum(total.values()),
                [self.kept[n] / total[n] for n in self.weight_names])


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=ref.DEFAULT_DATA)
    p.add_argument("--hidden", type=int, choices=(128, 256), default=128)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--alpha", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch and OpenBLAS threads")
    p.add_argument("--dense", action="store_true", help="plain nn.LSTM, no regulariser")
    p.add_argument("--surrogate", choices=sorted(ref.SURROGATES), default="long_tailed")
    p.add_argument("--no-reset", action="store_true")
    p.add_argument("--time-steps", type=int, default=0,
                   help="only time N training steps and print the median ms per step")
    p.add_argument("--json", default="")
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
    xtr, xte = xtr.view(-1, STEPS, FEATURES), xte.view(-1, STEPS, FEATURES)

    torch.manual_seed(a.seed)
    model = LSTMNet(a.hidden, not a.dense, a.surrogate, not a.no_reset)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    alpha = 0.0 if a.dense else a.alpha
    shuffle = torch.Generator().manual_seed(a.seed)
    name = "LSTM-a" if a.hidden == 128 else "LSTM-b"
    desc = "dense baseline" if a.dense else f"DST, {a.surrogate}, per-neuron, alpha {alpha:g}"
    print(f"{name} (2 x LSTM {a.hidden}), {desc}; Adam lr {a.lr:g}, batch {a.batch}", flush=True)

    def step(x, y):
        out = model(x)
        ce = F.cross_entropy(out, y)
        loss = ce + model.regulariser(alpha) if alpha else ce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(ce)

    n = xtr.shape[0]
    model.train()
    if a.time_steps:
        order = torch.randperm(n, generator=shuffle)
        times = []
        for s in range(a.time_steps + 5):
            first = (s * a.batch) % (n - a.batch)
            idx = order[first:first + a.batch]
            x, y = xtr[idx], ytr[idx]
            t0 = time.perf_counter()
            step(x, y)
            if s >= 5:
                times.append(1e3 * (time.perf_counter() - t0))
        med = statistics.median(times)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print(f"median ms/step over {a.time_steps} steps: {med:.2f}  (mean {statistics.mean(times):.2f})"
              f"  peak RSS {rss:.1f} MiB")
        if a.json:
            write_json(a.json, dict(model=f"lstm_{'a' if a.hidden == 128 else 'b'}", framework="pytorch",
                                    dense=a.dense, ms_per_step=med, steps=a.time_steps, batch=a.batch,
                                    threads=a.threads, blas_core=blas_core, peak_rss_mib=rss,
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
        remaining, per_matrix = model.remaining()
        history.append(dict(seconds=seconds, acc=acc, remaining=remaining))
        print(f"epoch {epoch:2d}/{a.epochs}  train loss {loss_sum / steps:.4f}  test loss {test_loss:.4f}  "
              f"acc {acc:6.2f}%  remaining {100 * remaining:6.2f}%  train {seconds:.2f} s", flush=True)
        if not a.dense:
            print("           per matrix: " + "  ".join(
                f"{n} {100 * r:6.2f}%" for n, r in zip(model.weight_names, per_matrix)), flush=True)
    remaining, per_matrix = model.remaining()
    per_epoch = statistics.median(h["seconds"] for h in history)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"\n== final ==\ntest accuracy    {acc:.2f}%\nremaining ratio  {100 * remaining:.2f}%\n"
          f"time             {per_epoch:.3f} s per training epoch\npeak RSS         {rss:.1f} MiB", flush=True)
    if a.json:
        write_json(a.json, dict(
            model=f"lstm_{'a' if a.hidden == 128 else 'b'}", framework="pytorch", dense=a.dense,
            test_accuracy=acc, test_loss=test_loss, remaining_ratio=remaining,
            layer_remaining=per_matrix, epochs=len(history), seconds_per_epoch=per_epoch,
            epoch_eval_accuracy=[h["acc"] for h in history],
            epoch_remaining=[h["remaining"] for h in history], resets=model.resets,
            batch=a.batch, lr=a.lr, alpha=alpha, seed=a.seed, threads=a.threads,
            blas_core=blas_core, peak_rss_mib=rss, torch_version=torch.__version__))
    return 0


if __name__ == "__main__":
    sys.exit(main())
