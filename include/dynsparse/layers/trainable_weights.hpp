#pragma once
// trainable_weights<Rows, Cols, Bias>: what the unmasked layers with weights (dense,
// conv2d, lstm) store — a Rows x Cols weight matrix, a bias per row (none when Bias is
// false), their gradients — and the parameter list the optimizers and checkpoints walk.
// The masked counterpart is masked_weights (layers/masked_weights.hpp).
#include <cstddef>

#include "dynsparse/core/rng.hpp"
#include "dynsparse/core/tensor.hpp"
#include "dynsparse/detail/init.hpp"
#include "dynsparse/layers/layer.hpp"

namespace dynsparse {

template <std::size_t Rows, std::size_t Cols, bool Bias = true>
class trainable_weights {
public:
    trainable_weights()
        : weight_(make_matrix(Rows, Cols)), bias_(make_vector(Bias ? Rows : 0)),
          grad_weight_(make_matrix(Rows, Cols)), grad_bias_(make_vector(Bias ? Rows : 0)) {}

    template <class F>
    void for_each_parameter(F&& f) {
        f(parameter{"weight", parameter_kind::weight, {weight_.data(), weight_.size()},
                    {grad_weight_.data(), grad_weight_.size()}});
        if constexpr (Bias)
            f(parameter{"bias", parameter_kind::bias, {bias_.data(), bias_.size()},
                        {grad_bias_.data(), grad_bias_.size()}});
    }

    matrix& weight() { return weight_; }
    vector& bias() { return bias_; }  ///< empty when the layer has no bias
    const matrix& weight_gradient() const { return grad_weight_; }
    const vector& bias_gradient() const { return grad_bias_; }

protected:
    /// PyTorch's Linear and Conv initialisation: W, then b, from U(-1/sqrt(fan_in), +).
    void initialize_fan_in_uniform(rng& gen, std::size_t fan_in) {
        detail::init_fan_in_uniform({weight_.data(), weight_.size()}, fan_in, gen);
        if constexpr (Bias) detail::init_fan_in_uniform({bias_.data(), bias_.size()}, fan_in, gen);
    }
    float* bias_data() { return Bias ? bias_.data() : nullptr; }
    float* bias_gradient_data() { return Bias ? grad_bias_.data() : nullptr; }

    matrix weight_;
    vector bias_;
    matrix grad_weight_;
    vector grad_bias_;
};

}  // namespace dynsparse
