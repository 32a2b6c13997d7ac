#pragma once
// Kernels shared by dense and masked dense layers: y = x W^T + b and its gradients.
#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

#include "dynsparse/core/blas.hpp"
#include "dynsparse/core/parallel.hpp"
#include "dynsparse/core/tensor.hpp"

namespace dynsparse::detail {

/// Rows of a batch worth a thread for a product of `out x in` per row (~256k multiply-adds).
inline std::size_t linear_grain(std::size_t out, std::size_t in) { return (std::size_t{1} << 18) / (out * in + 1) + 1; }

/// y (batch x out) = x (batch x in) * w^T (w: out x in) + b; the batch's rows are shared
/// out between threads (parallel_for), one GEMM per chunk.
inline void linear_forward(const matrix& x, const float* w, const float* b, std::size_t out,
                           std::size_t in, matrix& y) {
    const std::size_t batch = x.shape(0);
    ensure_shape(y, batch, out);
    float* yp = y.data();
    parallel_for(batch, [&](std::size_t, std::size_t lo, std::size_t hi) {
        for (std::size_t r = lo; r < hi; ++r) std::copy(b, b + out, yp + r * out);
        gemm(transpose::no, transpose::yes, hi - lo, out, in, 1.0f, x.data() + lo * in, in, w, in, 1.0f,
             yp + lo * out, out);
    }, linear_grain(out, in));
}

/// linear_forward for a w whose rows other than `rows` are all zero: the product runs on
/// those rows only (copied into `compact`, |rows| x in) and the other outputs are the bias.
/// Each output is the same sum as linear_forward's, bias first.
inline void linear_forward_rows(const matrix& x, const float* w, const float* b, std::size_t out,
                                std::size_t in, std::span<const std::size_t> rows,
                                std::vector<float>& compact, std::vector<float>& scratch, matrix& y) {
    const std::size_t batch = x.shape(0), n = rows.size();
    ensure_shape(y, batch, out);
    compact.resize(n * in);
    for (std::size_t k = 0; k < n; ++k) std::copy(w + rows[k] * in, w + (rows[k] + 1) * in, compact.data() + k * in);
    scratch.resize(batch * n);
    float* yp = y.data();
    float* yc = scratch.data();
    const float* wc = compact.data();
    parallel_for(batch, [&](std::size_t, std::size_t lo, std::size_t hi) {
        for (std::size_t r = lo; r < hi; ++r)
            for (std::size_t k = 0; k < n; ++k) yc[r * n + k] = b[rows[k]];
        if (n > 0)
            gemm(transpose::no, transpose::yes, hi - lo, n, in, 1.0f, x.data() + lo * in, in, wc, in, 1.0f,
                 yc + lo * n, n);
        for (std::size_t r = lo; r < hi; ++r) {
            std::copy(b, b + out, yp + r * out);
            for (std::size_t k = 0; k < n; ++k) yp[r * out + rows[k]] = yc[r * n + k];
        }
    }, linear_grain(n, in));
}

/// grad_w (out x in) = dy^T x, grad_b = column sums of dy, and dx = dy w if dx is given.
/// With several threads each chunk of rows computes its share of dy^T x (chunk 0 into
/// grad_w, the others into scratch added in chunk order) and its rows of dx.
/// grad_w_zeroed: grad_w holds zeros already, so the product is added to it (beta = 1)
/// and the BLAS skips its zeroing pass; the result is the same.
inline void linear_backward(const matrix& x, const float* w, const matrix& dy, std::size_t out,
                            std::size_t in, float* grad_w, float* grad_b, matrix* dx,
                            bool grad_w_zeroed = false) {
    const std::size_t batch = x.shape(0), grain = linear_grain(out, in);
    const std::size_t chunks = parallel_chunks(batch, grain);
    thread_local std::vector<float> parts;  // the calling thread's scratch for chunks 1..
    if (chunks > 1) parts.resize((chunks - 1) * out * in);
    if (dx != nullptr) ensure_shape(*dx, batch, in);
    const float* d = dy.data();
    float* part_base = parts.data();
    parallel_for(batch, [&](std::size_t c, std::size_t lo, std::size_t hi) {
        float* gw = c == 0 ? grad_w : part_base + (c - 1) * out * in;
        const float beta = c == 0 && grad_w_zeroed ? 1.0f : 0.0f;
        gemm(transpose::yes, transpose::no, out, in, hi - lo, 1.0f, d + lo * out, out, x.data() + lo * in,
             in, beta, gw, in);
        if (dx != nullptr)
            gemm(transpose::no, transpose::no, hi - lo, in, out, 1.0f, d + lo * out, out, w, in, 0.0f,
                 dx->data() + lo * in, in);
    }, grain);
    for (std::size_t c = 1; c < chunks; ++c) {
        const float* part = part_base + (c - 1) * out * in;
        for (std::size_t i = 0; i < out * in; ++i) grad_w[i] += part[i];
    }
    std::fill(grad_b, grad_b + out, 0.0f);
    for (std::size_t r = 0; r < batch; ++r)
        for (std::size_t o = 0; o < out; ++o) grad_b[o] += d[r * out + o];
}

}  // namespace dynsparse::detail
