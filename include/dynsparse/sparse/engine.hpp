#pragma once
// sparse_model: the exported model (sparse/op.hpp's operations) and the engine that runs
// it on a batch. Per layer and batch the engine picks the kernel by density: sparse when
// the layer's density is below sparse_density_threshold(kind, batch, stride)
// (figures in docs/benchmarks.md).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "dynsparse/core/blas.hpp"
#include "dynsparse/core/error.hpp"
#include "dynsparse/core/tensor.hpp"
#include "dynsparse/detail/im2col.hpp"
#include "dynsparse/detail/lstm_kernels.hpp"  // fast_sigmoid, fast_tanh: the layer's gate functions
#include "dynsparse/layers/activations.hpp"
#include "dynsparse/sparse/csr.hpp"
#include "dynsparse/sparse/direct_conv.hpp"
#include "dynsparse/sparse/op.hpp"

namespace dynsparse {

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
    /// updates also vectorise; batch padded to a multiple of 16 columns). Alternatives tried
    /// are in docs/benchmarks.md.
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

}  // namespace dynsparse
