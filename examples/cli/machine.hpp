#pragma once
// What the examples and benchmarks assume about the machine they run on, kept out of the
// library: where Debian puts Fashion-MNIST, and picking OpenBLAS's kernels.
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

#include <dynsparse/core/blas.hpp>

namespace examples {

/// Where Debian's dataset-fashion-mnist package installs the four .gz files.
inline const std::filesystem::path default_fashion_mnist_directory{"/usr/share/datasets/fashion-mnist"};

/// The best OpenBLAS 0.3.21 kernel set for this CPU, by its instruction-set features.
inline const char* fastest_openblas_coretype() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512bf16")) return "Cooperlake";
    if (__builtin_cpu_supports("avx512f")) return "SkylakeX";
    if (__builtin_cpu_supports("avx2")) return "Haswell";
#endif
    return nullptr;
}

/// OpenBLAS 0.3.21 (Debian 12) does not recognise some recent CPUs and falls back to its
/// generic Prescott kernels, far slower than its AVX2/AVX-512 ones. OPENBLAS_CORETYPE is
/// read only when the library loads, so the fix is to restart the program with it set.
/// Call this first thing in main(): if OpenBLAS chose Prescott, the user did not set
/// OPENBLAS_CORETYPE, and the CPU has AVX2 or better, the process re-executes itself
/// (once) with OPENBLAS_CORETYPE set; otherwise it returns.
///
/// prefer_avx512: also restart when OpenBLAS chose its AVX2 kernels (Haswell, Zen) on a
/// CPU with AVX-512, as 0.3.21 does on AMD Zen 4 and Zen 5. Opt-in: whether that is faster
/// depends on the CPU (docs/benchmarks.md has the figures); measure on yours.
inline void restart_with_fast_blas_kernels(char** argv, bool prefer_avx512 = false) {
#if defined(__linux__)
    if (std::getenv("OPENBLAS_CORETYPE") != nullptr || std::getenv("DYNSPARSE_BLAS_RESTARTED"))
        return;
    const std::string chosen = dynsparse::blas_core_name();
    const char* core = fastest_openblas_coretype();
    if (core == nullptr) return;
    const bool generic = chosen == "Prescott";
    const bool avx2_on_avx512 = prefer_avx512 && (chosen == "Haswell" || chosen == "Zen") &&
                                std::string(core) != "Haswell";
    if (!generic && !avx2_on_avx512) return;
    ::setenv("OPENBLAS_CORETYPE", core, 1);
    ::setenv("DYNSPARSE_BLAS_RESTARTED", "1", 1);
    ::execv("/proc/self/exe", argv);  // returns only on failure: carry on with these kernels
#else
    (void)argv;
    (void)prefer_avx512;
#endif
}

}  // namespace examples
