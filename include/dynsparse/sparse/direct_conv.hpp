#pragma once
// Direct sparse convolution (after Park et al., "Faster CNNs with direct sparse
// convolutions", ICLR 2017) for stride-1 convolutions: no unfolded input.
//
// With stride 1, output (oy, ox) of filter o sums w[o, c, i, j] x[c, oy + i, ox + j] over
// the padded input (C x Hp x Wp). Computed on "wide" output rows of Wp columns (the last
// k - 1 of each row are not outputs and are dropped when the rows are stored), output
// position q = oy * Wp + ox reads x at q + c*Hp*Wp + i*Wp + j. So each non-zero weight is one
// offset into the padded sample, and the whole output plane of a filter is one AXPY of the
// sample shifted by that offset: contiguous, vectorised, and the plane's accumulators stay in
// registers while the filter's non-zeros stream past. Each block of accumulators covers one
// or more samples (several samples per weight: the weight and its offset are loaded once for
// all of them).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dynsparse/detail/im2col.hpp"  // conv_geometry
#include "dynsparse/sparse/csr.hpp"      // csr_matrix, detail::float16

namespace dynsparse {

/// A stride-1 convolution's non-zero weights as offsets into one padded input sample.
struct conv_taps {
    std::size_t filters = 0;
    std::size_t channels = 0, padded_height = 0, padded_width = 0, padding = 0, height = 0, width = 0;
    std::size_t out_height = 0, out_width = 0;
    std::vector<std::uint32_t> start;   ///< filters + 1 offsets into offset/value
    std::vector<std::uint32_t> offset;  ///< c * Hp * Wp + i * Wp + j
    std::vector<float> value;

    std::size_t wide_size() const { return out_height * padded_width; }    ///< wide output plane
    std::size_t vectors() const { return (wide_size() + 15) / 16; }        ///< its 16-float vectors
    /// Floats of one padded sample: the sample plus the slack the last vector reads past it.
    std::size_t padded_sample() const { return channels * padded_height * padded_width + padded_width + 32; }

    /// From the convolution's CSR weights (c_out x c_in*k*k, columns (c, i, j)); stride 1 only.
    static conv_taps from_csr(const csr_matrix& w, const detail::conv_geometry& g) {
        conv_taps t;
        t.filters = w.rows;
        t.channels = g.channels;
        t.padding = g.padding;
        t.height = g.height;
        t.width = g.width;
        t.padded_height = g.height + 2 * g.padding;
        t.padded_width = g.width + 2 * g.padding;
        t.out_height = g.out_height;
        t.out_width = g.out_width;
        const std::size_t k = g.kernel, plane = t.padded_height * t.padded_width;
        t.start = w.row_start;
        t.value = w.value;
        t.offset.resize(w.column.size());
        for (std::size_t n = 0; n < w.column.size(); ++n) {
            const std::size_t col = w.column[n], c = col / (k * k), i = col / k % k, j = col % k;
            t.offset[n] = static_cast<std::uint32_t>(c * plane + i * t.padded_width + j);
        }
        return t;
    }

