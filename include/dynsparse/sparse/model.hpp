#pragma once
// sparse_model: a trained network exported for inference (io/export.hpp makes one from a
// typed network), its file format, and the engine that runs it on a batch.
//
// A model is a runtime list of operations (dense, conv, relu, tanh, sigmoid, max_pool,
// avg_pool, reshape, lstm, last_step), each with its input and output shape (C, H, W;
// vectors are (n, 1, 1); sequences (T, F, 1)). An lstm holds [W_ih | W_hh] (4H x (F + H),
// gates i, f, g, o as in layers/lstm.hpp) and 4H biases and returns every hidden state;
// last_step keeps the last one. Batch norm has no operation: export folds it into the
// convolution or dense layer before it.
// Weights are kept as CSR and, for layers dense enough that BLAS beats the sparse kernel,
// also as a dense matrix. Per layer and batch the engine picks the kernel by density:
// sparse when the layer's density is below sparse_density_threshold(kind, batch, stride), measured on the
// development machine (benchmarks/sparse_inference_bench.cpp, docs/benchmarks.md).
//
// File: io/binary.hpp's frame (magic "DSMODEL", version, size, CRC-32) around
//   input shape (3 x u32), operation count (u64), then per operation: kind (u8), input and
//   output shapes (6 x u32), kernel, stride, padding (3 x u32); dense, conv and lstm add the bias
//   (float array) and the weights: format (u8: 0 dense, 1 CSR with u16 columns, 2 CSR with
//   u32 columns), rows, cols (u32), then the dense values, or nnz (u32), row starts,
//   columns and values. The writer picks the smaller format per layer. The loader checks
//   every shape against the previous operation and every index against its bounds.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "dynsparse/core/blas.hpp"
#include "dynsparse/core/error.hpp"
#include "dynsparse/core/tensor.hpp"
#include "dynsparse/detail/im2col.hpp"
#include "dynsparse/detail/lstm_kernels.hpp"  // fast_sigmoid, fast_tanh: the layer's gate functions
#include "dynsparse/io/atomic_file.hpp"
#include "dynsparse/io/binary.hpp"
#include "dynsparse/layers/activations.hpp"
#include "dynsparse/sparse/csr.hpp"
#include "dynsparse/sparse/direct_conv.hpp"

namespace dynsparse {

enum class op_kind : std::uint8_t {
    dense = 1, conv = 2, relu = 3, tanh = 4, sigmoid = 5, max_pool = 6, avg_pool = 7, reshape = 8, lstm = 9, last_step = 10
};
inline constexpr std::uint8_t last_op_kind = 10;

inline const char* op_name(op_kind k) {
    switch (k) {
        case op_kind::dense: return "dense";
        case op_kind::conv: return "conv";
        case op_kind::relu: return "relu";
        case op_kind::tanh: return "tanh";
        case op_kind::sigmoid: return "sigmoid";
        case op_kind::max_pool: return "max_pool";
        case op_kind::avg_pool: return "avg_pool";
        case op_kind::reshape: return "reshape";
        case op_kind::lstm: return "lstm";
        case op_kind::last_step: return "last_step";
    }
    return "?";
}

namespace detail {
// Bounds the loader puts on shapes (and the engine on its scratch).
inline constexpr std::size_t max_model_dim = std::size_t{1} << 20;
inline constexpr std::size_t max_model_elements = std::size_t{1} << 24;
}  // namespace detail

struct dims3 {
    std::size_t c = 1, h = 1, w = 1;
    std::size_t size() const { return c * h * w; }
    bool operator==(const dims3&) const = default;
    std::string str() const {
        char buf[80];
        std::snprintf(buf, sizeof buf, "(%zu,%zu,%zu)", c, h, w);
        return buf;
    }
};

/// Densities below this use the sparse kernels, the rest BLAS: about where the sparse kernels
/// of a 784-300 dense layer and of LeNet-5's second convolution stop winning against GEMV
/// (batch 1) and GEMM (docs/benchmarks.md, `sparse_inference_bench density`); for an LSTM
/// 128 -> 128 over 28 steps: 0.1-0.2 at batch 1, 0.2-0.3 at batch 64. Stride-1 convolutions
/// run the direct sparse convolution (sparse/direct_conv.hpp), which was faster than the
/// engine's im2col + GEMM path at every density measured on LeNet-5's two convolutions,
/// 1% to 100% (1.02-1.4x at 100%), so they always take it; strided ones unfold the input
/// and use the CSR kernel below 0.6.
inline float sparse_density_threshold(op_kind kind, std::size_t batch, std::size_t stride = 0) {
    if (kind == op_kind::conv) return stride == 1 ? 1.01f : 0.6f;
    if (kind == op_kind::lstm) return batch == 1 ? 0.15f : 0.25f;
    return batch == 1 ? 0.15f : 0.5f;
}

/// One operation. dense: y = W x + b, W out x in. conv: W c_out x (c_in k k) as in conv2d.
/// lstm: W = [W_ih | W_hh], 4H x (F + H); in (T, F, 1), out (T, H, 1).
struct sparse_op {
    op_kind kind = op_kind::relu;
    dims3 in, out;
    std::size_t kernel = 0, stride = 0, padding = 0;
    std::vector<float> bias;
    std::vector<float> dense;  ///< row-major rows x cols, kept when the layer is dense enough (or while exporting)
    csr_matrix csr;            ///< always present for dense, conv and lstm
    csr_matrix csr_input, csr_recurrent;  ///< lstm: csr split into W_ih and W_hh (made by the engine)
    conv_taps taps;  ///< stride-1 conv: the non-zeros as input offsets (made by the engine on first use; clear it after changing csr)

