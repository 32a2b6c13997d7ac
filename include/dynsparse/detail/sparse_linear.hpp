#pragma once
// The forward and input-gradient products of a masked fully connected layer on its kept
// weights only: y = x (W*M)^T + b and dx = dy (W*M), with W*M held as compressed rows
// (for y) and compressed columns (for dx). Both products run on transposed activations
// (features x batch), so each kept weight costs one multiply-add over a contiguous row of
// the batch, which vectorises; the batch is transposed in and out.
//
// The weight gradient dy^T x stays a dense GEMM (DST needs it for every weight).
//
// Not yet used by the layers: benchmarks/sparse_crossover measures these kernels (with
// building the compressed forms each step) against the dense GEMMs; they win only below
// about 2% kept so far (docs/benchmarks.md), so masked_dense keeps its dense products.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "dynsparse/core/parallel.hpp"
#include "dynsparse/core/tensor.hpp"

namespace dynsparse::detail {

/// Kept weights of an out x in matrix by row (CSR) and by column (CSC).
struct kept_weights {
    std::vector<std::uint32_t> row_start, row_col;  // CSR: row r's entries [row_start[r], row_start[r + 1])
    std::vector<float> row_value;
    std::vector<std::uint32_t> col_start, col_row;  // CSC: column c's entries
    std::vector<float> col_value;

    std::size_t kept() const { return row_value.size(); }

    /// From W*M (zeros where pruned); row_kept[r] is the number of kept weights of row r.
    void build(const float* wm, std::size_t out, std::size_t in, const std::uint32_t* row_kept) {
        std::size_t bound = 0;
        for (std::size_t r = 0; r < out; ++r) bound += row_kept[r];
        row_start.resize(out + 1);
        row_col.resize(bound);
        row_value.resize(bound);
        col_start.assign(in + 1, 0);
        std::uint32_t k = 0;
        for (std::size_t r = 0; r < out; ++r) {
            row_start[r] = k;
            if (row_kept[r] == 0) continue;
            const float* w = wm + r * in;
            for (std::size_t c = 0; c < in; ++c)
                if (w[c] != 0.0f) {  // a kept weight that is exactly 0 adds nothing: left out
                    row_col[k] = static_cast<std::uint32_t>(c);
                    row_value[k++] = w[c];
                    ++col_start[c + 1];
                }
        }
        row_start[out] = k;
        row_col.resize(k);
        row_value.resize(k);
        for (std::size_t c = 0; c < in; ++c) col_start[c + 1] += col_start[c];
        col_row.resize(row_col.size());
        col_value.resize(row_col.size());
        fill_.assign(col_start.begin(), col_start.end() - 1);
        for (std::size_t r = 0; r < out; ++r)
            for (std::uint32_t k = row_start[r]; k < row_start[r + 1]; ++k) {
                const std::uint32_t at = fill_[row_col[k]]++;
                col_row[at] = static_cast<std::uint32_t>(r);
                col_value[at] = row_value[k];
            }
    }

private:
    std::vector<std::uint32_t> fill_;
};

/// t (cols x rows) = a^T for a (rows x cols), by tiles.
inline void transpose_into(const float* a, std::size_t rows, std::size_t cols, float* t) {
    constexpr std::size_t tile = 16;
    for (std::size_t r0 = 0; r0 < rows; r0 += tile)
        for (std::size_t c0 = 0; c0 < cols; c0 += tile) {
            const std::size_t r1 = std::min(rows, r0 + tile), c1 = std::min(cols, c0 + tile);
            for (std::size_t r = r0; r < r1; ++r)
                for (std::size_t c = c0; c < c1; ++c) t[c * rows + r] = a[r * cols + c];
        }
}

/// Rows of the output worth a thread: about 64k multiply-adds.
inline std::size_t sparse_grain(std::size_t kept, std::size_t lines, std::size_t batch) {
    const std::size_t per_line = kept * batch / std::max<std::size_t>(lines, 1) + 1;
    return (std::size_t{1} << 16) / per_line + 1;
}

/// The product both directions share, on batches stored transposed (features x batch):
/// out_t line l = init(l) + sum over l's entries k of value[k] * in_t line index[k], for
/// l in [0, lines); `start` delimits each line's entries (CSR rows or CSC columns).
inline void compressed_product(std::size_t lines, std::size_t batch, const std::vector<std::uint32_t>& start,
                               const std::vector<std::uint32_t>& index, const std::vector<float>& value,
                               const float* in_t, const float* init, float* out_t) {
    parallel_for(lines, [&](std::size_t, std::size_t lo, std::size_t hi) {
        for (std::size_t l = lo; l < hi; ++l) {
            float* o = out_t + l * batch;
            std::fill(o, o + batch, init != nullptr ? init[l] : 0.0f);
            for (std::uint32_t k = start[l]; k < start[l + 1]; ++k) {
                const float v = value[k];
                const float* src = in_t + std::size_t{index[k]} * batch;
                for (std::size_t i = 0; i < batch; ++i) o[i] += v * src[i];
            }
        }
    }, sparse_grain(value.size(), lines, batch));
}

/// y (batch x out) = x (batch x in) (W*M)^T + b, from the compressed rows.
inline void sparse_linear_forward(const matrix& x, const kept_weights& w, const float* b, std::size_t out,
                                  std::size_t in, std::vector<float>& xt, std::vector<float>& yt, matrix& y) {
    const std::size_t batch = x.shape(0);
    ensure_shape(y, batch, out);
    xt.resize(in * batch);
    yt.resize(out * batch);
    transpose_into(x.data(), batch, in, xt.data());
    compressed_product(out, batch, w.row_start, w.row_col, w.row_value, xt.data(), b, yt.data());
    transpose_into(yt.data(), out, batch, y.data());
}

/// dx (batch x in) = dy (batch x out) (W*M), from the compressed columns.
inline void sparse_linear_input_gradient(const matrix& dy, const kept_weights& w, std::size_t out,
                                         std::size_t in, std::vector<float>& dyt, std::vector<float>& dxt,
                                         matrix& dx) {
    const std::size_t batch = dy.shape(0);
    ensure_shape(dx, batch, in);
    dyt.resize(out * batch);
    dxt.resize(in * batch);
    transpose_into(dy.data(), batch, out, dyt.data());
    compressed_product(in, batch, w.col_start, w.col_row, w.col_value, dyt.data(), nullptr, dxt.data());
    transpose_into(dxt.data(), in, batch, dx.data());
}

}  // namespace dynsparse::detail
