#pragma once
// The DST elementwise passes over a weight matrix viewed as rows x cols, written as plain
// loops over contiguous storage (xtensor broadcast expressions are ~40x slower here).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <concepts>
#include <cstdint>
#include <limits>

#include "dynsparse/core/select.hpp"
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
        return select(q > 0.0f, 1.0f, 0.0f);
}

/// The masked weight for w and threshold t; counts a kept weight in `kept`.
/// The exact path selects bitwise (ds::select) rather than multiplying by a float mask:
/// that form vectorises on every target and at -O2.
template <Surrogate S, bool Smooth>
inline float masked_value(float w, float t, std::uint32_t& kept) {
    const float q = std::fabs(w) - t;
    if constexpr (Smooth) {
        const float m = S::smooth_step(q);
        kept += m != 0.0f;
        return w * m;
    } else {
        const bool keep = q > 0.0f;
        kept += keep;
        return select(keep, w, 0.0f);
    }
}

/// A granularity whose rows fall into two pieces, columns [0, G::row_split) and
/// [G::row_split, cols), each with one threshold per row (an LSTM's [W_ih | W_hh]): the
/// kernels then run the shared-threshold loop on each piece.
template <class G>
concept SplitRowGranularity = requires {
    { G::row_split } -> std::convertible_to<std::size_t>;
};

inline constexpr std::size_t mask_lanes = 16;

/// mr[j] = masked value of wr[j] for j in [j0, j1), one threshold ti; counts into count.
template <Surrogate S, bool Smooth>
inline void mask_piece(const float* __restrict wr, float* __restrict mr, std::size_t j0,
                       std::size_t j1, float ti, std::uint32_t* count) {
    constexpr std::size_t lanes = mask_lanes;
    const std::size_t body = j1 - (j1 - j0) % lanes;
    for (std::size_t j = j0; j < body; j += lanes)
        for (std::size_t l = 0; l < lanes; ++l)
            mr[j + l] = masked_value<S, Smooth>(wr[j + l], ti, count[l]);
    for (std::size_t j = body; j < j1; ++j) mr[j] = masked_value<S, Smooth>(wr[j], ti, count[0]);
}

/// masked = W * M(|W| - t) for rows [row_begin, row_end) of the rows x cols matrices w and
/// masked (full-matrix pointers); returns the number of mask entries that are non-zero,
/// and writes each row's count into row_kept[i] (full-matrix row index) unless null.
/// Written in blocks of 16 lanes so that it vectorises even at -O2.
template <Surrogate S, ThresholdGranularity G, bool Smooth>
[[gnu::noinline]] std::size_t apply_mask(const float* __restrict w, const float* __restrict t,
                                         std::size_t row_begin, std::size_t row_end,
                                         std::size_t cols, float* __restrict masked,
                                         std::uint32_t* __restrict row_kept = nullptr) {
    constexpr std::size_t lanes = mask_lanes;
    std::size_t kept = 0;
    for (std::size_t i = row_begin; i < row_end; ++i) {
        const float* __restrict wr = w + i * cols;
        float* __restrict mr = masked + i * cols;
        std::uint32_t count[lanes] = {};
        if constexpr (SplitRowGranularity<G>) {
            constexpr std::size_t split = G::row_split;
            mask_piece<S, Smooth>(wr, mr, 0, split, t[G::index(i, 0, cols)], count);
            mask_piece<S, Smooth>(wr, mr, split, cols, t[G::index(i, split, cols)], count);
        } else if constexpr (G::varies_along_row) {
            for (std::size_t j = 0; j < cols; ++j)
                mr[j] = masked_value<S, Smooth>(wr[j], t[G::index(i, j, cols)], count[j % lanes]);
        } else {
            mask_piece<S, Smooth>(wr, mr, 0, cols, t[G::index(i, 0, cols)], count);
        }
        std::uint32_t row = 0;
        for (std::uint32_t c : count) row += c;
        if (row_kept != nullptr) row_kept[i] = row;
        kept += row;
    }
    return kept;
}

/// The gradient of one weight: returns dL/dW for G = g and sets `gh` to G*H(Q) (times W,
/// the weight's share of -dL/dt).
template <Surrogate S, bool Smooth>
inline float weight_gradient(float w, float t, float g, float& gh) {
    const float a = std::fabs(w);
    const float q = a - t;
    gh = g * S::derivative(q);
    if constexpr (Smooth)
        return g * S::smooth_step(q) + gh * a;
    else
        return select(q > 0.0f, g, 0.0f) + gh * a;  // branch-free, so it vectorises
}

/// acc + a * b rounded once where the target has FMA instructions: what GCC's contraction
/// makes of the vectorised loop body, written out so that the result does not depend on
/// whether the compiler vectorises (or contracts) a given loop.
inline float add_fused(float acc, float a, float b) {
#ifdef __FMA__
    return __builtin_fmaf(a, b, acc);
#else
    return acc + a * b;
#endif
}

/// acc + a * b with the product rounded first: never contracted into an FMA.
inline float add_rounded(float acc, float a, float b) {
    float p = a * b;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    asm("" : "+x"(p));  // hides the product from contraction
#endif
    return acc + p;
}