    bool has_weights() const { return kind == op_kind::dense || kind == op_kind::conv || kind == op_kind::lstm; }
    std::size_t rows() const { return csr.rows; }
    std::size_t cols() const { return csr.cols; }
    double density() const {
        const double n = static_cast<double>(csr.rows * csr.cols);
        return n > 0 ? static_cast<double>(csr.nonzeros()) / n : 0.0;
    }
    detail::conv_geometry geometry() const {
        return {in.c, in.h, in.w, kernel, stride, padding, out.h, out.w};
    }
};

enum class kernel_choice { automatic, dense, sparse };

class sparse_model {
public:
    dims3 input;
    std::vector<sparse_op> ops;

    std::size_t input_size() const { return input.size(); }
    std::size_t output_size() const { return ops.empty() ? input.size() : ops.back().out.size(); }

    std::size_t nonzeros() const {
        std::size_t n = 0;
        for (const auto& op : ops) n += op.has_weights() ? op.csr.nonzeros() : 0;
        return n;
    }

    /// One line per weighted operation: shape, non-zeros, density.
    std::string summary() const {
        std::string s = std::to_string(ops.size()) + " operations, " + std::to_string(nonzeros()) +
                        " non-zero weights\n";
        char line[200];
        for (std::size_t i = 0; i < ops.size(); ++i) {
            const auto& op = ops[i];
            if (!op.has_weights()) continue;
            std::snprintf(line, sizeof line, "    [%zu] %-5s %s -> %s  %zu x %zu, %zu non-zeros (%.2f%%)\n", i,
                          op_name(op.kind), op.in.str().c_str(), op.out.str().c_str(), op.rows(), op.cols(),
                          op.csr.nonzeros(), 100.0 * op.density());
            s += line;
        }
        return s;
    }

    /// Keeps a dense copy of the layers the engine runs with BLAS at some batch size (all of
    /// them when `all`, for comparisons), drops it elsewhere.
    void prepare(bool all = false) {
        for (auto& op : ops) {
            if (!op.has_weights()) continue;
            const bool keep = all || op.density() >= sparse_density_threshold(op.kind, 1, op.stride) ||
                              op.density() >= sparse_density_threshold(op.kind, 64, op.stride);
            if (keep && op.dense.size() != op.rows() * op.cols()) op.dense = op.csr.to_dense();
            if (!keep) std::vector<float>().swap(op.dense);
        }
    }

    /// lstm: csr split into its W_ih and W_hh columns, unless done already.
    static void split_lstm(sparse_op& op) {
        const std::size_t f = op.in.h;
        if (op.kind != op_kind::lstm || (op.csr_input.rows == op.rows() && op.csr_input.cols == f)) return;
        csr_matrix a, b;
        a.rows = b.rows = op.rows();
        a.cols = f;
        b.cols = op.cols() - f;
        a.row_start.push_back(0);
        b.row_start.push_back(0);
        for (std::size_t i = 0; i < op.rows(); ++i) {
            for (std::uint32_t k = op.csr.row_start[i]; k < op.csr.row_start[i + 1]; ++k) {
                csr_matrix& part = op.csr.column[k] < f ? a : b;
                part.column.push_back(op.csr.column[k] < f ? op.csr.column[k] : op.csr.column[k] - static_cast<std::uint32_t>(f));
                part.value.push_back(op.csr.value[k]);
            }
            a.row_start.push_back(static_cast<std::uint32_t>(a.value.size()));
            b.row_start.push_back(static_cast<std::uint32_t>(b.value.size()));
        }
        op.csr_input = std::move(a);
        op.csr_recurrent = std::move(b);
    }

