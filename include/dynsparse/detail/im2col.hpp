#pragma once
// Kernels shared by conv2d and masked_conv2d: im2col / col2im and the convolution as one
// GEMM per sample on the unfolded input.
//
// Layout: a sample (C, H, W) is C*H*W contiguous floats, channel-major; a filter bank is
// the row-major matrix W (c_out x c_in*k*k), row o = filter o as (c_in, kh, kw). The
// unfolded input of one sample, col (c_in*k*k x oh*ow), has row (c, i, j) holding
// x[c, oy*s - p + i, ox*s - p + j] (0 outside the image) at column oy*ow + ox, so
//   y_sample (c_out x oh*ow) = W col + b       (already the channel-major output layout)
//   dL/dW += dy_sample col^T,   dcol = W^T dy_sample,   dx_sample = col2im(dcol).
// One GEMM per sample, writing straight into the sample's output row; each sample is
// unfolded into its own block of col, which stays in cache from im2col to the GEMM and is
// kept for the backward pass. Measured against one GEMM for the whole batch (samples
// unfolded side by side, c_in*k*k x batch*oh*ow, then the output and dy copied between
// the GEMM's channel-major layout and the sample-major rows): a LeNet-5-Caffe DST step at
// batch 64 took 17.8 ms per sample against 23.5 ms batched (lenet5_caffe_step, same run).
// The big GEMMs are efficient, but their 8 MiB operands leave the cache. Groups of
// samples side by side (so a group's unfolded input is 256 KiB to 4 MiB) were no faster
// than single samples either.
#include <algorithm>
#include <cstddef>

#include "dynsparse/core/blas.hpp"
#include "dynsparse/core/parallel.hpp"
#include "dynsparse/core/tensor.hpp"

namespace dynsparse::detail {

/// The static geometry of a 2-D convolution or pooling window.
struct conv_geometry {
    std::size_t channels, height, width;  // input sample
    std::size_t kernel, stride, padding;
    std::size_t out_height, out_width;
    constexpr std::size_t cols() const { return channels * kernel * kernel; }    // rows of col
    constexpr std::size_t positions() const { return out_height * out_width; }  // columns of col
    constexpr std::size_t in_size() const { return channels * height * width; }

