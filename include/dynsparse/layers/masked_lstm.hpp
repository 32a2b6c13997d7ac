#pragma once
// masked_lstm<Hidden, Surrogate, Granularity>: DST's trainable masked LSTM layer.
//
// The same layer as lstm<Hidden> (layers/lstm.hpp) with its eight weight matrices masked:
// W_ih and W_hh of each gate i, f, g, o (Hidden x F and Hidden x Hidden). Each has its own
// mask and its own thresholds (per_neuron: one per hidden unit, so 8 * Hidden in all);
// biases are never masked. Stored as one 4H x (F + H) matrix [W_ih | W_hh], so
//   Q = |W| - t,  M = step(Q),  Wm = W * M
// is one pass over one matrix, made once per optimizer step (not per time step), and the
// forward and backward passes are lstm's on Wm. Backward: dL/dWm from backpropagation
// through time, then the same performance + structure gradients and threshold gradients
// as masked_dense (masked_weights.hpp). The 1% reset rule looks at the whole layer.
// Below a kept fraction (layers/product_mode.hpp) the input projection, the recurrent
// products and the input gradients use each half's kept weights only.
#include <array>
#include <string>
#include <string_view>

#include "dynsparse/core/shape.hpp"
#include "dynsparse/detail/lstm_kernels.hpp"
#include "dynsparse/layers/layer.hpp"
#include "dynsparse/layers/lstm.hpp"
#include "dynsparse/layers/masked_weights.hpp"
#include "dynsparse/layers/product_mode.hpp"
#include "dynsparse/surrogate/surrogate.hpp"
#include "dynsparse/threshold/granularity.hpp"

