#pragma once
// masked_conv2d<OutChannels, Kernel, Stride, Padding, Surrogate, Granularity>: DST's
// trainable masked convolution.
//
// The kernel c_out x c_in x k x k is viewed as the matrix W (c_out x c_in*k*k), exactly
// as in masked_dense:
//   Q = |W| - t,  M = step(Q),  Wm = W * M,  y = conv(x, Wm) + b   (bias never masked)
//   dL/dW = G*M + G*|W|*H(Q),  dL/dt = -sum over the group of G*W*H(Q),  G = dL/dWm,
// with the same mask kernels, reset rule and optimizer hook as masked_dense. The default
// granularity is per_filter (one threshold per output channel, the paper's choice);
// scalar and per_weight are also accepted, per_neuron is not.
#include <string>

#include "dynsparse/core/shape.hpp"
#include "dynsparse/detail/im2col.hpp"
#include "dynsparse/detail/init.hpp"
#include "dynsparse/detail/mask_kernels.hpp"
#include "dynsparse/layers/conv2d.hpp"
#include "dynsparse/layers/layer.hpp"
#include "dynsparse/surrogate/surrogate.hpp"
#include "dynsparse/threshold/granularity.hpp"

namespace dynsparse {

template <class In, std::size_t Out, std::size_t K, std::size_t Stride, std::size_t Pad, Surrogate S,
          ThresholdGranularity G>
class masked_conv2d_layer {
    using geo = detail::window_shape<In, K, Stride, Pad>;

public:
    using input_shape = In;
    using output_shape = shape<Out, geo::out_height, geo::out_width>;
    using surrogate = S;
    using granularity = G;
    static constexpr std::size_t fan_in = geo::channels * K * K;
    static constexpr std::size_t threshold_count = G::count(Out, fan_in);

    static std::string describe() {
        return "masked_conv2d<" + std::to_string(Out) + ", " + detail::window_args<K, Stride, Pad>() +
               ", " + std::string(S::name) + ", " + std::string(G::name) + ">";
    }

    masked_conv2d_layer()
        : weight_(make_matrix(Out, fan_in)), bias_(make_vector(Out)),
          threshold_(make_vector(threshold_count)), masked_weight_(make_matrix(Out, fan_in)),
          grad_weight_(make_matrix(Out, fan_in)), grad_bias_(make_vector(Out)),
          grad_threshold_(make_vector(threshold_count)) {}

    /// PyTorch's Conv2d initialisation for W and b (fan_in = c_in*k*k); thresholds 0.
    void initialize(rng& gen) {
        detail::init_fan_in_uniform({weight_.data(), weight_.size()}, fan_in, gen);
        detail::init_fan_in_uniform({bias_.data(), bias_.size()}, fan_in, gen);
        threshold_.fill(0);
    }

    void forward(const matrix& x, matrix& y, bool /*training*/) {
        // The mask made during the optimizer step is used once (see masked_dense).
        if (mask_fresh_)
            mask_fresh_ = false;
        else
            update_mask();
        detail::conv_forward<geo::geometry()>(Out, x, masked_weight_.data(), bias_.data(), buf_, y);
    }

    void backward(const matrix& /*x*/, const matrix& /*y*/, const matrix& dy, matrix* dx) {
        // grad_weight_ first receives dL/dWm, then the mask pass turns it into dL/dW.
        detail::conv_backward<geo::geometry()>(Out, masked_weight_.data(), dy,
                              grad_weight_.data(), grad_bias_.data(), buf_, dx);
        grad_threshold_.fill(0.0f);
        if (smooth_forward_)
            detail::mask_backward<S, G, true>(weight_.data(), threshold_.data(), 0, Out, fan_in,
                                              grad_weight_.data(), grad_threshold_.data());
        else
            detail::mask_backward<S, G, false>(weight_.data(), threshold_.data(), 0, Out, fan_in,
                                               grad_weight_.data(), grad_threshold_.data());
        mask_fresh_ = false;
    }

