#pragma once
// Kernels shared by dense and masked dense layers: y = x W^T + b and its gradients.
#include <algorithm>
#include <cstddef>

#include "dynsparse/core/blas.hpp"
#include "dynsparse/core/tensor.hpp"

namespace dynsparse::detail {

/// y (batch x out) = x (batch x in) * w^T (w: out x in) + b.
inline void linear_forward(const matrix& x, const float* w, const float* b, std::size_t out,
                           std::size_t in, matrix& y) {
    const std::size_t batch = x.shape(0);
    ensure_shape(y, batch, out);
    float* yp = y.data();
    for (std::size_t r = 0; r < batch; ++r) std::copy(b, b + out, yp + r * out);
    gemm(transpose::no, transpose::yes, batch, out, in, 1.0f, x.data(), in, w, in, 1.0f, yp, out);
}

/// grad_w (out x in) = dy^T x, grad_b = column sums of dy, and dx = dy w if dx is given.
inline void linear_backward(const matrix& x, const float* w, const matrix& dy, std::size_t out,
                            std::size_t in, float* grad_w, float* grad_b, matrix* dx) {
    const std::size_t batch = x.shape(0);
    gemm(transpose::yes, transpose::no, out, in, batch, 1.0f, dy.data(), out, x.data(), in, 0.0f,
         grad_w, in);
    std::fill(grad_b, grad_b + out, 0.0f);
    const float* d = dy.data();
    for (std::size_t r = 0; r < batch; ++r)
        for (std::size_t o = 0; o < out; ++o) grad_b[o] += d[r * out + o];
    if (dx != nullptr) {
        ensure_shape(*dx, batch, in);
        gemm(transpose::no, transpose::no, batch, in, out, 1.0f, d, out, w, in, 0.0f, dx->data(),
             in);
    }
}

}  // namespace dynsparse::detail