    /// Copies one sample (C x H x W) into its padded layout (zeros around it and after it).
    void pad_sample(const float* __restrict x, float* __restrict xp) const {
        const std::size_t p = padding, wp = padded_width;
        if (p == 0) {
            std::memcpy(xp, x, channels * height * width * sizeof(float));
            std::memset(xp + channels * height * width, 0, (padded_sample() - channels * height * width) * sizeof(float));
            return;
        }
        std::memset(xp, 0, padded_sample() * sizeof(float));
        for (std::size_t c = 0; c < channels; ++c)
            for (std::size_t y = 0; y < height; ++y)
                std::memcpy(xp + (c * padded_height + y + p) * wp + p, x + (c * height + y) * width,
                            width * sizeof(float));
    }
};

namespace detail {

/// Accumulates Q vectors of the wide output plane, for S samples (padded samples
/// `sample_stride` floats apart), over the non-zeros [k0, k1) of one filter, starting
/// from `bias`; writes the S x Q vectors to out (S planes `out_stride` floats apart).
template <int S, int Q>
inline void direct_conv_block(const std::uint32_t* __restrict off, const float* __restrict val, std::uint32_t k0,
                              std::uint32_t k1, const float* __restrict x, std::size_t sample_stride, float bias,
                              float* __restrict out, std::size_t out_stride) {
    float16 a[S][Q];
    for (int s = 0; s < S; ++s)
        for (int u = 0; u < Q; ++u) a[s][u] = float16{} + bias;
    for (std::uint32_t k = k0; k < k1; ++k) {
        const float* xr = x + off[k];
        const float v = val[k];
        for (int s = 0; s < S; ++s)
            for (int u = 0; u < Q; ++u) {
                float16 t;
                std::memcpy(&t, xr + s * sample_stride + 16 * u, sizeof t);
                a[s][u] += v * t;
            }
    }
    for (int s = 0; s < S; ++s)
        for (int u = 0; u < Q; ++u) std::memcpy(out + s * out_stride + 16 * u, &a[s][u], sizeof(float16));
}

template <int S>
inline void direct_conv_block_q(int q, const std::uint32_t* off, const float* val, std::uint32_t k0, std::uint32_t k1,
                                const float* x, std::size_t sample_stride, float bias, float* out,
                                std::size_t out_stride) {
    switch (q) {
        case 1: direct_conv_block<S, 1>(off, val, k0, k1, x, sample_stride, bias, out, out_stride); break;
        case 2: direct_conv_block<S, 2>(off, val, k0, k1, x, sample_stride, bias, out, out_stride); break;
        case 3: direct_conv_block<S, 3>(off, val, k0, k1, x, sample_stride, bias, out, out_stride); break;
        case 4: direct_conv_block<S, 4>(off, val, k0, k1, x, sample_stride, bias, out, out_stride); break;
        case 5: direct_conv_block<S, 5>(off, val, k0, k1, x, sample_stride, bias, out, out_stride); break;
        case 6: direct_conv_block<S, 6>(off, val, k0, k1, x, sample_stride, bias, out, out_stride); break;
        case 7: direct_conv_block<S, 7>(off, val, k0, k1, x, sample_stride, bias, out, out_stride); break;
        default: direct_conv_block<S, 8>(off, val, k0, k1, x, sample_stride, bias, out, out_stride); break;
    }
}

}  // namespace detail

/// y = conv(x, W) + b for `samples` padded samples xp (padded_sample() floats apart, made by
/// pad_sample); y holds each sample's c_out x oh x ow output (rows `y_stride` floats
/// apart). With `relu`, max(0, .) is applied on the way out (relu_fn's rule: NaN stays).
/// `wide` is scratch of at least samples * vectors() * 16 floats.
/// Up to 2 samples share each weight when a filter's wide plane is at most 8 vectors, so
/// a block holds at most 16 accumulators (of the 32 AVX-512 registers).
inline void direct_sparse_conv(const conv_taps& t, const float* bias, const float* xp, std::size_t samples, float* y,
                               std::size_t y_stride, bool relu, float* wide) {
    const std::size_t nv = t.vectors(), ps = t.padded_sample(), ws = nv * 16;
    const std::size_t oh = t.out_height, ow = t.out_width, wp = t.padded_width, plane = oh * ow;
    // Vector blocks of at most 8, as even as possible.
    const std::size_t blocks = (nv + 7) / 8;
    const std::uint32_t* off = t.offset.data();
    const float* val = t.value.data();
    const int pair = nv <= 8 ? 2 : 1;
    for (std::size_t s0 = 0; s0 < samples; s0 += static_cast<std::size_t>(pair)) {
        const std::size_t group = s0 + 2 <= samples && pair == 2 ? 2 : 1;
        const float* x = xp + s0 * ps;
        for (std::size_t o = 0; o < t.filters; ++o) {
            const std::uint32_t k0 = t.start[o], k1 = t.start[o + 1];
            for (std::size_t b = 0, v0 = 0; b < blocks; ++b) {
                const std::size_t v1 = (nv * (b + 1)) / blocks, q = v1 - v0;
                if (group == 2)
                    detail::direct_conv_block_q<2>(static_cast<int>(q), off, val, k0, k1, x + 16 * v0, ps, bias[o],
                                                   wide + 16 * v0, ws);
                else
                    detail::direct_conv_block_q<1>(static_cast<int>(q), off, val, k0, k1, x + 16 * v0, ps, bias[o],
                                                   wide + 16 * v0, ws);
                v0 = v1;
            }
            // Store the valid columns of each wide row.
            for (std::size_t s = 0; s < group; ++s) {
                float* __restrict dst = y + (s0 + s) * y_stride + o * plane;
                const float* __restrict src = wide + s * ws;
                for (std::size_t oy = 0; oy < oh; ++oy)
                    for (std::size_t ox = 0; ox < ow; ++ox) {
                        const float v = src[oy * wp + ox];
                        dst[oy * ow + ox] = relu && v < 0.0f ? 0.0f : v;
                    }
            }
        }
    }
}

}  // namespace dynsparse
