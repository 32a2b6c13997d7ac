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
/// dependency chain of the additions.
inline void csr_rows_dot(const csr_matrix& w, const float* __restrict b, const float* __restrict x,
                         float* __restrict y) {
    const std::uint32_t* __restrict start = w.row_start.data();
    const std::uint32_t* __restrict col = w.column.data();
    const float* __restrict val = w.value.data();
    for (std::size_t i = 0; i < w.rows; ++i) {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        std::uint32_t k = start[i];
        const std::uint32_t end = start[i + 1];
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

/// Y (rows x n, rows ldy floats apart) = W X + b, X (cols x n, rows ldx floats apart).
inline void csr_times_columns(const csr_matrix& w, const float* __restrict b, const float* __restrict x,
                              std::size_t ldx, std::size_t n, float* __restrict y, std::size_t ldy) {
    const std::uint32_t* __restrict start = w.row_start.data();
    const std::uint32_t* __restrict col = w.column.data();
    const float* __restrict val = w.value.data();
    for (std::size_t i = 0; i < w.rows; ++i) {
        float* __restrict yr = y + i * ldy;
        for (std::size_t j = 0; j < n; ++j) yr[j] = b[i];
        for (std::uint32_t k = start[i]; k < start[i + 1]; ++k) {
            const float v = val[k];
            const float* __restrict xr = x + static_cast<std::size_t>(col[k]) * ldx;
            for (std::size_t j = 0; j < n; ++j) yr[j] += v * xr[j];
        }
    }
}

/// out (cols x rows) = in (rows x cols)^T, in tiles so both sides stay in cache.
inline void transpose_into(const float* __restrict in, std::size_t rows, std::size_t cols,
                           float* __restrict out) {
    constexpr std::size_t tile = 16;
    for (std::size_t i0 = 0; i0 < rows; i0 += tile)
        for (std::size_t j0 = 0; j0 < cols; j0 += tile) {
            const std::size_t i1 = i0 + tile < rows ? i0 + tile : rows;
            const std::size_t j1 = j0 + tile < cols ? j0 + tile : cols;
            for (std::size_t i = i0; i < i1; ++i)
                for (std::size_t j = j0; j < j1; ++j) out[j * rows + i] = in[i * cols + j];
        }
}

}  // namespace dynsparse
