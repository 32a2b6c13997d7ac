#pragma once
// lstm<Hidden>: a long short-term memory layer over a sequence, and last_step, which
// keeps only the last time step of a sequence.
//
// An lstm reads a sequence<T, F> and returns the whole sequence of hidden states
// sequence<T, Hidden>, so LSTMs stack directly; a dense head reads the last hidden state
// through last_step:
//
//   ds::sequential<ds::sequence_input<28, 28>, ds::lstm<128>, ds::lstm<128>,
//                  ds::last_step, ds::dense<10>>
//
// The weights are one matrix [W_ih | W_hh] of 4*Hidden x (F + Hidden), gates in PyTorch's
// order (i, f, g, o), and one bias per gate row (PyTorch's b_ih + b_hh). Backward is
// backpropagation through time over the whole sequence (detail/lstm_kernels.hpp).
#include <algorithm>
#include <cmath>
#include <span>
#include <string>

#include "dynsparse/core/shape.hpp"
#include "dynsparse/detail/init.hpp"
#include "dynsparse/detail/lstm_kernels.hpp"
#include "dynsparse/layers/layer.hpp"
#include "dynsparse/layers/trainable_weights.hpp"

namespace dynsparse {

namespace detail {

/// PyTorch's nn.LSTM initialisation: every weight and both biases U(-1/sqrt(H), 1/sqrt(H));
/// our single bias is the sum of the two.
inline void init_lstm(std::span<float> weight, std::span<float> bias, std::size_t hidden, rng& gen) {
    init_fan_in_uniform(weight, hidden, gen);
    init_fan_in_uniform(bias, hidden, gen);
    const float bound = 1.0f / std::sqrt(static_cast<float>(hidden));
    for (float& b : bias) b += gen.uniform(-bound, bound);
}

template <class In>
struct sequence_of {
    static_assert(SequenceShape<In>,
                  "lstm<Hidden> reads a sequence (T, F): start the network with "
                  "dynsparse::sequence_input<Steps, Features>, or put another lstm before it");
    static constexpr std::size_t steps = SequenceShape<In> ? In::dims[0] : 1;
    static constexpr std::size_t features = SequenceShape<In> ? In::dims[1] : 1;
};

}  // namespace detail

/// The weights are weight() = [W_ih | W_hh], 4H x (F + H).
template <std::size_t T, std::size_t F, std::size_t H>
class lstm_layer : public trainable_weights<4 * H, F + H> {
public:
    using input_shape = sequence<T, F>;
    using output_shape = sequence<T, H>;
    static constexpr std::size_t gate_rows = 4 * H;
    static constexpr std::size_t fan_in = F + H;
    static std::string describe() { return "lstm<" + std::to_string(H) + ">"; }

    void initialize(rng& gen) {
        detail::init_lstm({this->weight_.data(), this->weight_.size()},
                          {this->bias_.data(), this->bias_.size()}, H, gen);
    }

    void forward(const matrix& x, matrix& y, bool /*training*/) {
        detail::lstm_forward<T, F, H>(x, this->weight_.data(), this->bias_.data(), buf_, y);
    }

    void backward(const matrix& x, const matrix& /*y*/, const matrix& dy, matrix* dx) {
        detail::lstm_backward<T, F, H>(x, dy, this->weight_.data(), buf_, this->grad_weight_.data(),
                                       this->grad_bias_.data(), dx);
    }

private:
    detail::lstm_buffers buf_;
};

/// Spec: an LSTM layer with Hidden units; reads a sequence (T, F), returns (T, Hidden).
template <std::size_t Hidden>
struct lstm {
    static_assert(Hidden > 0, "lstm<Hidden>: Hidden must be positive");
    template <class In>
    struct binder {
        using seq = detail::sequence_of<In>;
        using type = lstm_layer<seq::steps, seq::features, Hidden>;
    };
    template <class In>
    using bind = typename binder<In>::type;
};

namespace detail {

template <std::size_t T, std::size_t F>
class last_step_layer {
public:
    using input_shape = sequence<T, F>;
    using output_shape = shape<F>;
    static std::string describe() { return "last_step"; }
    void initialize(rng&) {}
    void forward(const matrix& x, matrix& y, bool) {
        const std::size_t batch = x.shape(0);
        ensure_shape(y, batch, F);
        for (std::size_t s = 0; s < batch; ++s) {
            const float* src = x.data() + s * T * F + (T - 1) * F;
            std::copy(src, src + F, y.data() + s * F);
        }
    }
    void backward(const matrix&, const matrix&, const matrix& dy, matrix* dx) {
        if (dx == nullptr) return;
        const std::size_t batch = dy.shape(0);
        ensure_shape(*dx, batch, T * F);
        dx->fill(0.0f);
        for (std::size_t s = 0; s < batch; ++s) {
            const float* src = dy.data() + s * F;
            std::copy(src, src + F, dx->data() + s * T * F + (T - 1) * F);
        }
    }
    template <class Fn>
    void for_each_parameter(Fn&&) {}
};

}  // namespace detail

/// Keeps the last time step of a sequence (T, F): a vector of F values, e.g. the last
/// hidden state of an lstm for a dense head.
struct last_step {
    template <class In>
    struct binder {
        static_assert(SequenceShape<In>,
                      "last_step reads a sequence (T, F), e.g. the output of an lstm; this "
                      "input is not one");
        using type = detail::last_step_layer<SequenceShape<In> ? In::dims[0] : 1,
                                             SequenceShape<In> ? In::dims[1] : 1>;
    };
    template <class In>
    using bind = typename binder<In>::type;
};

}  // namespace dynsparse
