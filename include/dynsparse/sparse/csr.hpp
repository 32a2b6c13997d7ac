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
/// addition chain. (An AVX-512 gather version was 1.4x slower on Zen 4.)
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

/// Y (rows x n, rows ldy floats apart) = W X + b, X (cols x n, rows ldx floats apart);
/// with Accumulate, Y += W X (b is not read). Columns go in blocks of 64 held in four
/// vector accumulators; the last n % 16 columns in a plain loop.
template <bool Accumulate = false>
inline void csr_times_columns(const csr_matrix& w, const float* __restrict b, const float* __restrict x,
                              std::size_t ldx, std::size_t n, float* __restrict y, std::size_t ldy) {
    using detail::float16;
    const std::uint32_t* __restrict start = w.row_start.data();
    const std::uint32_t* __restrict col = w.column.data();
    const float* __restrict val = w.value.data();
    for (std::size_t i = 0; i < w.rows; ++i) {
        float* __restrict yr = y + i * ldy;
        const std::uint32_t k0 = start[i], k1 = start[i + 1];
        std::size_t j0 = 0;
        for (; j0 + 64 <= n; j0 += 64) {
            float16 a0, a1, a2, a3, t0, t1, t2, t3;
            if constexpr (Accumulate) {
                std::memcpy(&a0, yr + j0, sizeof a0);
                std::memcpy(&a1, yr + j0 + 16, sizeof a1);
                std::memcpy(&a2, yr + j0 + 32, sizeof a2);
                std::memcpy(&a3, yr + j0 + 48, sizeof a3);
            } else {
                a0 = float16{} + b[i], a1 = a0, a2 = a0, a3 = a0;
            }
            for (std::uint32_t k = k0; k < k1; ++k) {
                const float* xr = x + static_cast<std::size_t>(col[k]) * ldx + j0;
                std::memcpy(&t0, xr, sizeof t0);
                std::memcpy(&t1, xr + 16, sizeof t1);
                std::memcpy(&t2, xr + 32, sizeof t2);
                std::memcpy(&t3, xr + 48, sizeof t3);
                const float v = val[k];
                a0 += v * t0;
                a1 += v * t1;
                a2 += v * t2;
                a3 += v * t3;
            }
            std::memcpy(yr + j0, &a0, sizeof a0);
            std::memcpy(yr + j0 + 16, &a1, sizeof a1);
            std::memcpy(yr + j0 + 32, &a2, sizeof a2);
            std::memcpy(yr + j0 + 48, &a3, sizeof a3);
        }
        for (; j0 + 16 <= n; j0 += 16) {
            float16 a, t;
            if constexpr (Accumulate)
                std::memcpy(&a, yr + j0, sizeof a);
            else
                a = float16{} + b[i];
            for (std::uint32_t k = k0; k < k1; ++k) {
                std::memcpy(&t, x + static_cast<std::size_t>(col[k]) * ldx + j0, sizeof t);
                a += val[k] * t;
            }
            std::memcpy(yr + j0, &a, sizeof a);
        }
        for (std::size_t j = j0; j < n; ++j) {
            float a = Accumulate ? yr[j] : b[i];
            for (std::uint32_t k = k0; k < k1; ++k) a += val[k] * x[static_cast<std::size_t>(col[k]) * ldx + j];
            yr[j] = a;
        }
    }
}

/// out (cols x rows, rows ld_out floats apart, ld_out >= rows; 0: rows) = in (rows x
/// cols)^T, in tiles so both sides stay in cache.
inline void transpose_into(const float* __restrict in, std::size_t rows, std::size_t cols,
                           float* __restrict out, std::size_t ld_out = 0) {
    if (ld_out == 0) ld_out = rows;
    constexpr std::size_t tile = 16;
    for (std::size_t i0 = 0; i0 < rows; i0 += tile)
        for (std::size_t j0 = 0; j0 < cols; j0 += tile) {
            const std::size_t i1 = i0 + tile < rows ? i0 + tile : rows;
            const std::size_t j1 = j0 + tile < cols ? j0 + tile : cols;
            for (std::size_t i = i0; i < i1; ++i)
                for (std::size_t j = j0; j < j1; ++j) out[j * ld_out + i] = in[i * cols + j];
        }
}

}  // namespace dynsparse
