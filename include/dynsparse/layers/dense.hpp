#pragma once
// dense<Out>: a fully connected layer y = x W^T + b, the unmasked baseline.
#include <string>

#include "dynsparse/core/shape.hpp"
#include "dynsparse/detail/init.hpp"
#include "dynsparse/detail/linear_kernels.hpp"
#include "dynsparse/layers/layer.hpp"

namespace dynsparse {

template <std::size_t In, std::size_t Out>
class dense_layer {
public:
    using input_shape = shape<In>;
    using output_shape = shape<Out>;
    static std::string describe() { return "dense<" + std::to_string(Out) + ">"; }

    dense_layer()
        : weight_(make_matrix(Out, In)), bias_(make_vector(Out)), grad_weight_(make_matrix(Out, In)),
          grad_bias_(make_vector(Out)) {}

    void initialize(rng& gen) {
        detail::init_fan_in_uniform({weight_.data(), weight_.size()}, In, gen);
        detail::init_fan_in_uniform({bias_.data(), bias_.size()}, In, gen);
    }

    void forward(const matrix& x, matrix& y, bool /*training*/) {
        detail::linear_forward(x, weight_.data(), bias_.data(), Out, In, y);
    }

    void backward(const matrix& x, const matrix& /*y*/, const matrix& dy, matrix* dx) {
        detail::linear_backward(x, weight_.data(), dy, Out, In, grad_weight_.data(),
                                grad_bias_.data(), dx);
    }

    template <class F>
    void for_each_parameter(F&& f) {
        f(parameter{"weight", parameter_kind::weight, {weight_.data(), weight_.size()},
                    {grad_weight_.data(), grad_weight_.size()}});
        f(parameter{"bias", parameter_kind::bias, {bias_.data(), bias_.size()},
                    {grad_bias_.data(), grad_bias_.size()}});
    }

    matrix& weight() { return weight_; }
    vector& bias() { return bias_; }
    const matrix& weight_gradient() const { return grad_weight_; }
    const vector& bias_gradient() const { return grad_bias_; }

private:
    matrix weight_;
    vector bias_;
    matrix grad_weight_;
    vector grad_bias_;
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
