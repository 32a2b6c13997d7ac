#pragma once
// The forward and input-gradient products of a masked fully connected layer on its kept
// weights only: y = x (W*M)^T + b and dx = dy (W*M), with W*M held as compressed rows
// (kept_rows). Both products run on blocks of 32 samples stored transposed (features x
// 32): each kept weight then costs one multiply-add over 32 contiguous floats, held in
// four 8-lane registers. The input gradient scatters each row's kept weights into the
// block of dx, so one compressed form serves both products. The same two loops
// (kept_rows_multiply, kept_rows_multiply_transposed) serve convolutions on their
// unfolded input, whose rows are already contiguous.
//
// Blocks are independent and each is summed in the same order whatever thread runs it,
// so the results are the same for any thread count. The weight gradient dy^T x stays a
// dense GEMM (DST needs it for every weight).
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "dynsparse/core/parallel.hpp"
#include "dynsparse/core/tensor.hpp"

namespace dynsparse::detail {

/// Kept weights of an out x in matrix by row: row r's entries are [start[r], end[r]) of
/// index (the columns) and value. Rows are laid out at offsets given by an upper bound of
/// their kept counts, so rows are compressed independently (and in parallel).
struct kept_rows {
    std::vector<std::uint32_t> start, end, index;
    std::vector<float> value;
    std::size_t kept = 0;  ///< entries held (non-zero masked weights)

    /// Raw pointers for the kernels (a float store could alias the vectors' own data).
    struct view {
        const std::uint32_t *start, *end, *index;
        const float* value;
    };
    view raw() const { return {start.data(), end.data(), index.data(), value.data()}; }

    /// From W*M (zeros where pruned); row_bound[r] >= the number of non-zeros of row r
    /// (the mask's kept count: a kept weight that is exactly 0 adds nothing and is left out).
    void build(const float* wm, std::size_t out, std::size_t in, const std::uint32_t* row_bound) {
        build_columns(wm, out, in, 0, in, row_bound);
    }

    /// The same for columns [c0, c1) of W*M (rows `ld` floats apart), indices counted
    /// from c0: one block of a matrix such as an LSTM's [W_ih | W_hh].
    void build_columns(const float* wm, std::size_t out, std::size_t ld, std::size_t c0, std::size_t c1,
                       const std::uint32_t* row_bound) {
        const std::size_t in = c1 - c0;
        start.resize(out);
        end.resize(out);
        std::size_t at = 0;
        for (std::size_t r = 0; r < out; ++r) {
            start[r] = static_cast<std::uint32_t>(at);
            at += row_bound[r];
        }
        index.resize(at);
        value.resize(at);
        std::vector<std::size_t> per_chunk(parallel_chunks(out, build_grain(in)), 0);
        parallel_for(out, [&](std::size_t chunk, std::size_t lo, std::size_t hi) {
            std::size_t n = 0;
            for (std::size_t r = lo; r < hi; ++r) {
                const std::uint32_t k =
                    row_bound[r] == 0 ? 0 : compress_row(wm + r * ld + c0, in, start[r], row_bound[r]);
                end[r] = start[r] + k;
                n += k;
            }
            per_chunk[chunk] = n;
        }, build_grain(in));
        kept = 0;
        for (std::size_t n : per_chunk) kept += n;
    }

private:
    static std::size_t build_grain(std::size_t in) { return (std::size_t{1} << 15) / (in + 1) + 1; }

    /// Writes row w's non-zeros (at most cap) from offset `at`; returns how many. Tests 16
    /// columns at a time (a compare and a bit mask per 4 on x86) and visits only the set
    /// bits: at a few percent kept most groups hold none or one.
    std::uint32_t compress_row(const float* w, std::size_t in, std::uint32_t at, std::uint32_t cap) {
        std::uint32_t* idx = index.data() + at;
        float* val = value.data() + at;
        std::uint32_t k = 0;
        std::size_t c = 0;
#if defined(__SSE2__)
        const __m128 zero = _mm_setzero_ps();
        for (; c + 16 <= in; c += 16) {
            auto bits = static_cast<std::uint32_t>(
                _mm_movemask_ps(_mm_cmpneq_ps(_mm_loadu_ps(w + c), zero)) |
                _mm_movemask_ps(_mm_cmpneq_ps(_mm_loadu_ps(w + c + 4), zero)) << 4 |
                _mm_movemask_ps(_mm_cmpneq_ps(_mm_loadu_ps(w + c + 8), zero)) << 8 |
                _mm_movemask_ps(_mm_cmpneq_ps(_mm_loadu_ps(w + c + 12), zero)) << 12);
            if (k + static_cast<std::uint32_t>(std::popcount(bits)) > cap) break;  // a bound too low: stop at cap
            for (; bits != 0; bits &= bits - 1) {
                const std::size_t j = c + static_cast<std::size_t>(std::countr_zero(bits));
                idx[k] = static_cast<std::uint32_t>(j);
                val[k++] = w[j];
            }
        }
#endif
        for (; c < in && k < cap; ++c)
            if (w[c] != 0.0f) {
                idx[k] = static_cast<std::uint32_t>(c);
                val[k++] = w[c];
            }
        return k;
    }
};

/// 32 floats of one block line, as four 8-lane vectors (registers on AVX2, pairs on SSE).
/// Loads and stores go through a float-aligned vector type (GCC lets it alias float), so
/// the lines stay in registers; no vector crosses a function boundary by value (that would
/// depend on the target's ABI).
struct block_lanes {
    using v8 = float __attribute__((vector_size(32)));
    using v8_unaligned = float __attribute__((vector_size(32), aligned(4)));
    static constexpr std::size_t width = 32;
    v8 a, b, c, d;