/// Turns G = dL/dWm (in `grad`, in place) into dL/dW and writes dL/dt into grad_t:
///   dL/dW = G*M + G*|W|*H(Q),   dL/dt_group = -sum over the group of G*W*H(Q).
/// Works on rows [row_begin, row_end) (full-matrix pointers) and subtracts from grad_t,
/// which the caller zeroes first (the regulariser's share is added later by the trainer).
/// For row-shared thresholds, each row runs in blocks of 16 lanes, each lane with its own
/// partial sum of the shares (the blocked form vectorises at -O2 and -O3, and 1.5x faster
/// than writing the shares to a buffer and summing them in a second loop). The order of
/// additions is fixed, so results are deterministic.
/// dL/dW in place for columns [j0, j1) of one row sharing threshold ti; returns the sum
/// of the shares G*W*H(Q) (-dL/dti).
template <Surrogate S, bool Smooth>
inline float gradient_piece(const float* __restrict wr, float* __restrict gr, std::size_t j0,
                            std::size_t j1, float ti) {
    constexpr std::size_t lanes = mask_lanes;
    float acc[lanes] = {};
    const std::size_t body = j1 - (j1 - j0) % lanes;
    // The share G*W*H(Q) is summed as acc + (G*H(Q)) * W: fused in the blocks, rounded
    // in the tail, on every FMA target (the figures in docs/results.md were made so).
    for (std::size_t j = j0; j < body; j += lanes)
        for (std::size_t l = 0; l < lanes; ++l) {
            float gh;
            gr[j + l] = weight_gradient<S, Smooth>(wr[j + l], ti, gr[j + l], gh);
            acc[l] = add_fused(acc[l], gh, wr[j + l]);
        }
    for (std::size_t j = body; j < j1; ++j) {
        float gh;
        gr[j] = weight_gradient<S, Smooth>(wr[j], ti, gr[j], gh);
        acc[0] = add_rounded(acc[0], gh, wr[j]);
    }
    float sum = 0.0f;
    for (float v : acc) sum += v;
    return sum;
}

/// The surrogate pass for granularities whose thresholds vary along a row (per_weight):
/// thresholds may be shared between rows, so each share goes straight into grad_t, in
/// order, on one thread. Row-shared thresholds use mask_backward_rows and
/// subtract_row_shares below, which the layers run on several threads.
template <Surrogate S, ThresholdGranularity G, bool Smooth>
    requires G::varies_along_row
[[gnu::noinline]] void mask_backward(const float* __restrict w, const float* __restrict t,
                                     std::size_t row_begin, std::size_t row_end, std::size_t cols,
                                     float* __restrict grad, float* __restrict grad_t) {
    for (std::size_t i = row_begin; i < row_end; ++i) {
        const float* __restrict wr = w + i * cols;
        float* __restrict gr = grad + i * cols;
        for (std::size_t j = 0; j < cols; ++j) {
            const std::size_t k = G::index(i, j, cols);
            float gh;
            gr[j] = weight_gradient<S, Smooth>(wr[j], t[k], gr[j], gh);
            grad_t[k] -= gh * wr[j];  // several rows may share a threshold
        }
    }
}

/// Threshold-gradient pieces per row for granularities with one threshold per row or per
/// row piece (not varies_along_row): 2 for split rows, else 1.
template <ThresholdGranularity G>
inline constexpr std::size_t row_pieces = SplitRowGranularity<G> ? 2 : 1;

/// mask_backward split in two so that rows can be shared out between threads with the
/// same result: this writes dL/dW for rows [row_begin, row_end) and each row piece's
/// share sum into shares[i * row_pieces<G> + piece] (full-matrix row i); the caller then
/// subtracts the shares from grad_t in row order (subtract_row_shares), exactly the
/// additions mask_backward makes.
template <Surrogate S, ThresholdGranularity G, bool Smooth>
    requires(!G::varies_along_row)
[[gnu::noinline]] void mask_backward_rows(const float* __restrict w, const float* __restrict t,
                                          std::size_t row_begin, std::size_t row_end,
                                          std::size_t cols, float* __restrict grad,
                                          float* __restrict shares) {
    for (std::size_t i = row_begin; i < row_end; ++i) {
        const float* __restrict wr = w + i * cols;
        float* __restrict gr = grad + i * cols;
        if constexpr (SplitRowGranularity<G>) {
            constexpr std::size_t split = G::row_split;
            shares[2 * i] = gradient_piece<S, Smooth>(wr, gr, 0, split, t[G::index(i, 0, cols)]);
            shares[2 * i + 1] =
                gradient_piece<S, Smooth>(wr, gr, split, cols, t[G::index(i, split, cols)]);
        } else {
            shares[i] = gradient_piece<S, Smooth>(wr, gr, 0, cols, t[G::index(i, 0, cols)]);
        }
    }
}

template <ThresholdGranularity G>
    requires(!G::varies_along_row)
void subtract_row_shares(const float* shares, std::size_t rows, std::size_t cols, float* grad_t) {
    for (std::size_t i = 0; i < rows; ++i) {
        if constexpr (SplitRowGranularity<G>) {
            grad_t[G::index(i, 0, cols)] -= shares[2 * i];
            grad_t[G::index(i, G::row_split, cols)] -= shares[2 * i + 1];
        } else {
            grad_t[G::index(i, 0, cols)] -= shares[i];
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
