#pragma once
// masked_dense<Out, Surrogate, Granularity>: DST's trainable masked fully connected layer.
//
// Forward:  Q = |W| - t,  M = step(Q),  Wm = W * M,  y = x Wm^T + b   (bias never masked)
// Backward: with G = dy^T x = dL/dWm,
//           dL/dW = G*M + G*|W|*H(Q)          (performance + structure gradient)
//           dL/dt = -sum over the group of G*W*H(Q)
// where H is the Surrogate's derivative and the group of a threshold is set by the
// Granularity. If a forward pass keeps <= 1% of the weights, the thresholds are reset
// to 0 and the mask recomputed (the reference code's rule; switchable, counted).
#include <algorithm>
#include <string>

#include "dynsparse/core/blas.hpp"
#include "dynsparse/core/shape.hpp"
#include "dynsparse/detail/init.hpp"
#include "dynsparse/detail/linear_kernels.hpp"
#include "dynsparse/detail/mask_kernels.hpp"
#include "dynsparse/layers/layer.hpp"
#include "dynsparse/surrogate/surrogate.hpp"
#include "dynsparse/threshold/granularity.hpp"

namespace dynsparse {

template <std::size_t In, std::size_t Out, Surrogate S, ThresholdGranularity G>
class masked_dense_layer {
public:
    using input_shape = shape<In>;
    using output_shape = shape<Out>;
    using surrogate = S;
    using granularity = G;
    static constexpr std::size_t threshold_count = G::count(Out, In);

    static std::string describe() {
        return "masked_dense<" + std::to_string(Out) + ", " + std::string(S::name) + ", " +
               std::string(G::name) + ">";
    }

    masked_dense_layer()
        : weight_(make_matrix(Out, In)), bias_(make_vector(Out)), threshold_(make_vector(threshold_count)),
          masked_weight_(make_matrix(Out, In)), grad_weight_(make_matrix(Out, In)), grad_bias_(make_vector(Out)),
          grad_threshold_(make_vector(threshold_count)) {
        weight_.fill(0);
        bias_.fill(0);
        threshold_.fill(0);
    }

    /// PyTorch's Linear initialisation for W and b; thresholds start at 0 (dense).
    void initialize(rng& gen) {
        detail::init_fan_in_uniform({weight_.data(), weight_.size()}, In, gen);
        detail::init_fan_in_uniform({bias_.data(), bias_.size()}, In, gen);
        threshold_.fill(0);
    }

    void forward(const matrix& x, matrix& y, bool /*training*/) {
        // Use the mask made during the optimizer step just once; otherwise recompute, so
        // parameters written any other way (spans, tests, checkpoints) are always seen.
        if (mask_fresh_)
            mask_fresh_ = false;
        else
            update_mask();
        detail::linear_forward(x, masked_weight_.data(), bias_.data(), Out, In, y);
    }

    void backward(const matrix& x, const matrix& /*y*/, const matrix& dy, matrix* dx) {
        // grad_weight_ first receives dL/dWm, then the mask pass turns it into dL/dW.
        detail::linear_backward(x, masked_weight_.data(), dy, Out, In, grad_weight_.data(),
                                grad_bias_.data(), dx);
        grad_threshold_.fill(0.0f);
        if (smooth_forward_)
            detail::mask_backward<S, G, true>(weight_.data(), threshold_.data(), 0, Out, In,
                                              grad_weight_.data(), grad_threshold_.data());
        else
            detail::mask_backward<S, G, false>(weight_.data(), threshold_.data(), 0, Out, In,
                                               grad_weight_.data(), grad_threshold_.data());
        mask_fresh_ = false;
    }

    /// Thresholds come before weights, so an optimizer that reports its updates lets the
    /// weights' report compute the next mask from the new thresholds and the new weights,
    /// a few rows at a time, while they are in cache (see parameter::on_update).
    template <class F>
    void for_each_parameter(F&& f) {
        f(parameter{"threshold", parameter_kind::threshold, {threshold_.data(), threshold_.size()},
                    {grad_threshold_.data(), grad_threshold_.size()}});
        f(parameter{"weight", parameter_kind::weight, {weight_.data(), weight_.size()},
                    {grad_weight_.data(), grad_weight_.size()}, &weights_updated, this, In});
        f(parameter{"bias", parameter_kind::bias, {bias_.data(), bias_.size()},
                    {grad_bias_.data(), grad_bias_.size()}});
    }

