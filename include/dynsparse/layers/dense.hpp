#pragma once
// dense<Out>: a fully connected layer y = x W^T + b, the unmasked baseline.
#include <string>

#include "dynsparse/core/shape.hpp"
#include "dynsparse/detail/linear_kernels.hpp"
#include "dynsparse/layers/layer.hpp"
#include "dynsparse/layers/trainable_weights.hpp"

namespace dynsparse {

template <std::size_t In, std::size_t Out>
class dense_layer : public trainable_weights<Out, In> {
public:
    using input_shape = shape<In>;
    using output_shape = shape<Out>;
    static std::string describe() { return "dense<" + std::to_string(Out) + ">"; }

    void initialize(rng& gen) { this->initialize_fan_in_uniform(gen, In); }

    void forward(const matrix& x, matrix& y, bool /*training*/) {
        detail::linear_forward(x, this->weight_.data(), this->bias_.data(), Out, In, y);
    }

    void backward(const matrix& x, const matrix& /*y*/, const matrix& dy, matrix* dx) {
        detail::linear_backward(x, this->weight_.data(), dy, Out, In, this->grad_weight_.data(),
                                this->grad_bias_.data(), dx);
    }
};

/// Spec: a fully connected layer with Out outputs; binds to a vector input.
template <std::size_t Out>
struct dense {
    static_assert(Out > 0, "dense<Out>: Out must be positive");
    template <class In>
    struct binder {
        static_assert(!SequenceShape<In>,
                      "dense<Out> reads a vector, not a sequence (T, F): put dynsparse::last_step "
                      "(the last time step) or dynsparse::flatten before it");
        static_assert(SequenceShape<In> || In::rank == 1,
                      "dense<Out> takes a vector input; put dynsparse::flatten before it");
        using type = dense_layer<In::size, Out>;
    };
    template <class In>
    using bind = typename binder<In>::type;
};

}  // namespace dynsparse