    /// Thresholds before weights, so the weights' update report can build the next mask
    /// (see masked_dense and parameter::on_update).
    template <class F>
    void for_each_parameter(F&& f) {
        f(parameter{"threshold", parameter_kind::threshold, {threshold_.data(), threshold_.size()},
                    {grad_threshold_.data(), grad_threshold_.size()}});
        f(parameter{"weight", parameter_kind::weight, {weight_.data(), weight_.size()},
                    {grad_weight_.data(), grad_weight_.size()}, &weights_updated, this, fan_in});
        f(parameter{"bias", parameter_kind::bias, {bias_.data(), bias_.size()},
                    {grad_bias_.data(), grad_bias_.size()}});
    }

    /// Recomputes the mask and masked weights from W and t, applying the reset rule.
    void update_mask() {
        kept_ = mask_rows(0, Out);
        apply_reset_rule();
    }

    /// Drops a mask made during the last optimizer step (the next forward recomputes it).
    void invalidate_mask() { mask_fresh_ = false; }

    mask_statistics statistics() const {
        mask_statistics s;
        s.kept = kept_;
        s.total = Out * fan_in;
        s.resets = resets_;
        detail::threshold_summary(threshold_.data(), threshold_.size(), s);
        return s;
    }

    /// Turns the 1% reset rule on (the default) or off.
    void set_reset_rule(bool on) { reset_rule_ = on; }
    bool reset_rule() const { return reset_rule_; }

    /// Testing aid: forward with the surrogate's smooth step instead of the exact step.
    void set_smooth_forward(bool on) {
        smooth_forward_ = on;
        invalidate_mask();
    }

    // Mutable access may change W or t: the next forward recomputes the mask.
    std::span<float> thresholds() {
        invalidate_mask();
        return {threshold_.data(), threshold_.size()};
    }
    /// The filters as c_out x (c_in*k*k).
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
    static void weights_updated(void* self_ptr, std::size_t begin, std::size_t end) {
        auto& self = *static_cast<masked_conv2d_layer*>(self_ptr);
        if (begin == 0) self.pending_kept_ = 0;
        self.pending_kept_ += self.mask_rows(begin / fan_in, end / fan_in);
        if (end == Out * fan_in) {
            self.kept_ = self.pending_kept_;
            self.apply_reset_rule();
            self.mask_fresh_ = true;
        }
    }

    std::size_t mask_rows(std::size_t r0, std::size_t r1) {
        return smooth_forward_
                   ? detail::apply_mask<S, G, true>(weight_.data(), threshold_.data(), r0, r1, fan_in,
                                                    masked_weight_.data())
                   : detail::apply_mask<S, G, false>(weight_.data(), threshold_.data(), r0, r1, fan_in,
                                                     masked_weight_.data());
    }

    bool apply_reset_rule() {
        if (!reset_rule_ || kept_ * 100 > Out * fan_in) return false;
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
    detail::conv_buffers buf_;
    std::size_t kept_ = Out * fan_in;
    std::size_t pending_kept_ = 0;
    std::size_t resets_ = 0;
    bool mask_fresh_ = false;
    bool reset_rule_ = true;
    bool smooth_forward_ = false;
};

/// Spec: a DST masked 2-D convolution with OutChannels filters of Kernel x Kernel.
template <std::size_t OutChannels, std::size_t Kernel, std::size_t Stride = 1, std::size_t Padding = 0,
          class S = long_tailed, class G = per_filter>
struct masked_conv2d {
    static_assert(OutChannels > 0, "masked_conv2d<OutChannels, Kernel>: OutChannels must be positive");
    static_assert(Kernel > 0, "masked_conv2d<OutChannels, Kernel>: Kernel must be positive");
    static_assert(Stride > 0, "masked_conv2d<OutChannels, Kernel, Stride>: Stride must be positive");
    static_assert(Surrogate<S>,
                  "masked_conv2d: the fifth argument must satisfy dynsparse::Surrogate "
                  "(static name, derivative(float) and smooth_step(float))");
    static_assert(ThresholdGranularity<G>,
                  "masked_conv2d: the sixth argument must satisfy "
                  "dynsparse::ThresholdGranularity");
    static_assert(!ThresholdGranularity<G> || G::for_conv,
                  "masked_conv2d: per_neuron is for dense layers; a convolution takes "
                  "per_filter (one threshold per output channel) or scalar (or per_weight)");
    template <class In>
    struct binder {
        using type = masked_conv2d_layer<In, OutChannels, Kernel, Stride, Padding, S, G>;
    };
    template <class In>
    using bind = typename binder<In>::type;
};

}  // namespace dynsparse
