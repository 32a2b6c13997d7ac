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
// filter's non-zeros stream past. Filters go in pairs chosen to share many non-zero
// positions, so a slice both use is loaded once for the two (conv_taps::pair_filters). A
// 2x2 max pooling that follows can be applied as the accumulators are stored
// (pooled_block_vectors).
// The copy is k times the input; computing on "wide" rows of Wp columns straight from xp
// instead needs no copy but does Wp / OW times the multiply-adds.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dynsparse/detail/im2col.hpp"  // conv_geometry
#include "dynsparse/sparse/csr.hpp"      // csr_matrix, detail::float16

namespace dynsparse {

namespace detail {
/// Copies `rows` rows of 8 * Chunks floats (src rows `lds` apart) to dst and, if not null,
/// to dst2 (rows `ldd` apart in both, in increasing address order). Fixed-length copies:
/// with a run-time count GCC turns them into memcpy calls (3-4 us for the 1200 rows of
/// LeNet-5's second convolution).
template <std::size_t Chunks, bool Two>
inline void copy_rows_fixed(const float* src, std::size_t lds, float* dst, float* dst2, std::size_t ldd,
                            std::size_t rows) {
    using chunk = float __attribute__((vector_size(32)));
    for (std::size_t y = 0; y < rows; ++y, src += lds, dst += ldd, dst2 += Two ? ldd : 0)
        for (std::size_t e = 0; e < Chunks; ++e) {
            chunk v;
            std::memcpy(&v, src + 8 * e, sizeof v);
            std::memcpy(dst + 8 * e, &v, sizeof v);
            if constexpr (Two) std::memcpy(dst2 + 8 * e, &v, sizeof v);
        }
}
template <std::size_t Chunks>
inline void copy_rows_fixed(const float* src, std::size_t lds, float* dst, float* dst2, std::size_t ldd,
                            std::size_t rows) {
    if (dst2 != nullptr)
        copy_rows_fixed<Chunks, true>(src, lds, dst, dst2, ldd, rows);
    else
        copy_rows_fixed<Chunks, false>(src, lds, dst, dst2, ldd, rows);
}
/// Zeros [from, to): 16 floats per store, then 8, then one at a time.
inline void zero_floats(float* from, const float* to) {
    using zero16 = float __attribute__((vector_size(64)));
    using zero8 = float __attribute__((vector_size(32)));
    const zero16 z{};
    const zero8 z8{};
    for (; from + 16 <= to; from += 16) std::memcpy(from, &z, sizeof z);
    if (from + 8 <= to) {
        std::memcpy(from, &z8, sizeof z8);
        from += 8;
    }
    for (; from < to; ++from) *from = 0.0f;
}
inline void copy_rows(std::size_t chunks, const float* src, std::size_t lds, float* dst, float* dst2, std::size_t ldd,
                      std::size_t rows) {
    switch (chunks) {
        case 1: copy_rows_fixed<1>(src, lds, dst, dst2, ldd, rows); return;
        case 2: copy_rows_fixed<2>(src, lds, dst, dst2, ldd, rows); return;
        case 3: copy_rows_fixed<3>(src, lds, dst, dst2, ldd, rows); return;
        case 4: copy_rows_fixed<4>(src, lds, dst, dst2, ldd, rows); return;
        default:
            for (std::size_t y = 0; y < rows; ++y) {
                std::memcpy(dst + y * ldd, src + y * lds, chunks * 8 * sizeof(float));
                if (dst2 != nullptr) std::memcpy(dst2 + y * ldd, src + y * lds, chunks * 8 * sizeof(float));
            }
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
    std::size_t nonzeros = 0;            ///< of the weights this was made from
    /// Filters run in pairs (see pair_filters): pair p is filters first[p] and second[p]
    /// (second[p] == filters: first[p] alone). Its non-zeros in channel block b are three
    /// runs of entries: from segment[(p * blocks + b) * 3] those both filters have (value,
    /// value_second), then those of the first filter only (value), then those of the second
    /// only (value); each run ends where the next begins.
    std::vector<std::uint32_t> first, second;
    std::vector<std::uint32_t> segment;
    std::vector<std::uint32_t> offset;  ///< per entry: ((c * k + j) * copies + m) * plane_stride + lead[m] + i * OW
    std::vector<float> value, value_second;

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

    /// Pairs the filters (rows of w) so that the two of a pair share many non-zero positions:
    /// an input slice both use is loaded once for both (LeNet-5's second convolution: a fifth
    /// of the loads; its first: a third). Each filter in turn, if still alone, takes the one
    /// sharing most positions among the next 64 unpaired filters; an odd one out gets
    /// second == rows.
    static void pair_filters(const csr_matrix& w, std::vector<std::uint32_t>& first, std::vector<std::uint32_t>& second) {
        const std::size_t rows = w.rows;
        std::vector<char> paired(rows, 0);
        auto shared = [&](std::size_t a, std::size_t b) {
            std::size_t n = 0;
            for (std::uint32_t ka = w.row_start[a], kb = w.row_start[b]; ka < w.row_start[a + 1] && kb < w.row_start[b + 1];) {
                if (w.column[ka] == w.column[kb]) ++n, ++ka, ++kb;
                else if (w.column[ka] < w.column[kb]) ++ka;
                else ++kb;
            }
            return n;
        };
        first.clear();
        second.clear();
        for (std::size_t a = 0; a < rows; ++a) {
            if (paired[a]) continue;
            paired[a] = 1;
            std::size_t best = rows, best_shared = 0;
            for (std::size_t b = a + 1, looked = 0; b < rows && looked < 64; ++b) {
                if (paired[b]) continue;
                ++looked;
                const std::size_t n = shared(a, b);
                if (best == rows || n > best_shared) best = b, best_shared = n;
            }
            if (best < rows) paired[best] = 1;
            first.push_back(static_cast<std::uint32_t>(a));
            second.push_back(static_cast<std::uint32_t>(best));
        }
    }

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
        t.nonzeros = w.nonzeros();
        pair_filters(w, t.first, t.second);
        const std::size_t cb = t.channel_blocks(), per_block = t.channels_per_block * k * k;
        auto offset_of = [&](std::size_t col) {
            const std::size_t c = col / (k * k), i = col / k % k, j = col % k, m = t.copy_of[i];
            return static_cast<std::uint32_t>(((c * k + j) * t.copies() + m) * t.plane_stride + t.lead[m] + i * ow);
        };
        for (std::size_t p = 0; p < t.first.size(); ++p) {
            const std::uint32_t a = t.first[p], b = t.second[p];
            const bool single = b == w.rows;
            for (std::size_t blk = 0; blk < cb; ++blk) {
                const std::size_t lo = blk * per_block, hi = lo + per_block;  // columns of the block
                std::uint32_t ka = w.row_start[a], ea = w.row_start[a + 1];
                std::uint32_t kb = single ? 0 : w.row_start[b], eb = single ? 0 : w.row_start[b + 1];
                while (ka < ea && w.column[ka] < lo) ++ka;
                while (kb < eb && w.column[kb] < lo) ++kb;
                std::vector<std::uint32_t> only_a, only_b;
                t.segment.push_back(static_cast<std::uint32_t>(t.offset.size()));
                while ((ka < ea && w.column[ka] < hi) || (kb < eb && w.column[kb] < hi)) {
                    const std::uint32_t ca = ka < ea && w.column[ka] < hi ? w.column[ka] : UINT32_MAX;
                    const std::uint32_t cbb = kb < eb && w.column[kb] < hi ? w.column[kb] : UINT32_MAX;
                    if (ca == cbb) {
                        t.offset.push_back(offset_of(ca));
                        t.value.push_back(w.value[ka++]);
                        t.value_second.push_back(w.value[kb++]);
                    } else if (ca < cbb) {
                        only_a.push_back(ka++);
                    } else {
                        only_b.push_back(kb++);
                    }
                }
                for (int side = 0; side < 2; ++side) {
                    t.segment.push_back(static_cast<std::uint32_t>(t.offset.size()));
                    for (std::uint32_t n : side == 0 ? only_a : only_b) {
                        t.offset.push_back(offset_of(w.column[n]));
                        t.value.push_back(w.value[n]);
                        t.value_second.push_back(0.0f);
                    }
                }
            }
        }
        t.segment.push_back(static_cast<std::uint32_t>(t.offset.size()));
        return t;
    }

    /// Writes the shifted planes of one sample x (C x H x W) to xs (shifted_size() floats).
    /// Rows that lie inside the input are copied 8 floats at a time (a run-time row length of 8
    /// or 24 floats left GCC with scalar copies), to every copy of the plane as they are
    /// read; such a copy may write up to 7 floats past its row, which the next row or the
    /// zeros after the rows overwrite. Rows at a padded edge go float by float. The zeros
    /// before and after a plane's rows are written 16 at a time (as memset calls they were a
    /// fifth of this function's time). (Copying the first copy's rows to the second instead
    /// read 64 bytes just written by 32-byte stores, which the store buffer cannot forward.)
    void shift_sample(const float* __restrict x, float* __restrict xs) const {
        const std::size_t p = padding, ow = out_width, nc = copies();
        const float* const x_end = x + channels * height * width;
        const std::size_t chunks = (ow + 7) / 8;  // 8-float copies per row
        for (std::size_t c = 0; c < channels; ++c)
            for (std::size_t j = 0; j < kernel; ++j) {
                float* plane[2] = {nullptr, nullptr};
                float* d[2] = {nullptr, nullptr};  // first row inside the input, per copy
                for (std::size_t m = 0; m < nc; ++m) {
                    plane[m] = xs + ((c * kernel + j) * nc + m) * plane_stride;
                    d[m] = plane[m] + lead[m] + p * ow;
                    detail::zero_floats(plane[m], d[m]);
                }
                // Output columns [lo, hi) read input columns ox + j - p inside [0, W).
                const std::size_t hi = width + p > j ? std::min(ow, width + p - j) : 0;
                const std::size_t lo = std::min(hi, j >= p ? 0 : p - j);
                const float* src = x + c * height * width + j + lo - p;
                std::size_t y0 = 0;
                if (lo == 0 && hi == ow) {  // whole 8-float copies while they stay inside x
                    // rows r with r * width + 8 * chunks <= room (all of them but near the end of x)
                    const std::size_t room = static_cast<std::size_t>(x_end - src);
                    const std::size_t rows = room >= (height - 1) * width + 8 * chunks ? height
                                             : room < 8 * chunks                      ? 0
                                                                                      : (room - 8 * chunks) / width + 1;
                    detail::copy_rows(chunks, src, width, d[0], d[1], ow, rows);
                    y0 = rows;
                }
                for (std::size_t m = 0; m < nc; ++m) {
                    for (std::size_t y = y0; y < height; ++y) {
                        float* __restrict r = d[m] + y * ow;
                        for (std::size_t ox = 0; ox < lo; ++ox) r[ox] = 0.0f;
                        for (std::size_t ox = lo; ox < hi; ++ox) r[ox] = src[y * width + ox - lo];
                        for (std::size_t ox = hi; ox < ow; ++ox) r[ox] = 0.0f;
                    }
                    detail::zero_floats(d[m] + height * ow, plane[m] + plane_stride);
                }
            }
        std::fill(xs + channels * kernel * copies() * plane_stride, xs + shifted_size(), 0.0f);
    }
};

namespace detail {

/// Q vectors of an output plane from `bias` (first channel block) or from the partial sums
/// in y, of which `valid` floats belong to this plane.
template <int Q>
[[gnu::always_inline]] inline void load_block(float16 (&a)[Q], const float* __restrict y, bool from_bias, float bias,
                                              std::size_t valid) {
    for (int u = 0; u < Q; ++u) {
        const std::size_t at = 16 * static_cast<std::size_t>(u);
        a[u] = float16{} + bias;
        if (!from_bias && at + 16 <= valid) {
            std::memcpy(&a[u], y + at, sizeof(float16));
        } else if (!from_bias) {
            a[u] = float16{};
            if (at < valid) std::memcpy(&a[u], y + at, (valid - at) * sizeof(float));
        }
    }
}

/// Stores the `valid` floats of a (+ a2 when Two), with max(0, .) if Relu (relu_fn's rule:
/// NaN stays).
template <int Q, bool Relu, bool Two>
[[gnu::always_inline]] inline void store_block(const float16 (&a)[Q], const float16 (&a2)[Q], float* __restrict y,
                                               std::size_t valid) {
    for (int u = 0; u < Q; ++u) {
        float16 r = a[u];
        if constexpr (Two) r += a2[u];
        if constexpr (Relu) r = r < 0.0f ? float16{} : r;
        const std::size_t at = 16 * static_cast<std::size_t>(u);
        if (at + 16 <= valid)
            std::memcpy(y + at, &r, sizeof r);
        else if (at < valid)
            std::memcpy(y + at, &r, (valid - at) * sizeof(float));
    }
}

/// a (and a2, when Two) += val[k] * the Q vectors at xs + off[k], k in [k0, k1). With at
/// most 4 accumulators, even and odd entries go to the two sets: a single set of 4 is 4
/// chains of dependent multiply-adds, bound by their latency.
template <int Q, bool Two>
[[gnu::always_inline]] inline void accumulate_run(const std::uint32_t* __restrict off, const float* __restrict val,
                                                  std::uint32_t k0, std::uint32_t k1, const float* __restrict xs,
                                                  float16 (&a)[Q], float16 (&a2)[Q]) {
    std::uint32_t k = k0;
    if constexpr (Two)
        for (; k + 2 <= k1; k += 2) {
            const float* xr = xs + off[k];
            const float* xq = xs + off[k + 1];
            const float v = val[k], w = val[k + 1];
            for (int u = 0; u < Q; ++u) {
                float16 t, r;
                std::memcpy(&t, xr + 16 * u, sizeof t);
                std::memcpy(&r, xq + 16 * u, sizeof r);
                a[u] += v * t;
                a2[u] += w * r;
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
}

/// Makes the compiler load v once into a register: without this GCC folded the load into
/// each multiply-add that uses it, loading shared slices twice. Only where 16 floats fit
/// one register (AVX-512); elsewhere nothing.
[[gnu::always_inline]] inline void keep_in_register([[maybe_unused]] float16& v) {
#if defined(__AVX512F__)
    asm("" : "+v"(v));
#endif
}

/// The entries both filters of a pair have: each slice loaded once, added to a (val) and
/// b (val_b); the second sets take odd entries when Two.
template <int Q, bool Two>
[[gnu::always_inline]] inline void accumulate_shared(const std::uint32_t* __restrict off, const float* __restrict val,
                                                     const float* __restrict val_b, std::uint32_t k0, std::uint32_t k1,
                                                     const float* __restrict xs, float16 (&a)[Q], float16 (&b)[Q],
                                                     float16 (&a2)[Q], float16 (&b2)[Q]) {
    std::uint32_t k = k0;
    if constexpr (Two)
        for (; k + 2 <= k1; k += 2) {
            const float* xr = xs + off[k];
            const float* xq = xs + off[k + 1];
            const float v = val[k], w = val_b[k], v2 = val[k + 1], w2 = val_b[k + 1];
            for (int u = 0; u < Q; ++u) {
                float16 t, r;
                std::memcpy(&t, xr + 16 * u, sizeof t);
                std::memcpy(&r, xq + 16 * u, sizeof r);
                keep_in_register(t);
                keep_in_register(r);
                a[u] += v * t;
                b[u] += w * t;
                a2[u] += v2 * r;
                b2[u] += w2 * r;
            }
        }
    for (; k < k1; ++k) {
        const float* xr = xs + off[k];
        const float v = val[k], w = val_b[k];
        for (int u = 0; u < Q; ++u) {
            float16 t;
            std::memcpy(&t, xr + 16 * u, sizeof t);
            keep_in_register(t);
            a[u] += v * t;
            b[u] += w * t;
        }
    }
}

/// 2x2 max pooling, stride 2, of `rows` (even) rows of width w (even) at src into dst
/// (rows / 2 x w / 2), with the engine's max_pool rules: the larger of the two rows, then
/// of each horizontal pair. `pairs` (rows / 2 * w floats) is scratch for widths that are not a
/// multiple of 8.
inline void pool_2x2_rows(const float* __restrict src, std::size_t rows, std::size_t w, float* __restrict pairs,
                          float* __restrict dst) {
    if (w % 8 == 0) {  // 8 floats of a row pair at a time, in registers
        using f8 = float __attribute__((vector_size(32)));
        using f4 = float __attribute__((vector_size(16)));
        for (std::size_t q = 0; q < rows / 2; ++q)
            for (std::size_t e = 0; e < w; e += 8) {
                f8 top, bottom;
                std::memcpy(&top, src + 2 * q * w + e, sizeof top);
                std::memcpy(&bottom, src + (2 * q + 1) * w + e, sizeof bottom);
                const f8 m = bottom > top ? bottom : top;
                const f4 even = __builtin_shufflevector(m, m, 0, 2, 4, 6);
                const f4 odd = __builtin_shufflevector(m, m, 1, 3, 5, 7);
                const f4 r = even < odd ? odd : even;  // std::max(even, odd)
                std::memcpy(dst + q * (w / 2) + e / 2, &r, sizeof r);
            }
        return;
    }
    for (std::size_t q = 0; q < rows / 2; ++q)
        for (std::size_t e = 0; e < w; ++e) {
            const float top = src[2 * q * w + e], bottom = src[(2 * q + 1) * w + e];
            pairs[q * w + e] = bottom > top ? bottom : top;
        }
    for (std::size_t q = 0, n = rows / 2 * (w / 2); q < n; ++q) dst[q] = std::max(pairs[2 * q], pairs[2 * q + 1]);
}

/// Vectors [v0, v0 + Q) of every filter's output plane, channel block c, one filter pair at
/// a time (both planes' vectors in registers). One call per block of vectors and channels:
/// a call per filter cost a tenth of LeNet-5's second convolution. If `pooled` is given (last
/// channel block, blocks starting on even rows), the block is stored 2x2 max pooled there
/// (c_out x oh / 2 x ow / 2) instead of in y.
template <int Q, bool Relu>
[[gnu::noinline]] void direct_conv_filters(const conv_taps& t, std::size_t c, std::size_t v0, const float* bias,
                                           const float* xs, float* y, float* pooled) {
    constexpr bool two = Q <= 4;
    const std::size_t cb = t.channel_blocks(), plane = t.out_plane(), valid = plane - 16 * v0;
    const std::uint32_t* off = t.offset.data();
    const float* val = t.value.data();
    const std::size_t ow = t.out_width, pooled_plane = t.out_height / 2 * (ow / 2);
    const std::size_t rows = std::min<std::size_t>(16 * Q, valid) / ow;  // whole rows in the block (when pooling)
    float* const pooled_at = pooled == nullptr ? nullptr : pooled + 16 * v0 / ow / 2 * (ow / 2);
    alignas(64) float block[16 * Q], pairs[8 * Q];
    auto store = [&](const float16(&acc)[Q], const float16(&acc2)[Q], std::size_t o) {
        if (pooled == nullptr) {
            store_block<Q, Relu, two>(acc, acc2, y + o * plane, valid);
            return;
        }
        store_block<Q, Relu, two>(acc, acc2, block, 16 * Q);
        pool_2x2_rows(block, rows, ow, pairs, pooled_at + o * pooled_plane);
    };
    xs += 16 * v0;
    y += 16 * v0;
    for (std::size_t p = 0; p < t.first.size(); ++p) {
        const std::uint32_t* seg = t.segment.data() + (p * cb + c) * 3;
        if (c > 0 && seg[0] == seg[3] && !Relu && pooled == nullptr) continue;  // nothing to add
        const std::size_t oa = t.first[p], ob = t.second[p];
        const bool has_b = ob < t.filters;
        float16 a[Q], b[Q], a2[Q], b2[Q];
        load_block(a, y + oa * plane, c == 0, bias[oa], valid);
        if (has_b) load_block(b, y + ob * plane, c == 0, bias[ob], valid);
        for (int u = 0; u < Q; ++u) a2[u] = b2[u] = float16{};
        if (has_b) accumulate_shared<Q, two>(off, val, t.value_second.data(), seg[0], seg[1], xs, a, b, a2, b2);
        accumulate_run<Q, two>(off, val, seg[1], seg[2], xs, a, a2);
        store(a, a2, oa);
        if (!has_b) continue;
        accumulate_run<Q, two>(off, val, seg[2], seg[3], xs, b, b2);
        store(b, b2, ob);
    }
}

template <bool Relu>
inline void direct_conv_filters_q(std::size_t q, const conv_taps& t, std::size_t c, std::size_t v0, const float* bias,
                                  const float* xs, float* y, float* pooled) {
    switch (q) {
        case 1: direct_conv_filters<1, Relu>(t, c, v0, bias, xs, y, pooled); break;
        case 2: direct_conv_filters<2, Relu>(t, c, v0, bias, xs, y, pooled); break;
        case 3: direct_conv_filters<3, Relu>(t, c, v0, bias, xs, y, pooled); break;
        case 4: direct_conv_filters<4, Relu>(t, c, v0, bias, xs, y, pooled); break;
        case 5: direct_conv_filters<5, Relu>(t, c, v0, bias, xs, y, pooled); break;
        case 6: direct_conv_filters<6, Relu>(t, c, v0, bias, xs, y, pooled); break;
        case 7: direct_conv_filters<7, Relu>(t, c, v0, bias, xs, y, pooled); break;
        case 8: direct_conv_filters<8, Relu>(t, c, v0, bias, xs, y, pooled); break;
        case 9: direct_conv_filters<9, Relu>(t, c, v0, bias, xs, y, pooled); break;
        case 10: direct_conv_filters<10, Relu>(t, c, v0, bias, xs, y, pooled); break;
        case 11: direct_conv_filters<11, Relu>(t, c, v0, bias, xs, y, pooled); break;
        default: direct_conv_filters<12, Relu>(t, c, v0, bias, xs, y, pooled); break;
    }
}

}  // namespace detail

/// At most this many vectors of an output plane are accumulated in registers at a time
/// (12: LeNet-5's 24x24 planes in 3 blocks; 8 left 5 blocks and was 5% slower).
inline constexpr std::size_t max_q = 12;

/// Vectors of the output plane per block when a 2x2 max pooling is fused into the
/// convolution (blocks must start on even rows), or 0 when it cannot be (odd output sizes,
/// or a row pair whose width is not a whole number of vectors within max_q vectors).
inline std::size_t pooled_block_vectors(std::size_t out_height, std::size_t out_width) {
    if (out_height % 2 != 0 || out_width % 2 != 0) return 0;
    std::size_t unit = 1;  // vectors: the smallest whole number of row pairs
    while (unit * 16 % (2 * out_width) != 0 && unit <= max_q) ++unit;
    return unit > max_q ? 0 : max_q / unit * unit;
}

/// y = conv(x, W) + b, then max(0, .) if `relu`, for one sample whose shifted planes
/// (shift_sample) are xs (64-byte aligned for aligned loads); y is c_out x oh x ow.
/// Channel blocks outermost (see conv_taps::channel_block), then blocks of at most max_q
/// vectors of the output planes (as even as possible), then filters: each filter's block
/// is held in registers while its non-zeros of the channel block stream past.
/// With `pooled` (only if pooled_block_vectors() > 0), a 2x2 max pooling of stride 2
/// follows and its result (c_out x oh / 2 x ow / 2) goes to pooled, computed as each block
/// leaves the registers; y then only holds partial sums between channel blocks.
inline void direct_sparse_conv(const conv_taps& t, const float* bias, const float* xs, float* y, bool relu,
                               float* pooled = nullptr) {
    const std::size_t nv = t.vectors(), cb = t.channel_blocks();
    const std::size_t per_block = pooled == nullptr ? 0 : pooled_block_vectors(t.out_height, t.out_width);
    const std::size_t blocks = per_block > 0 ? (nv + per_block - 1) / per_block : (nv + max_q - 1) / max_q;
    for (std::size_t c = 0; c < cb; ++c) {
        const bool last = c + 1 == cb;
        for (std::size_t b = 0, v0 = 0; b < blocks; ++b) {
            const std::size_t v1 = per_block > 0 ? std::min(nv, v0 + per_block) : nv * (b + 1) / blocks;
            float* pool_to = last && per_block > 0 ? pooled : nullptr;
            if (relu && last)
                detail::direct_conv_filters_q<true>(v1 - v0, t, c, v0, bias, xs, y, pool_to);
            else
                detail::direct_conv_filters_q<false>(v1 - v0, t, c, v0, bias, xs, y, pool_to);
            v0 = v1;
        }
    }
}

}  // namespace dynsparse