    /// Runs the model on x (batch x input_size()); returns batch x output_size().
    /// The leading convolutional part (everything before the first dense, lstm or last_step
    /// operation, if it holds a convolution) runs one sample at a time, so a sample's
    /// feature maps stay in the L1/L2 cache from one operation to the next (LeNet-5's first
    /// convolution makes 46 KB per sample, 2.9 MB for a batch of 64); the rest runs on the
    /// whole batch, where the dense kernels gain from it.
    const matrix& run(const matrix& x, kernel_choice choice = kernel_choice::automatic) {
        if (x.dimension() != 2 || x.shape(1) != input_size())
            throw invalid_argument("sparse_model::run: expected a batch x " + std::to_string(input_size()) +
                                   " input, got " + std::to_string(x.shape(0)) + " x " +
                                   std::to_string(x.shape(1)));
        if (choice == kernel_choice::dense) prepare(true);
        const std::size_t batch = x.shape(0);
        buffers_.resize(ops.size());
        std::size_t split = 0;
        bool conv = false;
        for (; split < ops.size(); ++split) {
            const op_kind k = ops[split].kind;
            if (k == op_kind::dense || k == op_kind::lstm || k == op_kind::last_step) break;
            conv = conv || k == op_kind::conv;
        }
        const matrix* out = &x;
        if (batch > 1 && conv) {
            const std::size_t in_size = input_size(), mid = ops[split - 1].out.size();
            ensure_shape(sample_in_, 1, in_size);
            ensure_shape(stage_, batch, mid);
            for (std::size_t r = 0; r < batch; ++r) {
                std::copy(x.data() + r * in_size, x.data() + (r + 1) * in_size, sample_in_.data());
                const matrix& y = run_ops(0, split, sample_in_, choice, batch);
                std::copy(y.data(), y.data() + mid, stage_.data() + r * mid);
            }
            out = &run_ops(split, ops.size(), stage_, choice, batch);
        } else {
            out = &run_ops(0, ops.size(), x, choice, batch);
        }
        if (out == &x) {  // no operation changed the data
            buffers_.resize(1);
            buffers_[0] = x;
            return buffers_[0];
        }
        return *out;
    }

private:
    /// Operations [first, last) on x; returns x itself if none of them changes the data.
    /// `batch` (the whole batch's size) picks the kernels.
    const matrix& run_ops(std::size_t first, std::size_t last, const matrix& x, kernel_choice choice,
                          std::size_t batch) {
        const std::size_t rows = x.shape(0);
        const matrix* cur = &x;
        matrix* own = nullptr;  // cur, when it is one of our buffers
        for (std::size_t i = first; i < last; ++i) {
            const sparse_op& op = ops[i];
            if (op.kind == op_kind::reshape) continue;  // rows are already flat
            const bool elementwise = op.kind == op_kind::relu || op.kind == op_kind::tanh || op.kind == op_kind::sigmoid;
            if (elementwise && own != nullptr) {  // in place on the previous operation's output
                matrix& y = *own;
                if (op.kind == op_kind::relu) map<detail::relu_fn>(y, y);
                if (op.kind == op_kind::tanh) map<detail::tanh_fn>(y, y);
                if (op.kind == op_kind::sigmoid) map<detail::sigmoid_fn>(y, y);
                continue;
            }
            matrix& y = buffers_[i];
            ensure_shape(y, rows, op.out.size());
            bool sparse = choice == kernel_choice::sparse ||
                          (choice == kernel_choice::automatic && op.density() < sparse_density_threshold(op.kind, batch, op.stride));
            if (op.has_weights() && op.dense.size() != op.rows() * op.cols()) sparse = true;
            if (sparse) split_lstm(ops[i]);
            // A relu right after a direct convolution is applied as its output is stored, and a
            // 2x2 max pooling after them (or right after the convolution) as its blocks leave
            // the registers (sparse/direct_conv.hpp).
            const bool direct = op.kind == op_kind::conv && sparse && op.stride == 1 &&
                                conv_taps::shifted_bound(op.geometry()) <= detail::max_model_elements;
            const bool fuse_relu = direct && i + 1 < last && ops[i + 1].kind == op_kind::relu;
            const std::size_t pool_at = i + 1 + (fuse_relu ? 1 : 0);
            const bool fuse_pool = direct && pool_at < last && is_tiled_max_pool_2x2(ops[pool_at]) &&
                                   pooled_block_vectors(op.out.h, op.out.w) > 0;
            matrix& out = fuse_pool ? buffers_[pool_at] : y;
            if (fuse_pool) ensure_shape(out, rows, ops[pool_at].out.size());
            switch (op.kind) {
                case op_kind::dense: run_dense(op, *cur, y, sparse); break;
                case op_kind::conv: run_conv(ops[i], *cur, out, sparse, fuse_relu, fuse_pool); break;
                case op_kind::relu: map<detail::relu_fn>(*cur, y); break;
                case op_kind::tanh: map<detail::tanh_fn>(*cur, y); break;
                case op_kind::sigmoid: map<detail::sigmoid_fn>(*cur, y); break;
                case op_kind::max_pool: pool<true>(op, *cur, y); break;
                case op_kind::avg_pool: pool<false>(op, *cur, y); break;
                case op_kind::lstm: run_lstm(op, *cur, y, sparse); break;
                case op_kind::last_step: last_step(op, *cur, y); break;
                case op_kind::reshape: break;
            }
            cur = own = &out;
            if (fuse_pool)
                i = pool_at;
            else if (fuse_relu)
                ++i;
        }
        return *cur;
    }

    void run_dense(const sparse_op& op, const matrix& x, matrix& y, bool sparse) {
        const std::size_t batch = x.shape(0), in = op.cols(), out = op.rows();
        if (!sparse && batch == 1) {
            std::copy(op.bias.begin(), op.bias.end(), y.data());
            gemv(out, in, 1.0f, op.dense.data(), in, x.data(), 1.0f, y.data());
        } else if (!sparse) {
            for (std::size_t r = 0; r < batch; ++r) std::copy(op.bias.begin(), op.bias.end(), y.data() + r * out);
            gemm(transpose::no, transpose::yes, batch, out, in, 1.0f, x.data(), in, op.dense.data(), in, 1.0f,
                 y.data(), out);
        } else if (batch < 8) {
            for (std::size_t r = 0; r < batch; ++r)
                csr_rows_dot(op.csr, op.bias.data(), x.data() + r * in, y.data() + r * out);
        } else {
            xt_.resize(in * batch);
            yt_.resize(out * batch);
            transpose_into(x.data(), batch, in, xt_.data());
            csr_times_columns(op.csr, op.bias.data(), xt_.data(), batch, batch, yt_.data(), batch);
            transpose_into(yt_.data(), out, batch, y.data());
        }
    }

    static bool is_tiled_max_pool_2x2(const sparse_op& op) {
        return op.kind == op_kind::max_pool && op.kernel == 2 && op.stride == 2 && op.in.h == 2 * op.out.h &&
               op.in.w == 2 * op.out.w;
    }

    /// y = the convolution (then max(0, .) if relu); with `pool` (direct convolution only),
    /// y is instead its 2x2 max pooling, c_out x oh / 2 x ow / 2.
    void run_conv(sparse_op& op, const matrix& x, matrix& y, bool sparse, bool relu, bool pool = false) {
        const detail::conv_geometry g = op.geometry();
        // Direct sparse convolution, no unfolded input, unless its shifted planes would take
        // more than 64 MiB (the bound the loader puts on the unfolded input).
        if (sparse && op.stride == 1 && conv_taps::shifted_bound(g) <= detail::max_model_elements) {
            if (op.taps.filters != op.rows() || op.taps.channels != op.in.c || op.taps.nonzeros != op.csr.nonzeros())
                op.taps = conv_taps::from_csr(op.csr, g);
            const std::size_t batch = x.shape(0), out_size = pool ? op.out.size() / 4 : op.out.size();
            if (xpad_.size() < op.taps.shifted_size() + 16) xpad_.resize(op.taps.shifted_size() + 16);  // only grows: no refill
            float* xs = xpad_.data() + (16 - reinterpret_cast<std::uintptr_t>(xpad_.data()) / sizeof(float) % 16) % 16;
            if (pool && partial_.size() < op.out.size()) partial_.resize(op.out.size());
            for (std::size_t r = 0; r < batch; ++r) {  // one sample at a time: its planes stay in cache
                op.taps.shift_sample(x.data() + r * g.in_size(), xs);
                float* yr = y.data() + r * out_size;
                if (pool)
                    direct_sparse_conv(op.taps, op.bias.data(), xs, partial_.data(), relu, yr);
                else
                    direct_sparse_conv(op.taps, op.bias.data(), xs, yr, relu);
            }
            return;
        }
        const std::size_t batch = x.shape(0), n = g.positions(), kk = g.cols(), out = op.rows();
        col_.resize(kk * n);
        for (std::size_t r = 0; r < batch; ++r) {
            im2col(g, x.data() + r * g.in_size(), col_.data());
            float* yr = y.data() + r * out * n;
            if (sparse) {
                csr_times_columns(op.csr, op.bias.data(), col_.data(), n, n, yr, n);
            } else {
                for (std::size_t o = 0; o < out; ++o) std::fill(yr + o * n, yr + (o + 1) * n, op.bias[o]);
                gemm(transpose::no, transpose::no, out, n, kk, 1.0f, op.dense.data(), kk, col_.data(), n, 1.0f, yr, n);
            }
        }
    }