    /// The output positions [lo, hi) along one axis whose input index o*s - p + k lies in
    /// [0, n).
    constexpr void valid_range(std::size_t k, std::size_t n, std::size_t out, std::size_t& lo,
                               std::size_t& hi) const {
        // o*s + k >= p  <=>  o >= ceil((p - k) / s)
        lo = k >= padding ? 0 : (padding - k + stride - 1) / stride;
        // o*s + k - p <= n - 1  <=>  o <= (n - 1 + p - k) / s
        hi = n - 1 + padding < k ? 0 : (n - 1 + padding - k) / stride + 1;
        hi = std::min(hi, out);
        lo = std::min(lo, hi);
    }
};

/// Unfolds one sample x (C*H*W) into col (C*k*k x oh*ow, rows `ld` floats apart).
/// The geometry is a template argument: with its sizes known, the short row copies (24
/// and 8 floats in LeNet-5-Caffe) compile to a few vector moves instead of library calls.
template <conv_geometry g>
inline void im2col(const float* __restrict x, float* __restrict col, std::size_t ld) {
    constexpr std::size_t k = g.kernel, s = g.stride, p = g.padding;
    constexpr std::size_t oh = g.out_height, ow = g.out_width, hw = g.height * g.width;
    for (std::size_t c = 0; c < g.channels; ++c)
        for (std::size_t i = 0; i < k; ++i) {
            std::size_t ylo, yhi;
            g.valid_range(i, g.height, oh, ylo, yhi);
            for (std::size_t j = 0; j < k; ++j) {
                std::size_t xlo, xhi;
                g.valid_range(j, g.width, ow, xlo, xhi);
                float* __restrict row = col + ((c * k + i) * k + j) * ld;
                std::fill(row, row + ylo * ow, 0.0f);
                for (std::size_t oy = ylo; oy < yhi; ++oy) {
                    float* __restrict r = row + oy * ow;
                    const float* __restrict src = x + c * hw + (oy * s + i - p) * g.width + j - p;
                    std::fill(r, r + xlo, 0.0f);
                    for (std::size_t ox = xlo; ox < xhi; ++ox) r[ox] = src[ox * s];
                    std::fill(r + xhi, r + ow, 0.0f);
                }
                std::fill(row + yhi * ow, row + oh * ow, 0.0f);
            }
        }
}

/// Folds col (C*k*k x oh*ow, rows `ld` floats apart) back into one sample dx (C*H*W),
/// summing overlaps; dx is overwritten.
template <conv_geometry g>
inline void col2im(const float* __restrict col, float* __restrict dx, std::size_t ld) {
    constexpr std::size_t k = g.kernel, s = g.stride, p = g.padding;
    constexpr std::size_t oh = g.out_height, ow = g.out_width, hw = g.height * g.width;
    std::fill(dx, dx + g.in_size(), 0.0f);
    for (std::size_t c = 0; c < g.channels; ++c)
        for (std::size_t i = 0; i < k; ++i) {
            std::size_t ylo, yhi;
            g.valid_range(i, g.height, oh, ylo, yhi);
            for (std::size_t j = 0; j < k; ++j) {
                std::size_t xlo, xhi;
                g.valid_range(j, g.width, ow, xlo, xhi);
                const float* __restrict row = col + ((c * k + i) * k + j) * ld;
                for (std::size_t oy = ylo; oy < yhi; ++oy) {
                    const float* __restrict r = row + oy * ow;
                    float* __restrict dst = dx + c * hw + (oy * s + i - p) * g.width + j - p;
                    for (std::size_t ox = xlo; ox < xhi; ++ox) dst[ox * s] += r[ox];
                }
            }
        }
}

/// Scratch of a convolution layer, allocated once per batch size.
struct conv_buffers {
    matrix col;        // every sample's unfolded input (batch*cols x positions), kept for backward
    matrix dcol;       // one sample's dL/dcol per chunk of samples (chunks*cols x positions)
    matrix grad_part;  // weight and bias gradients of chunks 1.. (chunks-1 x c_out*(cols+1))
};

/// y (batch x c_out*oh*ow) = conv(x, w) + b, one GEMM per sample: each sample is unfolded
/// into its own block of col (batch blocks of cols x positions) and W col_s is written
/// straight into the sample's row of y. col is kept for the backward pass. Samples are
/// shared out between threads (parallel_for).
template <conv_geometry g>
void conv_forward(std::size_t out_channels, const matrix& x, const float* w, const float* b,
                  conv_buffers& buf, matrix& y) {
    const std::size_t batch = x.shape(0), n = g.positions(), kk = g.cols();
    const std::size_t out_size = out_channels * n;
    ensure_shape(y, batch, out_size);
    ensure_shape(buf.col, batch * kk, n);
    parallel_for(batch, [&](std::size_t, std::size_t lo, std::size_t hi) {
        for (std::size_t r = lo; r < hi; ++r) {
            float* c = buf.col.data() + r * kk * n;
            float* yr = y.data() + r * out_size;
            im2col<g>(x.data() + r * g.in_size(), c, n);
            for (std::size_t o = 0; o < out_channels; ++o) std::fill(yr + o * n, yr + (o + 1) * n, b[o]);
            gemm(transpose::no, transpose::no, out_channels, n, kk, 1.0f, w, kk, c, n, 1.0f, yr, n);
        }
    });
}

/// grad_w = sum over samples of dy_s col_s^T, grad_b = sums of dy, and, unless dx is
/// null, dx_s = col2im(W^T dy_s) per sample. With several threads each chunk of samples
/// sums its own gradients, added up in chunk order afterwards.
template <conv_geometry g>
void conv_backward(std::size_t out_channels, const float* w, const matrix& dy, float* grad_w,
                   float* grad_b, conv_buffers& buf, matrix* dx) {
    const std::size_t batch = dy.shape(0), n = g.positions(), kk = g.cols();
    const std::size_t out_size = out_channels * n, grad_size = out_channels * (kk + 1);
    const std::size_t chunks = parallel_chunks(batch);
    if (chunks > 1) ensure_shape(buf.grad_part, chunks - 1, grad_size);
    if (dx != nullptr) {
        ensure_shape(*dx, batch, g.in_size());
        ensure_shape(buf.dcol, chunks * kk, n);
    }
    parallel_for(batch, [&](std::size_t chunk, std::size_t lo, std::size_t hi) {
        float* gw = chunk == 0 ? grad_w : buf.grad_part.data() + (chunk - 1) * grad_size;
        float* gb = chunk == 0 ? grad_b : gw + out_channels * kk;
        float* dcol = dx != nullptr ? buf.dcol.data() + chunk * kk * n : nullptr;
        std::fill(gb, gb + out_channels, 0.0f);
        for (std::size_t r = lo; r < hi; ++r) {
            const float* d = dy.data() + r * out_size;
            gemm(transpose::no, transpose::yes, out_channels, kk, n, 1.0f, d, n,
                 buf.col.data() + r * kk * n, n, r == lo ? 0.0f : 1.0f, gw, kk);
            for (std::size_t o = 0; o < out_channels; ++o) {
                float sum = 0.0f;
                for (std::size_t j = 0; j < n; ++j) sum += d[o * n + j];
                gb[o] += sum;
            }
            if (dx != nullptr) {
                gemm(transpose::yes, transpose::no, kk, n, out_channels, 1.0f, w, kk, d, n, 0.0f,
                     dcol, n);
                col2im<g>(dcol, dx->data() + r * g.in_size(), n);
            }
        }
    });
    for (std::size_t c = 1; c < chunks; ++c) {
        const float* part = buf.grad_part.data() + (c - 1) * grad_size;
        for (std::size_t i = 0; i < out_channels * kk; ++i) grad_w[i] += part[i];
        for (std::size_t o = 0; o < out_channels; ++o) grad_b[o] += part[out_channels * kk + o];
    }
}

}  // namespace dynsparse::detail
