#pragma once
// export_sparse(net): a trained (masked) network as a compact inference model
// (sparse/model.hpp). Masked weights are dropped (the mask is recomputed from W and t as a
// forward pass would), thresholds are discarded, neurons and filters with no incoming or
// no outgoing weights are removed together with their weights in the next layer (the
// constant output of a unit without inputs is folded into the next layer's bias), and each
// layer is stored as CSR (or dense, whichever is smaller).
//
// Layers known here: dense, masked_dense, conv2d, masked_conv2d (with or without bias),
// relu, tanh, sigmoid, max_pool2d, avg_pool2d, flatten / reshape, lstm, masked_lstm,
// last_step, dropout (nothing: the identity at inference) and batch_norm, which is folded
// into the convolution or dense layer directly before it, its evaluation-mode
//   y = gamma (W x + b - mean) / sqrt(var + eps) + beta
// becoming row c of W times s_c = gamma_c / sqrt(var_c + eps) and the bias
// (b_c - mean_c) s_c + beta_c; a batch norm anywhere else makes the network not
// exportable (ExportableNetwork is false). Any other layer exports itself through
//   void export_inference(std::vector<sparse_op>& ops)
// appending the operations the engine runs for it (a new kind of operation also needs its
// kernel in sparse/engine.hpp and its checks in sparse/format.hpp).
#include <cmath>
#include <type_traits>
#include <utility>
#include <vector>

#include "dynsparse/core/error.hpp"
#include "dynsparse/layers/activations.hpp"
#include "dynsparse/layers/batch_norm.hpp"
#include "dynsparse/layers/conv2d.hpp"
#include "dynsparse/layers/dense.hpp"
#include "dynsparse/layers/dropout.hpp"
#include "dynsparse/layers/lstm.hpp"
#include "dynsparse/layers/masked_conv2d.hpp"
#include "dynsparse/layers/masked_dense.hpp"
#include "dynsparse/layers/masked_lstm.hpp"
#include "dynsparse/layers/pooling.hpp"
#include "dynsparse/layers/reshape.hpp"
#include "dynsparse/sparse/model.hpp"