    /// The LSTM recurrence of detail::lstm_forward (same gate functions) with the sizes
    /// known at run time. The input projection of every step comes first (dense: one
    /// GEMM; sparse: W_ih's CSR on the feature-major input, steps x batch columns), then
    /// each step adds W_hh h_{t-1} (dense: GEMV / GEMM; sparse: gathered row dots for
    /// small batches, else W_hh's CSR on the feature-major hidden state, where the gate
    /// updates also vectorise; batch padded to a multiple of 16 columns). (Scaling W_hh's
    /// columns by h instead of row dots, and a SELL-16 layout with AVX-512 gathers, were
    /// tried on LSTM-a's W_hh: 1.1x and 3-4x slower.)
    void run_lstm(const sparse_op& op, const matrix& x, matrix& y, bool sparse) {
        const std::size_t batch = x.shape(0), steps = op.in.c, f = op.in.h, h = op.out.h, g = 4 * h, ld = f + h;
        cell_.assign(batch * h, 0.0f);
        if (!sparse) {
            z_.resize(batch * steps * g);  // row s*T + t: step t of sample s
            for (std::size_t r = 0; r < batch * steps; ++r) std::copy(op.bias.begin(), op.bias.end(), z_.data() + r * g);
            gemm(transpose::no, transpose::yes, batch * steps, g, f, 1.0f, x.data(), f, op.dense.data(), ld, 1.0f,
                 z_.data(), g);
            for (std::size_t t = 0; t < steps; ++t) {
                float* zt = z_.data() + t * g;
                if (t > 0 && batch == 1)
                    gemv(g, h, 1.0f, op.dense.data() + f, ld, y.data() + (t - 1) * h, 1.0f, zt);
                else if (t > 0)
                    gemm(transpose::no, transpose::yes, batch, g, h, 1.0f, y.data() + (t - 1) * h, steps * h,
                         op.dense.data() + f, ld, 1.0f, zt, steps * g);
                for (std::size_t s = 0; s < batch; ++s)
                    lstm_cell(zt + s * steps * g, h, 1, 1, cell_.data() + s * h, y.data() + (s * steps + t) * h);
            }
            return;
        }
        if (batch < 8) {
            // Per sample: Z^T (4H x T', T' = steps rounded up to 16) = W_ih X^T + b, then
            // Z (T' x 4H), so each step's pre-activations are one contiguous row.
            const std::size_t cols = (steps + 15) / 16 * 16;
            xt_.assign(f * cols, 0.0f);
            col_.resize(g * cols);
            z_.resize(cols * g);
            hidden_.resize(g);
            for (std::size_t s = 0; s < batch; ++s) {
                transpose_into(x.data() + s * steps * f, steps, f, xt_.data(), cols);
                csr_times_columns(op.csr_input, op.bias.data(), xt_.data(), cols, cols, col_.data(), cols);
                transpose_into(col_.data(), g, cols, z_.data(), g);
                float* hs = y.data() + s * steps * h;
                for (std::size_t t = 0; t < steps; ++t) {
                    const float* zt = z_.data() + t * g;
                    if (t > 0) {
                        csr_rows_dot(op.csr_recurrent, zt, hs + (t - 1) * h, hidden_.data());
                        zt = hidden_.data();
                    }
                    lstm_cell(zt, h, 1, 1, cell_.data() + s * h, hs + t * h);
                }
            }
            return;
        }
        // Feature-major, bp = batch rounded up to 16 columns (the padding columns compute
        // an LSTM on zeros): X^T (F x T*bp, column t*bp + s), Z (4H x T*bp), H (H x bp).
        const std::size_t bp = (batch + 15) / 16 * 16, n = steps * bp;
        xt_.assign(f * n, 0.0f);
        for (std::size_t t = 0; t < steps; ++t)  // step t of every sample: batch x F, rows T*F apart
            transpose_into(x.data() + t * f, batch, f, xt_.data() + t * bp, n, steps * f);
        z_.resize(g * n);
        csr_times_columns(op.csr_input, op.bias.data(), xt_.data(), n, n, z_.data(), n);
        hidden_.resize(h * bp);
        cell_.assign(h * bp, 0.0f);
        for (std::size_t t = 0; t < steps; ++t) {
            float* zt = z_.data() + t * bp;
            if (t > 0) csr_times_columns<true>(op.csr_recurrent, nullptr, hidden_.data(), bp, bp, zt, n);
            lstm_cell(zt, h, bp, n, cell_.data(), hidden_.data());
            transpose_into(hidden_.data(), h, batch, y.data() + t * h, steps * h, bp);
        }
    }

    /// One LSTM step for `units` hidden units of `width` columns (1: one sample; or a
    /// feature-major batch): the pre-activation of gate k (i, f, g, o) of unit j, column s
    /// is z[(k * units + j) * ldz + s]; the cell c (zero before the first step) is updated
    /// in place and h_t written to hidden, both at [j * width + s].
    static void lstm_cell(const float* __restrict z, std::size_t units, std::size_t width, std::size_t ldz,
                          float* __restrict c, float* __restrict hidden) {
        if (width == 1 && ldz == 1) {  // one sample: along the units
            lstm_cell_row(z, z + units, z + 2 * units, z + 3 * units, units, c, hidden);
            return;
        }
        for (std::size_t j = 0; j < units; ++j)
            lstm_cell_row(z + j * ldz, z + (units + j) * ldz, z + (2 * units + j) * ldz, z + (3 * units + j) * ldz,
                          width, c + j * width, hidden + j * width);
    }

