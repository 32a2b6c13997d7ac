#pragma once
// Compressed sparse row (CSR) weight matrices and the two kernels the inference engine
// runs on them:
//   csr_rows_dot      y = W x + b for one sample (one gathered dot product per row),
//                     used for small batches;
//   csr_times_columns Y = W X + b for X stored feature-major (k x n): each non-zero adds
//                     a scaled row of X to a row of Y, so the inner loop runs along n
//                     contiguous floats and vectorises. Dense layers at larger batches
//                     (X = x^T, n = batch) and convolutions (X = the unfolded sample,
//                     n = output positions) use it.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace dynsparse {

struct csr_matrix {
    std::size_t rows = 0, cols = 0;
    std::vector<std::uint32_t> row_start;  ///< rows + 1 offsets into column/value
    std::vector<std::uint32_t> column;
    std::vector<float> value;

    std::size_t nonzeros() const { return value.size(); }

    /// The non-zeros of a dense row-major rows x cols matrix.
    static csr_matrix from_dense(const float* w, std::size_t rows, std::size_t cols) {
        csr_matrix m;
        m.rows = rows;
        m.cols = cols;
        m.row_start.reserve(rows + 1);
        m.row_start.push_back(0);
        for (std::size_t i = 0; i < rows; ++i) {
            for (std::size_t j = 0; j < cols; ++j)
                if (w[i * cols + j] != 0.0f) {
                    m.column.push_back(static_cast<std::uint32_t>(j));
                    m.value.push_back(w[i * cols + j]);
                }
            m.row_start.push_back(static_cast<std::uint32_t>(m.value.size()));
        }
        return m;
    }

    std::vector<float> to_dense() const {
        std::vector<float> w(rows * cols, 0.0f);
        for (std::size_t i = 0; i < rows; ++i)
            for (std::uint32_t k = row_start[i]; k < row_start[i + 1]; ++k) w[i * cols + column[k]] = value[k];
        return w;
    }
};

/// y[i] = b[i] + sum_k W[i, k] x[k] for one sample; four partial sums per row break the
/// addition chain.
inline void csr_rows_dot(const csr_matrix& w, const float* __restrict b, const float* __restrict x,
                         float* __restrict y) {
    const std::uint32_t* __restrict start = w.row_start.data();
    const std::uint32_t* __restrict col = w.column.data();
    const float* __restrict val = w.value.data();
    for (std::size_t i = 0; i < w.rows; ++i) {
        std::uint32_t k = start[i];
        const std::uint32_t end = start[i + 1];
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (; k + 4 <= end; k += 4) {
            s0 += val[k] * x[col[k]];
            s1 += val[k + 1] * x[col[k + 1]];
            s2 += val[k + 2] * x[col[k + 2]];
            s3 += val[k + 3] * x[col[k + 3]];
        }
        for (; k < end; ++k) s0 += val[k] * x[col[k]];
        y[i] = b[i] + ((s0 + s1) + (s2 + s3));
    }
}

namespace detail {
// 16 floats (one AVX-512 register, two AVX ones): GCC/clang vector extension, so the
// accumulators stay in registers (plain loops kept them in memory or went scalar). Moved
// with memcpy inside the kernel: a function returning one would change the ABI (-Wpsabi).
using float16 = float __attribute__((vector_size(64)));
}  // namespace detail

namespace detail {
/// Row i of csr_times_columns on the Q * 16 columns from yr / x: one vector accumulator
/// per 16 columns, so the Q additions of one non-zero are independent.
template <int Q, bool Accumulate>
inline void csr_row_block(const std::uint32_t* __restrict col, const float* __restrict val, std::uint32_t k0,
                          std::uint32_t k1, const float* __restrict x, std::size_t ldx, float bias,
                          float* __restrict yr) {
    float16 a[Q];
    for (int u = 0; u < Q; ++u) {
        if constexpr (Accumulate)
            std::memcpy(&a[u], yr + 16 * u, sizeof(float16));
        else
            a[u] = float16{} + bias;
    }
    for (std::uint32_t k = k0; k < k1; ++k) {
        const float* xr = x + static_cast<std::size_t>(col[k]) * ldx;
        const float v = val[k];
        for (int u = 0; u < Q; ++u) {
            float16 t;
            std::memcpy(&t, xr + 16 * u, sizeof t);
            a[u] += v * t;
        }
    }
    for (int u = 0; u < Q; ++u) std::memcpy(yr + 16 * u, &a[u], sizeof(float16));
}
}  // namespace detail

/// Y (rows x n, rows ldy floats apart) = W X + b, X (cols x n, rows ldx floats apart);
/// with Accumulate, Y += W X (b is not read). Columns go in blocks of 64 held in four
/// vector accumulators, the rest of the multiples of 16 in one block of 1 to 3, the last
/// n % 16 columns in a plain loop (callers that can pad n to a multiple of 16 should).
template <bool Accumulate = false>
inline void csr_times_columns(const csr_matrix& w, const float* __restrict b, const float* __restrict x,
                              std::size_t ldx, std::size_t n, float* __restrict y, std::size_t ldy) {
    const std::uint32_t* __restrict start = w.row_start.data();
    const std::uint32_t* __restrict col = w.column.data();
    const float* __restrict val = w.value.data();
    const std::size_t blocks = n % 64 / 16;
    for (std::size_t i = 0; i < w.rows; ++i) {
        float* __restrict yr = y + i * ldy;
        const std::uint32_t k0 = start[i], k1 = start[i + 1];
        const float bias = Accumulate ? 0.0f : b[i];
        std::size_t j0 = 0;
        for (; j0 + 64 <= n; j0 += 64) detail::csr_row_block<4, Accumulate>(col, val, k0, k1, x + j0, ldx, bias, yr + j0);
        if (blocks == 3) detail::csr_row_block<3, Accumulate>(col, val, k0, k1, x + j0, ldx, bias, yr + j0);
        if (blocks == 2) detail::csr_row_block<2, Accumulate>(col, val, k0, k1, x + j0, ldx, bias, yr + j0);
        if (blocks == 1) detail::csr_row_block<1, Accumulate>(col, val, k0, k1, x + j0, ldx, bias, yr + j0);
        j0 += 16 * blocks;
        for (std::size_t j = j0; j < n; ++j) {
            float a = Accumulate ? yr[j] : bias;
            for (std::uint32_t k = k0; k < k1; ++k) a += val[k] * x[static_cast<std::size_t>(col[k]) * ldx + j];
            yr[j] = a;
        }
    }
}

/// out (cols x rows, rows ld_out floats apart, ld_out >= rows; 0: rows) = in (rows x
/// cols, rows ld_in floats apart; 0: cols)^T, in tiles so both sides stay in cache.
inline void transpose_into(const float* __restrict in, std::size_t rows, std::size_t cols,
                           float* __restrict out, std::size_t ld_out = 0, std::size_t ld_in = 0) {
    if (ld_out == 0) ld_out = rows;
    if (ld_in == 0) ld_in = cols;
    constexpr std::size_t tile = 16;
    for (std::size_t i0 = 0; i0 < rows; i0 += tile)
        for (std::size_t j0 = 0; j0 < cols; j0 += tile) {
            const std::size_t i1 = i0 + tile < rows ? i0 + tile : rows;
            const std::size_t j1 = j0 + tile < cols ? j0 + tile : cols;
            for (std::size_t i = i0; i < i1; ++i)
                for (std::size_t j = j0; j < j1; ++j) out[j * ld_out + i] = in[i * ld_in + j];
        }
}

}  // namespace dynsparse