namespace dynsparse {

namespace detail {

template <class Sh>
dims3 dims_of() {
    static_assert(Sh::rank <= 3, "export: shapes of rank above 3 are not supported");
    dims3 d;
    d.c = Sh::dims[0];
    if constexpr (Sh::rank > 1) d.h = Sh::dims[1];
    if constexpr (Sh::rank > 2) d.w = Sh::dims[2];
    return d;
}

inline sparse_op make_weighted_op(op_kind kind, dims3 in, dims3 out, const matrix& w, const vector& b) {
    sparse_op op;
    op.kind = kind;
    op.in = in;
    op.out = out;
    op.dense.assign(w.data(), w.data() + w.size());
    op.bias.assign(b.data(), b.data() + b.size());
    op.bias.resize(w.shape(0), 0.0f);  // a layer without bias: zeros
    op.csr.rows = w.shape(0);
    op.csr.cols = w.shape(1);
    return op;
}

inline sparse_op make_plain_op(op_kind kind, dims3 in, dims3 out) {
    sparse_op op;
    op.kind = kind;
    op.in = in;
    op.out = out;
    return op;
}

template <class L>
sparse_op weighted_op(op_kind kind, const matrix& w, const vector& b) {
    return make_weighted_op(kind, dims_of<typename L::input_shape>(), dims_of<typename L::output_shape>(), w, b);
}

template <class L>
sparse_op plain_op(op_kind kind) {
    return make_plain_op(kind, dims_of<typename L::input_shape>(), dims_of<typename L::output_shape>());
}

template <std::size_t In, std::size_t Out>
void export_layer(std::vector<sparse_op>& ops, dense_layer<In, Out>& l) {
    ops.push_back(weighted_op<dense_layer<In, Out>>(op_kind::dense, l.weight(), l.bias()));
}

template <std::size_t In, std::size_t Out, class S, class G>
void export_layer(std::vector<sparse_op>& ops, masked_dense_layer<In, Out, S, G>& l) {
    l.update_mask();  // what the next forward pass would use
    ops.push_back(weighted_op<masked_dense_layer<In, Out, S, G>>(op_kind::dense, l.masked_weight(), l.bias()));
}

template <class In, std::size_t Out, std::size_t K, std::size_t St, std::size_t P, bool B>
void export_layer(std::vector<sparse_op>& ops, conv2d_layer<In, Out, K, St, P, B>& l) {
    auto op = weighted_op<conv2d_layer<In, Out, K, St, P, B>>(op_kind::conv, l.weight(), l.bias());
    op.kernel = K;
    op.stride = St;
    op.padding = P;
    ops.push_back(std::move(op));
}

template <class In, std::size_t Out, std::size_t K, std::size_t St, std::size_t P, class S, class G, bool B>
void export_layer(std::vector<sparse_op>& ops, masked_conv2d_layer<In, Out, K, St, P, S, G, B>& l) {
    l.update_mask();
    auto op = weighted_op<masked_conv2d_layer<In, Out, K, St, P, S, G, B>>(op_kind::conv, l.masked_weight(), l.bias());
    op.kernel = K;
    op.stride = St;
    op.padding = P;
    ops.push_back(std::move(op));
}

template <class Fn, class In>
void export_layer(std::vector<sparse_op>& ops, activation_layer<Fn, In>&) {
    constexpr op_kind kind = std::is_same_v<Fn, relu_fn>   ? op_kind::relu
                             : std::is_same_v<Fn, tanh_fn> ? op_kind::tanh
                                                           : op_kind::sigmoid;
    static_assert(std::is_same_v<Fn, relu_fn> || std::is_same_v<Fn, tanh_fn> || std::is_same_v<Fn, sigmoid_fn>,
                  "export: unknown activation");
    ops.push_back(plain_op<activation_layer<Fn, In>>(kind));
}

template <class In, std::size_t K, std::size_t St, bool Max>
void export_layer(std::vector<sparse_op>& ops, pool2d_layer<In, K, St, Max>&) {
    auto op = plain_op<pool2d_layer<In, K, St, Max>>(Max ? op_kind::max_pool : op_kind::avg_pool);
    op.kernel = K;
    op.stride = St;
    ops.push_back(std::move(op));
}

template <class In, class Out>
void export_layer(std::vector<sparse_op>& ops, reshape_layer<In, Out>&) {
    ops.push_back(plain_op<reshape_layer<In, Out>>(op_kind::reshape));
}

template <std::size_t T, std::size_t F, std::size_t H>
void export_layer(std::vector<sparse_op>& ops, lstm_layer<T, F, H>& l) {
    ops.push_back(weighted_op<lstm_layer<T, F, H>>(op_kind::lstm, l.weight(), l.bias()));
}

template <std::size_t T, std::size_t F, std::size_t H, class S, class G>
void export_layer(std::vector<sparse_op>& ops, masked_lstm_layer<T, F, H, S, G>& l) {
    l.update_mask();
    ops.push_back(weighted_op<masked_lstm_layer<T, F, H, S, G>>(op_kind::lstm, l.masked_weight(), l.bias()));
}

template <std::size_t T, std::size_t F>
void export_layer(std::vector<sparse_op>& ops, last_step_layer<T, F>&) {
    ops.push_back(plain_op<last_step_layer<T, F>>(op_kind::last_step));
}

template <class In, unsigned Percent>
void export_layer(std::vector<sparse_op>&, dropout_layer<In, Percent>&) {}  // the identity at inference

/// Folds evaluation-mode batch norm into the operation before it (see the header).
template <class In>
void export_layer(std::vector<sparse_op>& ops, batch_norm_layer<In>& l) {
    constexpr std::size_t channels = batch_norm_layer<In>::channels;
    if (ops.empty() || (ops.back().kind != op_kind::dense && ops.back().kind != op_kind::conv) ||
        ops.back().rows() != channels || !(ops.back().out == dims_of<In>()))
        throw invalid_argument("export: a batch_norm must directly follow a convolution or dense layer "
                               "(it is folded into its weights)");
    sparse_op& op = ops.back();
    const std::size_t cols = op.cols();
    for (std::size_t c = 0; c < channels; ++c) {
        const float scale = l.gamma()(c) / std::sqrt(l.running_var()(c) + l.epsilon());
        for (std::size_t j = 0; j < cols; ++j) op.dense[c * cols + j] *= scale;
        op.bias[c] = (op.bias[c] - l.running_mean()(c)) * scale + l.beta()(c);
    }
}

template <class L>
    requires requires(L& l, std::vector<sparse_op>& ops) { l.export_inference(ops); }
void export_layer(std::vector<sparse_op>& ops, L& l) {
    l.export_inference(ops);
}

template <class Net, std::size_t... Is>
constexpr bool every_layer_exports(std::index_sequence<Is...>);

}  // namespace detail

/// A layer export_sparse knows how to export (see the header).
template <class L>
concept ExportableLayer = requires(L& l, std::vector<sparse_op>& ops) { detail::export_layer(ops, l); };

namespace detail {
template <class L>
struct is_batch_norm : std::false_type {};
template <class In>
struct is_batch_norm<batch_norm_layer<In>> : std::true_type {};

/// Layers a following batch norm can be folded into.
template <class L>
struct folds_batch_norm : std::false_type {};
template <std::size_t In, std::size_t Out>
struct folds_batch_norm<dense_layer<In, Out>> : std::true_type {};
template <std::size_t In, std::size_t Out, class S, class G>
struct folds_batch_norm<masked_dense_layer<In, Out, S, G>> : std::true_type {};
template <class In, std::size_t Out, std::size_t K, std::size_t St, std::size_t P, bool B>
struct folds_batch_norm<conv2d_layer<In, Out, K, St, P, B>> : std::true_type {};
template <class In, std::size_t Out, std::size_t K, std::size_t St, std::size_t P, class S, class G, bool B>
struct folds_batch_norm<masked_conv2d_layer<In, Out, K, St, P, S, G, B>> : std::true_type {};

template <class Net, std::size_t I>
constexpr bool layer_exports() {
    using L = typename Net::template layer_type<I>;
    if constexpr (is_batch_norm<L>::value) {
        if constexpr (I == 0)
            return false;
        else
            return folds_batch_norm<typename Net::template layer_type<I - 1>>::value;
    } else {
        return ExportableLayer<L>;
    }
}

template <class Net, std::size_t... Is>
constexpr bool every_layer_exports(std::index_sequence<Is...>) {
    return (layer_exports<Net, Is>() && ...);
}
}  // namespace detail

/// A network whose every layer is an ExportableLayer, and whose batch norms each directly
/// follow a convolution or dense layer.
template <class Net>
concept ExportableNetwork =
    detail::every_layer_exports<Net>(std::make_index_sequence<Net::layer_count>{});

/// The exported inference model of a network (see the header). Non-const: a masked
/// layer's mask is recomputed from W and t first, as its next forward pass would.
struct export_options {
    bool remove_dead_units = true;  ///< off: every layer keeps its shape (for comparisons)
};

template <class Net>
sparse_model export_sparse(Net& net, export_options options = {}) {
    static_assert(ExportableNetwork<Net>,
                  "export_sparse: a layer of this network cannot be exported; give it a member "
                  "`void export_inference(std::vector<dynsparse::sparse_op>&)` (a batch_norm can "
                  "only be exported directly after a convolution or dense layer, into which it "
                  "is folded; residual blocks have no engine kernels)");
    sparse_model m;
    m.input = detail::dims_of<typename Net::input_shape>();
    net.for_each_layer([&](auto& layer, std::size_t) { detail::export_layer(m.ops, layer); });
    if (options.remove_dead_units) detail::prune_dead_units(m.ops);
    compress(m);
    return m;
}

}  // namespace dynsparse