    /// n cells from their four gate pre-activations. Not inlined: GCC vectorised this loop
    /// in some translation units and not in others when it was part of lstm_cell.
    [[gnu::noinline]] static void lstm_cell_row(const float* __restrict zi, const float* __restrict zf,
                                                const float* __restrict zg, const float* __restrict zo,
                                                std::size_t n, float* __restrict c, float* __restrict hidden) {
        for (std::size_t s = 0; s < n; ++s) {
            const float i = detail::fast_sigmoid(zi[s]), fg = detail::fast_sigmoid(zf[s]);
            const float gg = detail::fast_tanh(zg[s]), o = detail::fast_sigmoid(zo[s]);
            c[s] = fg * c[s] + i * gg;
            hidden[s] = o * detail::fast_tanh(c[s]);
        }
    }

    static void last_step(const sparse_op& op, const matrix& x, matrix& y) {
        const std::size_t batch = x.shape(0), steps = op.in.c, f = op.in.h;
        for (std::size_t s = 0; s < batch; ++s) {
            const float* src = x.data() + (s * steps + steps - 1) * f;
            std::copy(src, src + f, y.data() + s * f);
        }
    }

    /// detail::im2col with the geometry known at run time.
    static void im2col(const detail::conv_geometry& g, const float* __restrict x, float* __restrict col) {
        const std::size_t k = g.kernel, s = g.stride, p = g.padding, oh = g.out_height, ow = g.out_width;
        const std::size_t hw = g.height * g.width;
        for (std::size_t c = 0; c < g.channels; ++c)
            for (std::size_t i = 0; i < k; ++i) {
                std::size_t ylo, yhi;
                g.valid_range(i, g.height, oh, ylo, yhi);
                for (std::size_t j = 0; j < k; ++j) {
                    std::size_t xlo, xhi;
                    g.valid_range(j, g.width, ow, xlo, xhi);
                    float* row = col + ((c * k + i) * k + j) * oh * ow;
                    std::fill(row, row + oh * ow, 0.0f);
                    for (std::size_t oy = ylo; oy < yhi; ++oy) {
                        const float* src = x + c * hw + (oy * s + i - p) * g.width + j - p;
                        for (std::size_t ox = xlo; ox < xhi; ++ox) row[oy * ow + ox] = src[ox * s];
                    }
                }
            }
    }

    template <class Fn>
    static void map(const matrix& x, matrix& y) {
        const float* xp = x.data();
        float* yp = y.data();
        for (std::size_t i = 0, n = x.size(); i < n; ++i) yp[i] = Fn::value(xp[i]);
    }

    template <bool Max>
    void pool(const sparse_op& op, const matrix& x, matrix& y) {
        const std::size_t batch = x.shape(0), k = op.kernel, s = op.stride;
        const dims3 in = op.in, out = op.out;
        const float scale = 1.0f / static_cast<float>(k * k);
        if (Max && k == 2 && s == 2 && in.h == 2 * out.h && in.w == 2 * out.w) {
            // Tiled 2x2 (LeNet-5): two passes that vectorise, one sample at a time: the larger
            // of the two input rows of each output row (8 floats at a time when the width is
            // a multiple of 8: with a run-time width GCC left these loops scalar), then of
            // each horizontal pair, over the whole sample (pairs are adjacent floats).
            // (max2x2_forward in layers/pooling.hpp does the same for training, where it also
            // keeps the winners and has the sizes as constants.)
            const std::size_t rows = in.c * out.h, w = in.w, pairs = rows * out.w;
            if (pairs_.size() < rows * w) pairs_.resize(rows * w);
            float* __restrict v = pairs_.data();
            for (std::size_t r = 0; r < batch; ++r) {
                const float* __restrict xp = x.data() + r * in.size();
                if (w % 8 == 0) {
                    using f8 = float __attribute__((vector_size(32)));
                    for (std::size_t q = 0; q < rows; ++q)
                        for (std::size_t e = 0; e < w; e += 8) {
                            f8 top, bottom;
                            std::memcpy(&top, xp + 2 * q * w + e, sizeof top);
                            std::memcpy(&bottom, xp + (2 * q + 1) * w + e, sizeof bottom);
                            const f8 m = bottom > top ? bottom : top;
                            std::memcpy(v + q * w + e, &m, sizeof m);
                        }
                } else {
                    for (std::size_t q = 0; q < rows; ++q)
                        for (std::size_t e = 0; e < w; ++e) v[q * w + e] = std::max(xp[2 * q * w + e], xp[(2 * q + 1) * w + e]);
                }
                float* __restrict yp = y.data() + r * out.size();
                for (std::size_t p = 0; p < pairs; ++p) yp[p] = std::max(v[2 * p], v[2 * p + 1]);
            }
            return;
        }
        if (Max && k == 2 && s == 2) {  // 2x2 windows on odd sizes: two input rows per output row
            const std::size_t planes = batch * in.c;
            for (std::size_t p = 0; p < planes; ++p) {
                const float* xc = x.data() + p * in.h * in.w;
                float* yc = y.data() + p * out.h * out.w;
                for (std::size_t oy = 0; oy < out.h; ++oy) {
                    const float* r0 = xc + 2 * oy * in.w;
                    const float* r1 = r0 + in.w;
                    for (std::size_t ox = 0; ox < out.w; ++ox)
                        yc[oy * out.w + ox] = std::max(std::max(r0[2 * ox], r0[2 * ox + 1]), std::max(r1[2 * ox], r1[2 * ox + 1]));
                }
            }
            return;
        }
        for (std::size_t r = 0; r < batch; ++r)
            for (std::size_t c = 0; c < in.c; ++c) {
                const float* xc = x.data() + r * in.size() + c * in.h * in.w;
                float* yc = y.data() + r * out.size() + c * out.h * out.w;
                for (std::size_t oy = 0; oy < out.h; ++oy)
                    for (std::size_t ox = 0; ox < out.w; ++ox) {
                        const float* win = xc + oy * s * in.w + ox * s;
                        float v = Max ? win[0] : 0.0f;
                        for (std::size_t i = 0; i < k; ++i)
                            for (std::size_t j = 0; j < k; ++j)
                                v = Max ? std::max(v, win[i * in.w + j]) : v + win[i * in.w + j];
                        yc[oy * out.w + ox] = Max ? v : v * scale;
                    }
            }
    }

