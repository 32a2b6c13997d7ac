#pragma once
// Direct sparse convolution (after Park et al., "Faster CNNs with direct sparse
// convolutions", ICLR 2017) for stride-1 convolutions, without the unfolded input.
//
// With stride 1, output (oy, ox) of filter o sums w[o, c, i, j] xp[c, oy + i, ox + j] over
// the zero-padded input xp (C x Hp x Wp). The sample is first copied into C x k "shifted
// planes": plane (c, j) holds xp[c, y, ox + j] for all Hp rows y and the OW output columns
// ox, row after row. Then the input that weight (c, i, j) multiplies, for the whole output
// plane of its filter, is the OH * OW contiguous floats of plane (c, j) from row i on: each
// non-zero weight is one offset, and a filter's output plane is a sum of shifted slices,
// one vectorised AXPY per non-zero, with the plane's accumulators in registers while the
// filter's non-zeros stream past. Several samples share a block of accumulators when a plane
// is small (each weight and offset loaded once for all of them).
// The copy is k times the input (9 600 floats for LeNet-5's second convolution, a third of
// its unfolded input); computing on "wide" rows of Wp columns straight from xp instead needs
// no copy but does Wp / OW times the multiply-adds (1.5x there) and was slower.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dynsparse/detail/im2col.hpp"  // conv_geometry
#include "dynsparse/sparse/csr.hpp"      // csr_matrix, detail::float16

namespace dynsparse {

namespace detail {
/// Copies `rows` rows of 8 * Chunks floats (src rows `lds` apart, dst rows `ldd` apart, in
/// increasing address order). Fixed-length copies: with a run-time count GCC turns them
/// into memcpy calls (3-4 us for the 1200 rows of LeNet-5's second convolution).
template <std::size_t Chunks>
inline void copy_rows_fixed(const float* src, std::size_t lds, float* dst, std::size_t ldd, std::size_t rows) {
    using chunk = float __attribute__((vector_size(32)));
    for (const float* end = src + rows * lds; src != end; src += lds, dst += ldd)
        for (std::size_t e = 0; e < Chunks; ++e) {
            chunk v;
            std::memcpy(&v, src + 8 * e, sizeof v);
            std::memcpy(dst + 8 * e, &v, sizeof v);
        }
}
/// Zeros [from, to) in 16-float stores; may write up to 15 floats past `to`.
inline void zero_floats(float* from, const float* to) {
    using zero16 = float __attribute__((vector_size(64)));
    const zero16 z{};
    for (; from < to; from += 16) std::memcpy(from, &z, sizeof z);
}
inline void copy_rows(std::size_t chunks, const float* src, std::size_t lds, float* dst, std::size_t ldd,
                      std::size_t rows) {
    switch (chunks) {
        case 1: copy_rows_fixed<1>(src, lds, dst, ldd, rows); return;
        case 2: copy_rows_fixed<2>(src, lds, dst, ldd, rows); return;
        case 3: copy_rows_fixed<3>(src, lds, dst, ldd, rows); return;
        case 4: copy_rows_fixed<4>(src, lds, dst, ldd, rows); return;
        default:
            for (std::size_t y = 0; y < rows; ++y) std::memcpy(dst + y * ldd, src + y * lds, chunks * 8 * sizeof(float));
    }
}
}  // namespace detail

/// A stride-1 convolution's non-zero weights as offsets into the shifted planes of a sample.
/// Loads are aligned: 64-byte loads that cross a cache line ran at less than half the rate
/// of aligned ones on the development machine. Slice i of a plane starts i * OW floats into
/// it, so each plane is stored once per residue of i * OW modulo 16 among i = 0..k-1 (LeNet's
/// OW of 24 and 8: residues 0 and 8, two copies), each copy shifted so that the slices
/// that use it start on a 16-float boundary (the sample's planes must start on a 64-byte one).
/// Other widths (more than two residues) keep one copy and load unaligned.
struct conv_taps {
    std::size_t filters = 0, channels = 0, kernel = 0, padding = 0, height = 0, width = 0;
    std::size_t out_height = 0, out_width = 0;
    std::size_t plane_stride = 0;       ///< floats per plane copy (a multiple of 16)
    std::vector<std::size_t> lead;      ///< per copy: floats of zeros before its rows
    std::vector<std::size_t> copy_of;   ///< per kernel row i: the copy its slices read
    std::size_t channels_per_block = 1;  ///< see channel_blocks()
    std::vector<std::uint32_t> block_start;  ///< filter o, channel block b: [o * (blocks + 1) + b]
    std::vector<std::uint32_t> offset;  ///< per non-zero, in the CSR's order: ((c * k + j) * copies + m) * plane_stride + lead[m] + i * OW
    std::vector<float> value;