    void load(const float* p) {
        a = *reinterpret_cast<const v8_unaligned*>(p);
        b = *reinterpret_cast<const v8_unaligned*>(p + 8);
        c = *reinterpret_cast<const v8_unaligned*>(p + 16);
        d = *reinterpret_cast<const v8_unaligned*>(p + 24);
    }
    void store(float* p) const {
        *reinterpret_cast<v8_unaligned*>(p) = a;
        *reinterpret_cast<v8_unaligned*>(p + 8) = b;
        *reinterpret_cast<v8_unaligned*>(p + 16) = c;
        *reinterpret_cast<v8_unaligned*>(p + 24) = d;
    }
    void fill(float s) { a = b = c = d = v8{} + s; }
    /// this += s * src
    void add_scaled(float s, const block_lanes& src) {
        a += s * src.a;
        b += s * src.b;
        c += s * src.c;
        d += s * src.d;
    }
};

/// t (cols x 32) = rows [r0, r0 + n) of a (rows x cols, rows `lda` floats apart),
/// transposed; lanes n..31 are 0.
inline void transpose_to_block(const float* a, std::size_t cols, std::size_t lda, std::size_t r0, std::size_t n,
                               float* t) {
    constexpr std::size_t w = block_lanes::width;
    if (n < w) std::fill(t, t + cols * w, 0.0f);
    constexpr std::size_t tile = 8;
    for (std::size_t c0 = 0; c0 < cols; c0 += tile) {
        const std::size_t c1 = std::min(cols, c0 + tile);
        for (std::size_t s = 0; s < n; ++s) {
            const float* src = a + (r0 + s) * lda;
            for (std::size_t c = c0; c < c1; ++c) t[c * w + s] = src[c];
        }
    }
}

/// Rows [r0, r0 + n) of a (rows x cols, `lda` apart) = (or += with Accumulate) the first n
/// lanes of t (cols x 32), transposed back.
template <bool Accumulate = false>
inline void transpose_from_block(const float* t, std::size_t cols, std::size_t lda, std::size_t r0, std::size_t n,
                                 float* a) {
    constexpr std::size_t w = block_lanes::width;
    constexpr std::size_t tile = 8;
    for (std::size_t c0 = 0; c0 < cols; c0 += tile) {
        const std::size_t c1 = std::min(cols, c0 + tile);
        for (std::size_t s = 0; s < n; ++s) {
            float* dst = a + (r0 + s) * lda;
            for (std::size_t c = c0; c < c1; ++c) {
                if constexpr (Accumulate)
                    dst[c] += t[c * w + s];
                else
                    dst[c] = t[c * w + s];
            }
        }
    }
}

/// out (rows x ld) = init + W*M in, for in (in_rows x ld) with its columns contiguous (a
/// convolution's unfolded input, or a transposed block of 32 samples): each kept weight
/// adds a multiple of one line of `in` to its output row, 32 columns at a time in
/// registers. init holds one value per output row, or is null (0).
inline void kept_rows_multiply(const kept_rows& w, std::size_t rows, const float* in, std::size_t ld,
                               float* out, const float* init) {
    constexpr std::size_t lanes = block_lanes::width;
    const kept_rows::view v = w.raw();
    const std::uint32_t *start = v.start, *end = v.end, *index = v.index;
    const float* value = v.value;
    const std::size_t body = ld - ld % lanes;
    for (std::size_t r = 0; r < rows; ++r) {
        const float r0 = init != nullptr ? init[r] : 0.0f;
        float* o = out + r * ld;
        for (std::size_t p = 0; p < body; p += lanes) {
            block_lanes acc, line;
            acc.fill(r0);
            for (std::uint32_t k = start[r]; k < end[r]; ++k) {
                line.load(in + std::size_t{index[k]} * ld + p);
                acc.add_scaled(value[k], line);
            }
            acc.store(o + p);
        }
        for (std::size_t p = body; p < ld; ++p) {
            float acc = r0;
            for (std::uint32_t k = start[r]; k < end[r]; ++k) acc += value[k] * in[std::size_t{index[k]} * ld + p];
            o[p] = acc;
        }
    }
}

/// out (cols x ld) = (W*M)^T d for d (rows x ld): out is zeroed, then each kept weight
/// (r, c) adds a multiple of d's line r to out's line c.
inline void kept_rows_multiply_transposed(const kept_rows& w, std::size_t rows, std::size_t cols, const float* d,
                                          std::size_t ld, float* out) {
    constexpr std::size_t lanes = block_lanes::width;
    const kept_rows::view v = w.raw();
    const std::uint32_t *start = v.start, *end = v.end, *index = v.index;
    const float* value = v.value;
    std::fill(out, out + cols * ld, 0.0f);
    const std::size_t body = ld - ld % lanes;
    for (std::size_t r = 0; r < rows; ++r) {
        if (start[r] == end[r]) continue;
        const float* dr = d + r * ld;
        for (std::size_t p = 0; p < body; p += lanes) {
            block_lanes dl, acc;
            dl.load(dr + p);
            for (std::uint32_t k = start[r]; k < end[r]; ++k) {
                float* o = out + std::size_t{index[k]} * ld + p;
                acc.load(o);
                acc.add_scaled(value[k], dl);
                acc.store(o);
            }
        }
        for (std::size_t p = body; p < ld; ++p)
            for (std::uint32_t k = start[r]; k < end[r]; ++k) out[std::size_t{index[k]} * ld + p] += value[k] * dr[p];
    }
}

/// Per-thread scratch of the block products (two transposed blocks).
inline std::vector<float>& sparse_block_scratch() {
    thread_local std::vector<float> scratch;
    return scratch;
}

/// Runs body(scratch, r0, n) for the batch's blocks of 32 samples (rows [r0, r0 + n)),
/// blocks shared out between threads; scratch holds `scratch_floats` per thread.
template <class Body>
void for_each_sample_block(std::size_t batch, std::size_t scratch_floats, Body&& body) {
    constexpr std::size_t lanes = block_lanes::width;
    parallel_for((batch + lanes - 1) / lanes, [&](std::size_t, std::size_t lo, std::size_t hi) {
        std::vector<float>& scratch = sparse_block_scratch();
        scratch.resize(scratch_floats);
        for (std::size_t blk = lo; blk < hi; ++blk)
            body(scratch.data(), blk * lanes, std::min(lanes, batch - blk * lanes));
    });
}

/// y (batch rows, `ldy` apart) = (Accumulate: +=) x (batch rows of `in`, `ldx` apart)
/// (W*M)^T + b, from the kept rows (b may be null).
template <bool Accumulate = false>
void sparse_linear_forward_rows(const float* x, std::size_t ldx, std::size_t batch, const kept_rows& w,
                                const float* b, std::size_t out, std::size_t in, float* y, std::size_t ldy) {
    constexpr std::size_t lanes = block_lanes::width;
    for_each_sample_block(batch, (in + out) * lanes, [&](float* xt, std::size_t r0, std::size_t n) {
        float* yt = xt + in * lanes;
        transpose_to_block(x, in, ldx, r0, n, xt);
        kept_rows_multiply(w, out, xt, lanes, yt, b);
        transpose_from_block<Accumulate>(yt, out, ldy, r0, n, y);
    });
}

/// y (batch x out) = x (batch x in) (W*M)^T + b, from the kept rows (b may be null).
inline void sparse_linear_forward(const matrix& x, const kept_rows& w, const float* b, std::size_t out,
                                  std::size_t in, matrix& y) {
    ensure_shape(y, x.shape(0), out);
    sparse_linear_forward_rows(x.data(), in, x.shape(0), w, b, out, in, y.data(), out);
}

/// dx (batch rows of `in`, `lddx` apart) = dy (batch rows of `out`, `lddy` apart) (W*M),
/// from the kept rows.
inline void sparse_linear_input_gradient_rows(const float* dy, std::size_t lddy, std::size_t batch,
                                              const kept_rows& w, std::size_t out, std::size_t in, float* dx,
                                              std::size_t lddx) {
    constexpr std::size_t lanes = block_lanes::width;
    for_each_sample_block(batch, (in + out) * lanes, [&](float* dxt, std::size_t r0, std::size_t n) {
        float* dyt = dxt + in * lanes;
        transpose_to_block(dy, out, lddy, r0, n, dyt);
        kept_rows_multiply_transposed(w, out, in, dyt, lanes, dxt);
        transpose_from_block(dxt, in, lddx, r0, n, dx);
    });
}

/// dx (batch x in) = dy (batch x out) (W*M), from the kept rows.
inline void sparse_linear_input_gradient(const matrix& dy, const kept_rows& w, std::size_t out,
                                         std::size_t in, matrix& dx) {
    ensure_shape(dx, dy.shape(0), in);
    sparse_linear_input_gradient_rows(dy.data(), out, dy.shape(0), w, out, in, dx.data(), in);
}

}  // namespace dynsparse::detail