    std::vector<matrix> buffers_;
    matrix sample_in_, stage_;
    std::vector<float> xt_, yt_, col_, z_, cell_, hidden_, xpad_, pairs_, partial_;
};

// --------------------------------------------------------------------------- pruning

namespace detail {

inline bool keeps_channels(op_kind k) {
    return k == op_kind::relu || k == op_kind::tanh || k == op_kind::sigmoid || k == op_kind::max_pool ||
           k == op_kind::avg_pool || k == op_kind::reshape;
}

inline float apply_elementwise(op_kind k, float v) {
    switch (k) {
        case op_kind::relu: return relu_fn::value(v);
        case op_kind::tanh: return tanh_fn::value(v);
        case op_kind::sigmoid: return sigmoid_fn::value(v);
        default: return v;  // pooling a constant map gives the constant
    }
}

/// The next weighted operation after `p` if only channel-preserving operations lie
/// between (and every reshape flattens); its columns for unit r are [r*g, (r+1)*g).
inline bool find_consumer(const std::vector<sparse_op>& ops, std::size_t p, std::size_t& q, std::size_t& g) {
    for (q = p + 1; q < ops.size(); ++q) {
        const sparse_op& op = ops[q];
        if (op.kind == op_kind::lstm) return false;  // see prune_dead_units
        if (op.has_weights()) {
            const std::size_t units = ops[p].out.c;
            if (units == 0 || op.cols() % units != 0) return false;
            g = op.cols() / units;
            return op.kind == op_kind::dense || op.in.c == units;
        }
        if (!keeps_channels(op.kind)) return false;
        if (op.kind == op_kind::reshape && (op.out.h != 1 || op.out.w != 1)) return false;
    }
    return false;
}

/// Removes the units `drop` of ops[p] (its rows) and their columns in ops[q], folding the
/// constant output `constant[r]` of a unit without incoming weights into ops[q]'s bias.
inline void remove_units(std::vector<sparse_op>& ops, std::size_t p, std::size_t q, std::size_t g,
                         const std::vector<char>& drop, const std::vector<float>& constant) {
    sparse_op& prod = ops[p];
    sparse_op& cons = ops[q];
    const std::size_t units = prod.rows(), prod_cols = prod.cols(), cons_rows = cons.rows(), cons_cols = cons.cols();
    std::size_t kept = 0;
    for (std::size_t r = 0; r < units; ++r) kept += !drop[r];
    for (std::size_t r = 0; r < units; ++r)
        if (drop[r] && constant[r] != 0.0f)
            for (std::size_t o = 0; o < cons_rows; ++o) {
                float s = 0;
                for (std::size_t j = r * g; j < (r + 1) * g; ++j) s += cons.dense[o * cons_cols + j];
                cons.bias[o] += s * constant[r];
            }
    std::vector<float> pw, pb, cw;
    pw.reserve(kept * prod_cols);
    for (std::size_t r = 0; r < units; ++r)
        if (!drop[r]) {
            pw.insert(pw.end(), prod.dense.begin() + static_cast<std::ptrdiff_t>(r * prod_cols),
                      prod.dense.begin() + static_cast<std::ptrdiff_t>((r + 1) * prod_cols));
            pb.push_back(prod.bias[r]);
        }
    cw.reserve(cons_rows * kept * g);
    for (std::size_t o = 0; o < cons_rows; ++o)
        for (std::size_t r = 0; r < units; ++r)
            if (!drop[r])
                for (std::size_t j = r * g; j < (r + 1) * g; ++j) cw.push_back(cons.dense[o * cons_cols + j]);
    prod.dense = std::move(pw);
    prod.bias = std::move(pb);
    prod.csr.rows = kept;
    prod.out.c = kept;
    for (std::size_t i = p + 1; i < q; ++i) {
        ops[i].in.c = kept;
        if (ops[i].kind == op_kind::reshape)
            ops[i].out = {kept * ops[i].in.h * ops[i].in.w, 1, 1};
        else
            ops[i].out.c = kept;
    }
    cons.dense = std::move(cw);
    cons.csr.cols = kept * g;
    if (cons.kind == op_kind::dense)
        cons.in = {kept * g, 1, 1};
    else
        cons.in.c = kept;
}

/// Removes, until nothing changes, every unit (neuron or filter) whose incoming weights
/// are all zero (its constant output is folded into the next layer's bias) or whose
/// outgoing weights are all zero. Works on the dense copies; call before compressing.
/// LSTM units are kept: one without incoming weights still has a cell driven by its
/// biases, so its output changes from step to step and no constant bias can replace it.
inline void prune_dead_units(std::vector<sparse_op>& ops) {
    for (bool changed = true; changed;) {
        changed = false;
        for (std::size_t p = 0; p < ops.size(); ++p) {
            std::size_t q = 0, g = 0;
            const bool producer = ops[p].kind == op_kind::dense || ops[p].kind == op_kind::conv;
            if (!producer || !find_consumer(ops, p, q, g)) continue;
            const sparse_op& prod = ops[p];
            const sparse_op& cons = ops[q];
            const std::size_t units = prod.rows(), cols = prod.cols();
            std::vector<char> drop(units, 0);
            std::vector<float> constant(units, 0.0f);
            std::size_t dropped = 0;
            for (std::size_t r = 0; r < units; ++r) {
                const bool no_inputs = std::all_of(prod.dense.begin() + static_cast<std::ptrdiff_t>(r * cols),
                                                   prod.dense.begin() + static_cast<std::ptrdiff_t>((r + 1) * cols),
                                                   [](float v) { return v == 0.0f; });
                bool no_outputs = true;
                for (std::size_t o = 0; o < cons.rows() && no_outputs; ++o)
                    for (std::size_t j = r * g; j < (r + 1) * g; ++j)
                        if (cons.dense[o * cons.cols() + j] != 0.0f) {
                            no_outputs = false;
                            break;
                        }
                float c = prod.bias[r];
                for (std::size_t i = p + 1; i < q; ++i) c = apply_elementwise(ops[i].kind, c);
                // A padded convolution sees the constant map next to zeros: not foldable.
                const bool foldable = c == 0.0f || cons.kind == op_kind::dense || cons.padding == 0;
                if (no_outputs || (no_inputs && foldable && std::isfinite(c))) {
                    drop[r] = 1;
                    constant[r] = no_outputs ? 0.0f : c;
                    ++dropped;
                }
            }
            if (dropped == units) {  // keep one unit so every shape stays non-empty
                drop[0] = 0;
                --dropped;
            }
            if (dropped == 0) continue;
            remove_units(ops, p, q, g, drop, constant);
            changed = true;
        }
    }
}

}  // namespace detail

/// Builds each weighted operation's CSR from its dense copy, then keeps the dense copy only
/// where the engine will use it.
inline void compress(sparse_model& m) {
    for (auto& op : m.ops)
        if (op.has_weights()) op.csr = csr_matrix::from_dense(op.dense.data(), op.csr.rows, op.csr.cols);
    m.prepare();
}

// --------------------------------------------------------------------------- file format

namespace detail {

inline void write_matrix(byte_writer& out, const csr_matrix& m) {
    const std::size_t nnz = m.nonzeros();
    const bool narrow = m.cols <= 65536;
    const std::size_t csr_bytes = 4 * (m.rows + 1) + nnz * ((narrow ? 2 : 4) + 4) + 4;
    const bool as_dense = m.rows * m.cols * 4 <= csr_bytes;
    out.u8(as_dense ? 0 : narrow ? 1 : 2);
    out.u32(static_cast<std::uint32_t>(m.rows));
    out.u32(static_cast<std::uint32_t>(m.cols));
    if (as_dense) {
        const std::vector<float> d = m.to_dense();
        out.raw(std::span<const float>(d));
        return;
    }
    out.u32(static_cast<std::uint32_t>(nnz));
    out.raw(std::span<const std::uint32_t>(m.row_start));
    if (narrow) {
        std::vector<std::uint16_t> c(m.column.size());
        for (std::size_t i = 0; i < c.size(); ++i) c[i] = static_cast<std::uint16_t>(m.column[i]);
        out.raw(std::span<const std::uint16_t>(c));
    } else {
        out.raw(std::span<const std::uint32_t>(m.column));
    }
    out.raw(std::span<const float>(m.value));
}

inline csr_matrix read_matrix(byte_reader& in, const std::string& where) {
    const std::uint8_t format = in.u8("weight format");
    if (format > 2) in.fail(where + ": unknown weight format " + std::to_string(format));
    csr_matrix m;
    m.rows = in.u32("rows");
    m.cols = in.u32("cols");
    if (m.rows == 0 || m.cols == 0 || m.rows > max_model_dim || m.cols > max_model_dim ||
        m.rows * m.cols > max_model_elements)
        in.fail(where + ": unsupported weight shape " + std::to_string(m.rows) + " x " + std::to_string(m.cols));
    if (format == 0) {
        if (m.rows * m.cols * 4 > in.remaining()) in.fail(where + ": truncated dense weights");
        std::vector<float> d(m.rows * m.cols);
        in.raw_into(std::span<float>(d), "dense weights");
        return csr_matrix::from_dense(d.data(), m.rows, m.cols);
    }
    const std::size_t nnz = in.u32("non-zero count");
    if (nnz > m.rows * m.cols) in.fail(where + ": " + std::to_string(nnz) + " non-zeros in a " +
                                       std::to_string(m.rows) + " x " + std::to_string(m.cols) + " matrix");
    if ((m.rows + 1) * 4 + nnz * (format == 1 ? 6 : 8) > in.remaining()) in.fail(where + ": truncated sparse weights");
    m.row_start.resize(m.rows + 1);
    in.raw_into(std::span<std::uint32_t>(m.row_start), "row starts");
    m.column.resize(nnz);
    if (format == 1) {
        std::vector<std::uint16_t> c(nnz);
        in.raw_into(std::span<std::uint16_t>(c), "columns");
        std::copy(c.begin(), c.end(), m.column.begin());
    } else {
        in.raw_into(std::span<std::uint32_t>(m.column), "columns");
    }
    m.value.resize(nnz);
    in.raw_into(std::span<float>(m.value), "values");
    if (m.row_start[0] != 0 || m.row_start[m.rows] != nnz) in.fail(where + ": row starts do not span the non-zeros");
    for (std::size_t i = 0; i < m.rows; ++i)
        if (m.row_start[i + 1] < m.row_start[i]) in.fail(where + ": row starts decrease at row " + std::to_string(i));
    for (std::size_t k = 0; k < nnz; ++k)
        if (m.column[k] >= m.cols)
            in.fail(where + ": column " + std::to_string(m.column[k]) + " out of range (" + std::to_string(m.cols) +
                    " columns)");
    return m;
}

inline dims3 read_dims(byte_reader& in, const std::string& where) {
    dims3 d;
    d.c = in.u32("shape");
    d.h = in.u32("shape");
    d.w = in.u32("shape");
    if (d.c == 0 || d.h == 0 || d.w == 0 || d.c > max_model_dim || d.h > max_model_dim || d.w > max_model_dim ||
        d.size() > max_model_elements)
        in.fail(where + ": unsupported shape " + d.str());
    return d;
}

/// The output shape an operation must have, or a failure naming what is wrong.
inline dims3 expected_output(const sparse_op& op, byte_reader& in, const std::string& where) {
    const dims3 d = op.in;
    auto window = [&](std::size_t pad) {
        if (op.kernel == 0 || op.stride == 0 || op.kernel > 64 || op.stride > 64 || pad > 64 ||
            op.kernel > d.h + 2 * pad || op.kernel > d.w + 2 * pad)
            in.fail(where + ": window " + std::to_string(op.kernel) + ", stride " + std::to_string(op.stride) +
                    ", padding " + std::to_string(pad) + " does not fit the input " + d.str());
        return dims3{d.c, (d.h + 2 * pad - op.kernel) / op.stride + 1, (d.w + 2 * pad - op.kernel) / op.stride + 1};
    };
    switch (op.kind) {
        case op_kind::dense:
            if (op.cols() != d.size())
                in.fail(where + ": " + std::to_string(op.cols()) + " weight columns for an input of " + d.str());
            return {op.rows(), 1, 1};
        case op_kind::conv: {
            dims3 o = window(op.padding);
            if (op.cols() != d.c * op.kernel * op.kernel)
                in.fail(where + ": " + std::to_string(op.cols()) + " weight columns for " + std::to_string(d.c) +
                        " channels and a " + std::to_string(op.kernel) + "x" + std::to_string(op.kernel) + " kernel");
            if (op.cols() * o.h * o.w > max_model_elements) in.fail(where + ": unfolded input too large");
            o.c = op.rows();
            return o;
        }
        case op_kind::max_pool:
        case op_kind::avg_pool:
            if (op.padding != 0) in.fail(where + ": pooling has no padding");
            return window(0);
        case op_kind::reshape:
            if (op.out.size() != d.size()) in.fail(where + ": reshape changes the size of " + d.str());
            return op.out;
        case op_kind::lstm: {
            if (d.w != 1) in.fail(where + ": the input " + d.str() + " is not a sequence (steps, features, 1)");
            const std::size_t hidden = op.rows() / 4;
            if (op.rows() % 4 != 0 || op.cols() != d.h + hidden)
                in.fail(where + ": " + std::to_string(op.rows()) + " x " + std::to_string(op.cols()) +
                        " weights are not the 4H x (F + H) of an LSTM reading " + std::to_string(d.h) + " features");
            if (d.c * op.rows() * op.cols() > 4 * max_model_elements) in.fail(where + ": sequence too long for its weights");
            return {d.c, hidden, 1};
        }
        case op_kind::last_step:
            if (d.w != 1) in.fail(where + ": the input " + d.str() + " is not a sequence (steps, features, 1)");
            return {d.h, 1, 1};
        default: return d;
    }
}

}  // namespace detail

/// The exported model as bytes (the file's content).
inline std::string sparse_model_bytes(const sparse_model& m) {
    byte_writer out;
    auto dims = [&](const dims3& d) {
        out.u32(static_cast<std::uint32_t>(d.c));
        out.u32(static_cast<std::uint32_t>(d.h));
        out.u32(static_cast<std::uint32_t>(d.w));
    };
    dims(m.input);
    out.u64(m.ops.size());
    for (const auto& op : m.ops) {
        out.u8(static_cast<std::uint8_t>(op.kind));
        dims(op.in);
        dims(op.out);
        out.u32(static_cast<std::uint32_t>(op.kernel));
        out.u32(static_cast<std::uint32_t>(op.stride));
        out.u32(static_cast<std::uint32_t>(op.padding));
        if (!op.has_weights()) continue;
        out.floats(op.bias);
        detail::write_matrix(out, op.csr);
    }
    return frame(exported_model_kind.magic, exported_model_kind.version, out.bytes());
}

/// Parses and checks an exported model; `file` names the bytes in messages.
inline sparse_model parse_sparse_model(std::string_view bytes, const std::string& file) {
    byte_reader in(unframe(bytes, file, exported_model_kind, known_file_kinds), file);
    sparse_model m;
    m.input = detail::read_dims(in, "input");
    const std::uint64_t count = in.length("operation count", 37);
    if (count == 0) in.fail("the model has no operations");
    dims3 cur = m.input;
    for (std::uint64_t i = 0; i < count; ++i) {
        sparse_op op;
        const std::string where = "operation " + std::to_string(i);
        const std::uint8_t kind = in.u8("operation kind");
        if (kind < 1 || kind > last_op_kind) in.fail(where + ": unknown operation kind " + std::to_string(kind));
        op.kind = static_cast<op_kind>(kind);
        op.in = detail::read_dims(in, where);
        op.out = detail::read_dims(in, where);
        op.kernel = in.u32("kernel");
        op.stride = in.u32("stride");
        op.padding = in.u32("padding");
        const std::string named = where + " (" + op_name(op.kind) + ")";
        if (!(op.in == cur)) in.fail(named + ": input shape " + op.in.str() + ", but the previous output is " + cur.str());
        if (op.has_weights()) {
            op.bias = in.floats("bias");
            op.csr = detail::read_matrix(in, named);
            if (op.bias.size() != op.rows())
                in.fail(named + ": " + std::to_string(op.bias.size()) + " biases for " + std::to_string(op.rows()) +
                        " outputs");
        }
        const dims3 expected = detail::expected_output(op, in, named);
        if (!(op.out == expected)) in.fail(named + ": output shape " + op.out.str() + ", expected " + expected.str());
        cur = op.out;
        m.ops.push_back(std::move(op));
    }
    in.expect_end();
    m.prepare();
    return m;
}

inline void save_sparse_model(const sparse_model& m, const std::filesystem::path& path) {
    write_file_atomically(path, sparse_model_bytes(m), "exported model");
}

inline sparse_model load_sparse_model(const std::filesystem::path& path) {
    return parse_sparse_model(read_binary_file(path), path.string());
}

}  // namespace dynsparse
