#pragma once
// The exported model's data: the kinds of operation, shapes (dims3), one operation
// (sparse_op) and the density threshold the engine uses to pick a kernel.
//
// A model is a runtime list of operations (dense, conv, relu, tanh, sigmoid, max_pool,
// avg_pool, reshape, lstm, last_step), each with its input and output shape (C, H, W;
// vectors are (n, 1, 1); sequences (T, F, 1)). An lstm holds [W_ih | W_hh] (4H x (F + H),
// gates i, f, g, o as in layers/lstm.hpp) and 4H biases and returns every hidden state;
// last_step keeps the last one. Batch norm has no operation: export folds it into the
// convolution or dense layer before it.
// Weights are kept as CSR and, for layers dense enough that BLAS beats the sparse kernel,
// also as a dense matrix.
#include <cstdint>
#include <string>
#include <vector>

#include "dynsparse/core/tensor.hpp"
#include "dynsparse/detail/im2col.hpp"
#include "dynsparse/sparse/csr.hpp"
#include "dynsparse/sparse/direct_conv.hpp"  // conv_taps

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
/// stop winning against GEMV (batch 1) and GEMM (measurements in docs/benchmarks.md,
/// `sparse_inference_bench density`). Stride-1 convolutions always run the direct sparse
/// convolution (sparse/direct_conv.hpp); strided ones unfold the input and use the CSR
/// kernel below 0.6.
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

namespace detail {

/// Bounds the loader puts on the work a model file can declare, per sample, so that a
/// small file cannot ask for hours of computation or gigabytes of buffers (a 66 KB file
/// of pooling windows and elementwise passes on a large input once cost 1.4 s a sample).
/// Work: 2^30 arithmetic operations (multiply-adds, comparisons, element updates), 3.4
/// times a dense VGG-16 on CIFAR-10 (3.2e8); at this bound the slowest kernel (a 64x64
/// pooling window) takes about 0.5 s a sample.
/// Activations: 2^26 floats (256 MiB), the outputs of every operation plus the largest
/// scratch (unfolded input, LSTM gates); LeNet-5 needs about 3e4, VGG-16 on CIFAR-10 1.2e6.
inline constexpr std::uint64_t max_model_work = std::uint64_t{1} << 30;
inline constexpr std::uint64_t max_model_activations = std::uint64_t{1} << 26;

/// Arithmetic operations one sample costs in `op` (multiply-adds of a product, comparisons
/// of a pooling window, one per element of an activation) with its shapes checked,
/// the dense kernel's figure for weighted operations (an upper bound on the sparse ones,
/// and what kernel_choice::dense runs).
inline std::uint64_t op_work(const sparse_op& op) {
    const std::uint64_t rows = op.rows(), cols = op.cols(), out = op.out.size();
    switch (op.kind) {
        case op_kind::dense: return rows * cols + rows;
        case op_kind::conv: {
            const std::uint64_t positions = std::uint64_t{op.out.h} * op.out.w;
            return (rows + 1) * cols * positions;  // the product and the unfolding
        }
        case op_kind::lstm: return std::uint64_t{op.in.c} * (rows * cols + 8 * rows);
        case op_kind::max_pool:
        case op_kind::avg_pool: return out * op.kernel * op.kernel;
        case op_kind::relu:
        case op_kind::tanh:
        case op_kind::sigmoid:
        case op_kind::last_step: return out;
        case op_kind::reshape: return 0;
    }
    return out;
}

/// Floats of scratch the engine may need for `op` besides its output (shared between
/// operations): the unfolded input of a convolution, the gate pre-activations of an LSTM.
inline std::uint64_t op_scratch(const sparse_op& op) {
    if (op.kind == op_kind::conv) return std::uint64_t{op.cols()} * op.out.h * op.out.w;
    if (op.kind == op_kind::lstm) return std::uint64_t{op.in.c} * op.rows();
    return 0;
}

}  // namespace detail

}  // namespace dynsparse
