#pragma once
// The DST elementwise passes over a weight matrix viewed as rows x cols, written as plain
// loops over contiguous storage (xtensor broadcast expressions are ~40x slower here).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "dynsparse/layers/layer.hpp"
#include "dynsparse/surrogate/surrogate.hpp"
#include "dynsparse/threshold/granularity.hpp"

namespace dynsparse::detail {

/// The mask value for Q = |W| - t: the exact step, or (tests only) the surrogate's
/// smooth step so finite differences can check the backward pass.
template <Surrogate S, bool Smooth>
inline float mask_of(float q) {
    if constexpr (Smooth)
        return S::smooth_step(q);
    else
        return q > 0.0f ? 1.0f : 0.0f;
}

/// masked = W * M(|W| - t); returns the number of mask entries that are non-zero.
template <Surrogate S, ThresholdGranularity G, bool Smooth>
std::size_t apply_mask(const float* w, const float* t, std::size_t rows, std::size_t cols,
                       float* masked) {
    std::size_t kept = 0;
    for (std::size_t i = 0; i < rows; ++i) {
        const float* wr = w + i * cols;
        float* mr = masked + i * cols;
        if constexpr (G::varies_along_row) {
            const float* tr = t + G::index(i, 0, cols);
            for (std::size_t j = 0; j < cols; ++j) {
                const float m = mask_of<S, Smooth>(std::fabs(wr[j]) - tr[j]);
                mr[j] = wr[j] * m;
                kept += m != 0.0f;
            }
        } else {
            const float ti = t[G::index(i, 0, cols)];
            std::size_t row_kept = 0;
            for (std::size_t j = 0; j < cols; ++j) {
                const float m = mask_of<S, Smooth>(std::fabs(wr[j]) - ti);
                mr[j] = wr[j] * m;
                row_kept += m != 0.0f;
            }
            kept += row_kept;
        }
    }
    return kept;
}

/// Turns G = dL/dWm (in `grad`, in place) into dL/dW and adds dL/dt to grad_t:
///   dL/dW = G*M + G*|W|*H(Q),   dL/dt_group -= sum G*W*H(Q).
/// grad_t is overwritten (the regulariser's share is added later by the trainer).
template <Surrogate S, ThresholdGranularity G, bool Smooth>
void mask_backward(const float* w, const float* t, std::size_t rows, std::size_t cols, float* grad,
                   float* grad_t) {
    std::fill(grad_t, grad_t + G::count(rows, cols), 0.0f);
    for (std::size_t i = 0; i < rows; ++i) {
        const float* wr = w + i * cols;
        float* gr = grad + i * cols;
        if constexpr (G::varies_along_row) {
            const float* tr = t + G::index(i, 0, cols);
            float* gtr = grad_t + G::index(i, 0, cols);
            for (std::size_t j = 0; j < cols; ++j) {
                const float a = std::fabs(wr[j]);
                const float q = a - tr[j];
                const float h = S::derivative(q);
                const float g = gr[j];
                gr[j] = g * (mask_of<S, Smooth>(q) + a * h);
                gtr[j] -= g * wr[j] * h;
            }
        } else {
            const float ti = t[G::index(i, 0, cols)];
            float acc = 0.0f;
            for (std::size_t j = 0; j < cols; ++j) {
                const float a = std::fabs(wr[j]);
                const float q = a - ti;
                const float h = S::derivative(q);
                const float g = gr[j];
                gr[j] = g * (mask_of<S, Smooth>(q) + a * h);
                acc += g * wr[j] * h;
            }
            grad_t[G::index(i, 0, cols)] -= acc;
        }
    }
}

inline void threshold_summary(const float* t, std::size_t n, mask_statistics& s) {
    if (n == 0) return;
    double sum = 0;
    float lo = std::numeric_limits<float>::infinity(), hi = -lo;
    for (std::size_t i = 0; i < n; ++i) {
        sum += t[i];
        lo = std::min(lo, t[i]);
        hi = std::max(hi, t[i]);
    }
    s.threshold_mean = static_cast<float>(sum / static_cast<double>(n));
    s.threshold_min = lo;
    s.threshold_max = hi;
}

}  // namespace dynsparse::detail
