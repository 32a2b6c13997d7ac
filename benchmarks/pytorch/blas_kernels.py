"""OpenBLAS kernel selection for the PyTorch references (imports no torch).

Debian 12's OpenBLAS 0.3.21 does not recognise some recent Xeons and falls back to its
slow Prescott kernels; torch's nn.Linear runs on that OpenBLAS. OPENBLAS_CORETYPE is read
only when the library loads, so, like the dynsparse examples' restart_with_fast_blas_kernels
(examples/cli/machine.hpp), the script re-executes itself once with it set. Call restart_with_fast_blas_kernels()
before importing torch.
"""
import ctypes
import os
import sys


def openblas():
    """The loaded OpenBLAS library (ctypes), or None."""
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib
    except (OSError, AttributeError):
        return None


def fastest_coretype():
    """The best OpenBLAS 0.3.21 kernel set for this CPU (mirrors dynsparse's blas.hpp)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((l.split(":", 1)[1].split() for l in f if l.startswith("flags")), [])
    except OSError:
        return None
    for flag, core in (("avx512_bf16", "Cooperlake"), ("avx512f", "SkylakeX"), ("avx2", "Haswell")):
        if flag in flags:
            return core
    return None


def restart_with_fast_blas_kernels(prefer_avx512=False):
    """prefer_avx512: also when OpenBLAS chose its AVX2 kernels on an AVX-512 CPU (as
    dynsparse's restart_with_fast_blas_kernels(argv, true); used by the CIFAR benchmarks)."""
    if os.environ.get("OPENBLAS_CORETYPE") or os.environ.get("DYNSPARSE_BLAS_RESTARTED"):
        return
    lib = openblas()
    if lib is None:
        return
    chosen = lib.openblas_get_corename()
    core = fastest_coretype()
    if core is None:
        return
    upgrade = prefer_avx512 and chosen in (b"Haswell", b"Zen") and core != "Haswell"
    if chosen != b"Prescott" and not upgrade:
        return
    os.environ["OPENBLAS_CORETYPE"] = core
    os.environ["DYNSPARSE_BLAS_RESTARTED"] = "1"
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable] + sys.argv)