namespace dynsparse {

namespace detail {

/// Which threshold each weight of an LSTM's [W_ih | W_hh] (4H x (F + H)) uses when each
/// of its eight gate matrices has its own thresholds of granularity G. Thresholds are laid
/// out matrix by matrix: W_ih of gates i, f, g, o, then W_hh of gates i, f, g, o; with
/// per_neuron that is row r of W_ih at r and row r of W_hh at 4H + r.
template <ThresholdGranularity G, std::size_t F, std::size_t H>
struct lstm_gate_thresholds_base {
    static constexpr std::string_view name = G::name;
    static constexpr std::size_t per_input_matrix = G::count(H, F);
    static constexpr std::size_t per_recurrent_matrix = G::count(H, H);
    static constexpr std::size_t count(std::size_t, std::size_t) {
        return 4 * per_input_matrix + 4 * per_recurrent_matrix;
    }
    static constexpr std::size_t index(std::size_t i, std::size_t j, std::size_t) {
        const std::size_t gate = i / H, row = i % H;
        return j < F ? gate * per_input_matrix + G::index(row, j, F)
                     : 4 * per_input_matrix + gate * per_recurrent_matrix + G::index(row, j - F, H);
    }
    static constexpr bool varies_along_row = true;  // W_ih and W_hh halves of a row differ
    static constexpr bool for_dense = G::for_dense;
    static constexpr bool for_conv = false;
};

template <ThresholdGranularity G, std::size_t F, std::size_t H>
struct lstm_gate_thresholds : lstm_gate_thresholds_base<G, F, H> {};

/// With a granularity constant along rows (per_neuron, scalar), each half of a row shares
/// one threshold: the mask kernels then run their vectorised shared-threshold loop on the
/// W_ih and W_hh halves (detail::SplitRowGranularity) instead of one index per weight.
template <ThresholdGranularity G, std::size_t F, std::size_t H>
    requires(!G::varies_along_row)
struct lstm_gate_thresholds<G, F, H> : lstm_gate_thresholds_base<G, F, H> {
    static constexpr std::size_t row_split = F;
};

}  // namespace detail

template <std::size_t T, std::size_t F, std::size_t H, Surrogate S, ThresholdGranularity G>
class masked_lstm_layer
    : public masked_weights<4 * H, F + H, S, detail::lstm_gate_thresholds<G, F, H>> {
    using base = masked_weights<4 * H, F + H, S, detail::lstm_gate_thresholds<G, F, H>>;

public:
    using input_shape = sequence<T, F>;
    using output_shape = sequence<T, H>;
    using gate_granularity = G;
    static constexpr std::size_t gate_rows = 4 * H;
    static constexpr std::size_t fan_in = F + H;

    static std::string describe() {
        return detail::masked_layer_name("masked_lstm", std::to_string(H), S::name, G::name);
    }

    /// PyTorch's nn.LSTM initialisation (see lstm_layer); thresholds 0, so it starts dense.
    void initialize(rng& gen) {
        detail::init_lstm({this->weight_.data(), this->weight_.size()},
                          {this->bias_.data(), this->bias_.size()}, H, gen);
        this->threshold_.fill(0);
        this->invalidate_mask();
    }

    void forward(const matrix& x, matrix& y, bool /*training*/) {
        this->prepare_mask();
        if (products_.decide(4 * H * (F + H), this->kept_count(), kept_gates_crossover)) {
            const float* wm = this->masked_weight_.data();
            input_rows_.build_columns(wm, 4 * H, F + H, 0, F, this->row_kept());
            recurrent_rows_.build_columns(wm, 4 * H, F + H, F, F + H, this->row_kept());
            detail::lstm_forward_with<T, F, H>(x, gate_products(), this->bias_.data(), buf_, y);
        } else {
            detail::lstm_forward<T, F, H>(x, this->masked_weight_.data(), this->bias_.data(), buf_, y);
        }
    }

    void backward(const matrix& x, const matrix& /*y*/, const matrix& dy, matrix* dx) {
        // grad_weight_ first receives dL/dWm, then the mask pass turns it into dL/dW. The
        // weight gradient is dense GEMMs either way; the other products follow the forward.
        if (products_.active())
            detail::lstm_backward_with<T, F, H>(x, dy, gate_products(), buf_, this->grad_weight_.data(),
                                                this->grad_bias_.data(), dx);
        else
            detail::lstm_backward<T, F, H>(x, dy, this->masked_weight_.data(), buf_, this->grad_weight_.data(),
                                           this->grad_bias_.data(), dx);
        this->finish_weight_gradient();
    }

    /// Which products forward and backward use (see layers/product_mode.hpp).
    void set_product_mode(product_mode m) { products_.set_mode(m); }
    product_mode get_product_mode() const { return products_.mode(); }
    /// True when the last forward used the kept-weight products.
    bool used_kept_weights() const { return products_.active(); }

    /// Kept weights of each of the eight gate matrices as of the last mask: W_ih of gates
    /// i, f, g, o, then W_hh of gates i, f, g, o.
    std::array<std::size_t, 8> gate_matrix_kept() const {
        std::array<std::size_t, 8> kept{};
        const float* wm = this->masked_weight_.data();
        for (std::size_t r = 0; r < 4 * H; ++r)
            for (std::size_t j = 0; j < F + H; ++j)
                kept[(j < F ? 0 : 4) + r / H] += wm[r * (F + H) + j] != 0.0f;
        return kept;
    }

private:
    detail::kept_gates<F, H> gate_products() const { return {&input_rows_, &recurrent_rows_}; }

    detail::lstm_buffers buf_;
    detail::kept_products products_;
    detail::kept_rows input_rows_, recurrent_rows_;  // W_ih and W_hh halves of W*M
};

/// Spec: a DST masked LSTM layer with Hidden units; reads a sequence (T, F), returns
/// (T, Hidden). Granularity applies to each of the eight gate matrices.
template <std::size_t Hidden, class S = long_tailed, class G = per_neuron>
struct masked_lstm {
    static_assert(Hidden > 0, "masked_lstm<Hidden>: Hidden must be positive");
    static_assert(Surrogate<S>,
                  "masked_lstm: the second argument must satisfy dynsparse::Surrogate "
                  "(static name, derivative(float) and smooth_step(float))");
    static_assert(ThresholdGranularity<G>,
                  "masked_lstm: the third argument must satisfy dynsparse::ThresholdGranularity");
    static_assert(!ThresholdGranularity<G> || G::for_dense,
                  "masked_lstm: per_filter is for convolutions; the gate matrices of an LSTM "
                  "take per_neuron (one threshold per hidden unit) or scalar (or per_weight)");
    template <class In>
    struct binder {
        using seq = detail::sequence_of<In>;
        using type = masked_lstm_layer<seq::steps, seq::features, Hidden, S, G>;
    };
    template <class In>
    using bind = typename binder<In>::type;
};

}  // namespace dynsparse
