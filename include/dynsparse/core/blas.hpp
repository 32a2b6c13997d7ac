#pragma once
// The one BLAS routine the layers need, declared here under a private name bound to the
// `cblas_sgemm` symbol. Declaring it ourselves (instead of including <cblas.h>) keeps
// this header compatible with xtensor-blas, whose own CBLAS enums clash with <cblas.h>
// in one translation unit.
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>

#include "dynsparse/core/tensor.hpp"

extern "C" {
void dynsparse_cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                           const float* a, int lda, const float* b, int ldb, float beta, float* c,
                           int ldc) __asm__("cblas_sgemm");
void dynsparse_cblas_sgemv(int order, int trans, int m, int n, float alpha, const float* a, int lda,
                           const float* x, int incx, float beta, float* y, int incy) __asm__("cblas_sgemv");
// OpenBLAS only: weak, so linking against another BLAS still works.
void dynsparse_openblas_set_num_threads(int n) __asm__("openblas_set_num_threads")
    __attribute__((weak));
int dynsparse_openblas_get_num_threads() __asm__("openblas_get_num_threads") __attribute__((weak));
char* dynsparse_openblas_get_corename() __asm__("openblas_get_corename") __attribute__((weak));
}

namespace dynsparse {

enum class transpose : bool { no = false, yes = true };

namespace detail {
inline constexpr int cblas_row_major = 101;
inline constexpr int cblas_no_trans = 111;
inline constexpr int cblas_trans = 112;
}  // namespace detail

/// C = alpha * op(A) * op(B) + beta * C on raw row-major storage.
/// op(A) is m x k, op(B) is k x n, C is m x n.
inline void gemm(transpose ta, transpose tb, std::size_t m, std::size_t n, std::size_t k,
                 float alpha, const float* a, std::size_t lda, const float* b, std::size_t ldb,
                 float beta, float* c, std::size_t ldc) {
    if (m == 0 || n == 0) return;
    dynsparse_cblas_sgemm(detail::cblas_row_major,
                          ta == transpose::yes ? detail::cblas_trans : detail::cblas_no_trans,
                          tb == transpose::yes ? detail::cblas_trans : detail::cblas_no_trans,
                          static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
                          static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
                          static_cast<int>(ldc));
}

/// y = alpha * A x + beta * y, A row-major m x n (one sample through a dense layer).
inline void gemv(std::size_t m, std::size_t n, float alpha, const float* a, std::size_t lda, const float* x,
                 float beta, float* y) {
    if (m == 0) return;
    dynsparse_cblas_sgemv(detail::cblas_row_major, detail::cblas_no_trans, static_cast<int>(m),
                          static_cast<int>(n), alpha, a, static_cast<int>(lda), x, 1, beta, y, 1);
}

/// Sets the number of BLAS threads (OpenBLAS); returns false if the BLAS in use
/// does not offer it.
inline bool set_blas_threads(int n) {
    if (dynsparse_openblas_set_num_threads == nullptr) return false;
    dynsparse_openblas_set_num_threads(n);
    return true;
}

inline int blas_threads() {
    return dynsparse_openblas_get_num_threads ? dynsparse_openblas_get_num_threads() : 1;
}

/// The name of the kernel set OpenBLAS chose at load time ("unknown" for another BLAS).
inline std::string blas_core_name() {
    return dynsparse_openblas_get_corename ? dynsparse_openblas_get_corename() : "unknown";
}

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

/// OpenBLAS 0.3.21 (Debian 12) does not recognise some recent CPUs (e.g. Sapphire Rapids
/// Xeons) and falls back to its generic Prescott kernels, about 20x slower than the
/// AVX-512 ones. OPENBLAS_CORETYPE is read only when the library loads, so the fix is to
/// restart the program with it set. Call this first thing in main(): if OpenBLAS chose
/// Prescott, the user did not set OPENBLAS_CORETYPE, and the CPU has AVX2 or better, the
/// process re-executes itself (once) with OPENBLAS_CORETYPE set; otherwise it returns.
///
/// prefer_avx512: also restart when OpenBLAS chose its AVX2 kernels (Haswell, Zen) on a CPU
/// with AVX-512, as 0.3.21 does on AMD Zen 4 and Zen 5. Opt-in: on a Zen 4 machine the
/// AVX-512 kernels were measured 6-15% slower, while on the Zen 5 (family 26) machine of
/// the CIFAR benchmarks they were 1.3-1.9x faster on convolution-sized sgemms
/// (docs/benchmarks.md); measure on yours.
inline void restart_with_fast_blas_kernels(char** argv, bool prefer_avx512 = false) {
#if defined(__linux__)
    if (std::getenv("OPENBLAS_CORETYPE") != nullptr || std::getenv("DYNSPARSE_BLAS_RESTARTED"))
        return;
    const std::string chosen = blas_core_name();
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

}  // namespace dynsparse
