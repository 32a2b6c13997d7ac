#pragma once
// The one BLAS routine the layers need, declared here under a private name bound to the
// `cblas_sgemm` symbol. Declaring it ourselves (instead of including <cblas.h>) keeps
// this header compatible with xtensor-blas, whose own CBLAS enums clash with <cblas.h>
// in one translation unit.
#include <cstddef>
#include <string>

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

}  // namespace dynsparse