    std::size_t copies() const { return lead.size(); }
    /// Floats of one sample's shifted planes for geometry g, at most (before from_csr).
    static std::size_t shifted_bound(const detail::conv_geometry& g) {
        return g.channels * g.kernel * 2 * ((g.height + 2 * g.padding) * g.out_width + 30) + 16;
    }
    /// The channels are taken in blocks whose planes fit in 48 KiB, so they stay in the L1
    /// cache while every filter reads them (LeNet-5's second convolution: 90 KiB of planes
    /// for 20 channels, 3 blocks; the first, 1 channel, 1 block). Each filter's partial sums
    /// wait in y between blocks.
    std::size_t channel_blocks() const { return (channels + channels_per_block - 1) / channels_per_block; }
    std::size_t out_plane() const { return out_height * out_width; }
    std::size_t vectors() const { return (out_plane() + 15) / 16; }  ///< 16-float vectors per output plane
    /// Floats of one sample's shifted planes, with the slack the last vector reads past them
    /// (a multiple of 16, so consecutive samples stay aligned).
    std::size_t shifted_size() const { return channels * kernel * copies() * plane_stride + 16; }

    /// From the convolution's CSR weights (c_out x c_in*k*k, columns (c, i, j)); stride 1 only.
    static conv_taps from_csr(const csr_matrix& w, const detail::conv_geometry& g) {
        conv_taps t;
        t.filters = w.rows;
        t.channels = g.channels;
        t.kernel = g.kernel;
        t.padding = g.padding;
        t.height = g.height;
        t.width = g.width;
        t.out_height = g.out_height;
        t.out_width = g.out_width;
        const std::size_t k = g.kernel, ow = g.out_width;
        for (std::size_t i = 0; i < k; ++i) {
            const std::size_t lead = (16 - i * ow % 16) % 16;
            const auto at = std::find(t.lead.begin(), t.lead.end(), lead);
            t.copy_of.push_back(static_cast<std::size_t>(at - t.lead.begin()));
            if (at == t.lead.end()) t.lead.push_back(lead);
        }
        if (t.lead.size() > 2) {  // OW not a multiple of 8: one copy, unaligned loads
            t.lead = {0};
            t.copy_of.assign(k, 0);
        }
        t.plane_stride = (15 + (g.height + 2 * g.padding) * ow + 15) / 16 * 16;
        const std::size_t per_channel = k * t.copies() * t.plane_stride * sizeof(float);
        t.channels_per_block = std::max<std::size_t>(1, (std::size_t{48} << 10) / per_channel);
        const std::size_t cb = t.channel_blocks();
        for (std::size_t o = 0; o < w.rows; ++o)
            for (std::size_t b = 0; b <= cb; ++b) {  // columns are sorted, channel-major
                std::uint32_t n = w.row_start[o];
                while (n < w.row_start[o + 1] && w.column[n] / (k * k) < b * t.channels_per_block) ++n;
                t.block_start.push_back(n);
            }
        t.value = w.value;
        t.offset.resize(w.column.size());
        for (std::size_t n = 0; n < w.column.size(); ++n) {
            const std::size_t col = w.column[n], c = col / (k * k), i = col / k % k, j = col % k, m = t.copy_of[i];
            t.offset[n] = static_cast<std::uint32_t>(((c * k + j) * t.copies() + m) * t.plane_stride + t.lead[m] + i * ow);
        }
        return t;
    }