    /// Recomputes the mask and masked weights from W and t, applying the reset rule.
    void update_mask() {
        kept_ = mask_rows(0, Out);
        apply_reset_rule();
    }

    /// Drops a mask made during the last optimizer step (the next forward recomputes it).
    /// Call after writing W or t through their spans between a step and the next forward.
    void invalidate_mask() { mask_fresh_ = false; }

    mask_statistics statistics() const {
        mask_statistics s;
        s.kept = kept_;
        s.total = Out * In;
        s.resets = resets_;
        detail::threshold_summary(threshold_.data(), threshold_.size(), s);
        return s;
    }

    /// Turns the 1% reset rule on (the default) or off.
    void set_reset_rule(bool on) { reset_rule_ = on; }
    bool reset_rule() const { return reset_rule_; }

    /// Testing aid: forward with the surrogate's smooth step instead of the exact step,
    /// so finite differences of the forward check the backward pass.
    void set_smooth_forward(bool on) {
        smooth_forward_ = on;
        invalidate_mask();
    }

    // Mutable access may change W or t: the next forward recomputes the mask.
    std::span<float> thresholds() {
        invalidate_mask();
        return {threshold_.data(), threshold_.size()};
    }
    matrix& weight() {
        invalidate_mask();
        return weight_;
    }
    vector& bias() { return bias_; }
    vector& threshold() {
        invalidate_mask();
        return threshold_;
    }
    const matrix& weight() const { return weight_; }
    const vector& threshold() const { return threshold_; }
    const matrix& masked_weight() const { return masked_weight_; }
    const matrix& weight_gradient() const { return grad_weight_; }
    const vector& bias_gradient() const { return grad_bias_; }
    const vector& threshold_gradient() const { return grad_threshold_; }

private:
    /// The optimizer has updated W[begin, end) (whole rows, in order) after t: mask them.
    static void weights_updated(void* self_ptr, std::size_t begin, std::size_t end) {
        auto& self = *static_cast<masked_dense_layer*>(self_ptr);
        if (begin == 0) self.pending_kept_ = 0;
        self.pending_kept_ += self.mask_rows(begin / In, end / In);
        if (end == Out * In) {
            self.kept_ = self.pending_kept_;
            self.apply_reset_rule();
            self.mask_fresh_ = true;
        }
    }

    std::size_t mask_rows(std::size_t r0, std::size_t r1) {
        return smooth_forward_
                   ? detail::apply_mask<S, G, true>(weight_.data(), threshold_.data(), r0, r1, In,
                                                    masked_weight_.data())
                   : detail::apply_mask<S, G, false>(weight_.data(), threshold_.data(), r0, r1, In,
                                                     masked_weight_.data());
    }

    /// The reference code's rule: a layer keeping <= 1% of its weights gets its thresholds
    /// reset to 0. Returns true when it fired (the mask has then been recomputed).
    bool apply_reset_rule() {
        if (!reset_rule_ || kept_ * 100 > Out * In) return false;
        threshold_.fill(0);
        ++resets_;
        kept_ = mask_rows(0, Out);
        return true;
    }

    matrix weight_;
    vector bias_;
    vector threshold_;
    matrix masked_weight_;
    matrix grad_weight_;
    vector grad_bias_;
    vector grad_threshold_;
    std::size_t kept_ = Out * In;
    std::size_t pending_kept_ = 0;
    std::size_t resets_ = 0;
    bool mask_fresh_ = false;
    bool reset_rule_ = true;
    bool smooth_forward_ = false;
};

/// Spec: a DST masked fully connected layer with Out outputs.
template <std::size_t Out, class S = long_tailed, class G = per_neuron>
struct masked_dense {
    static_assert(Out > 0, "masked_dense<Out>: Out must be positive");
    static_assert(Surrogate<S>,
                  "masked_dense: the second argument must satisfy dynsparse::Surrogate "
                  "(static name, derivative(float) and smooth_step(float))");
    static_assert(ThresholdGranularity<G>,
                  "masked_dense: the third argument must satisfy "
                  "dynsparse::ThresholdGranularity");
    static_assert(!ThresholdGranularity<G> || G::for_dense,
                  "masked_dense: per_filter is for convolutions; a dense layer takes "
                  "per_neuron or scalar (or per_weight)");
    template <class In>
    struct binder {
        static_assert(In::rank == 1,
                      "masked_dense<Out> takes a vector input; put dynsparse::flatten before it");
        using type = masked_dense_layer<In::size, Out, S, G>;
    };
    template <class In>
    using bind = typename binder<In>::type;
};

}  // namespace dynsparse