    /// Writes the shifted planes of one sample x (C x H x W) to xs (shifted_size() floats).
    /// Rows that lie inside the input are copied 8 floats at a time (a run-time row length of 8
    /// or 24 floats left GCC with scalar copies); such a copy may write up to 7 floats past
    /// its row, which the next row, the zeros after the rows or the slack overwrite, as
    /// everything is written in address order. Rows at a padded edge go float by float. The
    /// zeros before and after a plane's rows are written 16 at a time in the same way (as
    /// memset calls they were a fifth of this function's time). Further copies of a plane
    /// move the first copy's rows as one contiguous block.
    void shift_sample(const float* __restrict x, float* __restrict xs) const {
        const std::size_t p = padding, ow = out_width, hp = height + 2 * p;
        const float* const x_end = x + channels * height * width;
        const std::size_t chunks = (ow + 7) / 8;  // 8-float copies per row
        for (std::size_t c = 0; c < channels; ++c)
            for (std::size_t j = 0; j < kernel; ++j)
                for (std::size_t m = 0; m < copies(); ++m) {
                    float* plane = xs + ((c * kernel + j) * copies() + m) * plane_stride;
                    float* dst = plane + lead[m];
                    if (m > 0) {  // the first copy's rows, contiguous: whole 8-float moves
                        const float* first = xs + (c * kernel + j) * copies() * plane_stride + lead[0];
                        detail::zero_floats(plane, dst);
                        using move8 = float __attribute__((vector_size(32)));
                        for (std::size_t e = 0; e < hp * ow; e += 8) {  // reads and writes up to 7 more
                            move8 v;
                            std::memcpy(&v, first + e, sizeof v);
                            std::memcpy(dst + e, &v, sizeof v);
                        }
                        detail::zero_floats(dst + hp * ow, plane + plane_stride);
                        continue;
                    }
                    // Output columns [lo, hi) read input columns ox + j - p inside [0, W).
                    const std::size_t hi = width + p > j ? std::min(ow, width + p - j) : 0;
                    const std::size_t lo = std::min(hi, j >= p ? 0 : p - j);
                    detail::zero_floats(plane, dst + p * ow);
                    const float* src = x + c * height * width + j + lo - p;
                    float* d = dst + p * ow;
                    std::size_t y = 0;
                    if (lo == 0 && hi == ow) {  // whole 8-float copies while they stay inside x
                        const std::size_t room = static_cast<std::size_t>(x_end - src);  // rows r with r * width + 8 * chunks <= room
                        const std::size_t rows = room < 8 * chunks ? 0 : std::min(height, (room - 8 * chunks) / width + 1);
                        detail::copy_rows(chunks, src, width, d, ow, rows);
                        y = rows;
                    }
                    for (; y < height; ++y) {
                        float* __restrict r = d + y * ow;
                        for (std::size_t ox = 0; ox < lo; ++ox) r[ox] = 0.0f;
                        for (std::size_t ox = lo; ox < hi; ++ox) r[ox] = src[y * width + ox - lo];
                        for (std::size_t ox = hi; ox < ow; ++ox) r[ox] = 0.0f;
                    }
                    detail::zero_floats(d + height * ow, plane + plane_stride);
                }
        std::fill(xs + channels * kernel * copies() * plane_stride, xs + shifted_size(), 0.0f);
    }
};

namespace detail {

/// Q vectors of one filter's output plane, starting from `bias` (first channel block) or
/// from the partial sums in y, plus the non-zeros [k0, k1); `valid` floats of the Q vectors
/// are stored (the rest belong to the next plane), with max(0, .) if Relu (relu_fn's rule:
/// NaN stays). With at most 4 accumulators, even and odd non-zeros go to two sets added
/// at the end: a single set of 4 is 4 chains of dependent multiply-adds, bound by their
/// latency.
template <int Q, bool Relu>
[[gnu::always_inline]] inline void direct_conv_block(const std::uint32_t* __restrict off, const float* __restrict val, std::uint32_t k0,
                              std::uint32_t k1, const float* __restrict xs, bool from_bias, float bias,
                              float* __restrict y, std::size_t valid) {
    constexpr bool two_sets = Q <= 4;
    float16 a[Q], b[Q];
    for (int u = 0; u < Q; ++u) {
        const std::size_t at = 16 * static_cast<std::size_t>(u);
        a[u] = float16{} + bias;
        if (!from_bias && at + 16 <= valid) {
            std::memcpy(&a[u], y + at, sizeof(float16));
        } else if (!from_bias) {
            a[u] = float16{};
            if (at < valid) std::memcpy(&a[u], y + at, (valid - at) * sizeof(float));
        }
        b[u] = float16{};
    }
    std::uint32_t k = k0;
    if constexpr (two_sets)
        for (; k + 2 <= k1; k += 2) {
            const float* xr = xs + off[k];
            const float* xq = xs + off[k + 1];
            const float v = val[k], w = val[k + 1];
            for (int u = 0; u < Q; ++u) {
                float16 t, r;
                std::memcpy(&t, xr + 16 * u, sizeof t);
                std::memcpy(&r, xq + 16 * u, sizeof r);
                a[u] += v * t;
                b[u] += w * r;
            }
        }
    for (; k < k1; ++k) {
        const float* xr = xs + off[k];
        const float v = val[k];
        for (int u = 0; u < Q; ++u) {
            float16 t;
            std::memcpy(&t, xr + 16 * u, sizeof t);
            a[u] += v * t;
        }
    }
    for (int u = 0; u < Q; ++u) {
        float16 r = a[u];
        if constexpr (two_sets) r += b[u];
        if constexpr (Relu) r = r < 0.0f ? float16{} : r;
        const std::size_t at = 16 * static_cast<std::size_t>(u);
        if (at + 16 <= valid)
            std::memcpy(y + at, &r, sizeof r);
        else if (at < valid)
            std::memcpy(y + at, &r, (valid - at) * sizeof(float));
    }
}

/// direct_conv_block for every filter: vectors [v0, v0 + Q) of each output plane, channel
/// block c. One call per block of vectors and channels (a call per filter cost a tenth of
/// LeNet-5's second convolution).
template <int Q, bool Relu>
[[gnu::noinline]] void direct_conv_filters(const conv_taps& t, std::size_t c, std::size_t v0, const float* bias,
                                           const float* xs, float* y) {
    const std::size_t cb = t.channel_blocks(), plane = t.out_plane();
    const std::uint32_t* starts = t.block_start.data() + c;
    for (std::size_t o = 0; o < t.filters; ++o, starts += cb + 1) {
        const std::uint32_t k0 = starts[0], k1 = starts[1];
        if (c > 0 && k0 == k1 && !Relu) continue;  // nothing to add
        direct_conv_block<Q, Relu>(t.offset.data(), t.value.data(), k0, k1, xs + 16 * v0, c == 0, bias[o],
                                   y + o * plane + 16 * v0, plane - 16 * v0);
    }
}

template <bool Relu>
inline void direct_conv_filters_q(std::size_t q, const conv_taps& t, std::size_t c, std::size_t v0, const float* bias,
                                  const float* xs, float* y) {
    switch (q) {
        case 1: direct_conv_filters<1, Relu>(t, c, v0, bias, xs, y); break;
        case 2: direct_conv_filters<2, Relu>(t, c, v0, bias, xs, y); break;
        case 3: direct_conv_filters<3, Relu>(t, c, v0, bias, xs, y); break;
        case 4: direct_conv_filters<4, Relu>(t, c, v0, bias, xs, y); break;
        case 5: direct_conv_filters<5, Relu>(t, c, v0, bias, xs, y); break;
        case 6: direct_conv_filters<6, Relu>(t, c, v0, bias, xs, y); break;
        case 7: direct_conv_filters<7, Relu>(t, c, v0, bias, xs, y); break;
        case 8: direct_conv_filters<8, Relu>(t, c, v0, bias, xs, y); break;
        case 9: direct_conv_filters<9, Relu>(t, c, v0, bias, xs, y); break;
        case 10: direct_conv_filters<10, Relu>(t, c, v0, bias, xs, y); break;
        case 11: direct_conv_filters<11, Relu>(t, c, v0, bias, xs, y); break;
        default: direct_conv_filters<12, Relu>(t, c, v0, bias, xs, y); break;
    }
}

}  // namespace detail

/// At most this many vectors of an output plane are accumulated in registers at a time
/// (12: LeNet-5's 24x24 planes in 3 blocks; 8 left 5 blocks and was 5% slower).
inline constexpr std::size_t max_q = 12;

/// y = conv(x, W) + b, then max(0, .) if `relu`, for one sample whose shifted planes
/// (shift_sample) are xs (64-byte aligned for aligned loads); y is c_out x oh x ow.
/// Channel blocks outermost (see conv_taps::channel_block), then blocks of at most max_q
/// vectors of the output planes (as even as possible), then filters: each filter's block
/// is held in registers while its non-zeros of the channel block stream past.
inline void direct_sparse_conv(const conv_taps& t, const float* bias, const float* xs, float* y, bool relu) {
    const std::size_t nv = t.vectors(), blocks = (nv + max_q - 1) / max_q, cb = t.channel_blocks();
    for (std::size_t c = 0; c < cb; ++c) {
        const bool last = c + 1 == cb;
        for (std::size_t b = 0, v0 = 0; b < blocks; ++b) {
            const std::size_t v1 = nv * (b + 1) / blocks;
            if (relu && last)
                detail::direct_conv_filters_q<true>(v1 - v0, t, c, v0, bias, xs, y);
            else
                detail::direct_conv_filters_q<false>(v1 - v0, t, c, v0, bias, xs, y);
            v0 = v1;
        }
    }
}

}  // namespace dynsparse
