#pragma once
// masked_dense<Out, Surrogate, Granularity>: DST's trainable masked fully connected layer.
//
// Forward:  Q = |W| - t,  M = step(Q),  Wm = W * M,  y = x Wm^T + b   (bias never masked)
// Backward: with G = dy^T x = dL/dWm,
//           dL/dW = G*M + G*|W|*H(Q)          (performance + structure gradient)
//           dL/dt = -sum over the group of G*W*H(Q)
// where H is the Surrogate's derivative and the group of a threshold is set by the
// Granularity. When a mask keeps <= 1% of the weights, the update pass's reset rule
// (optim/update.hpp; the reference code's rule, switchable, counted) resets the thresholds
// to 0; forward passes never do.
//
// Below a kept fraction (layers/product_mode.hpp) the forward and input-gradient products
// use the kept weights only, compressed once per forward (detail/sparse_linear.hpp); the
// weight gradient is a dense GEMM in every mode.
#include <cstdint>
#include <string>
#include <vector>

#include "dynsparse/core/shape.hpp"
#include "dynsparse/detail/linear_kernels.hpp"
#include "dynsparse/detail/sparse_linear.hpp"
#include "dynsparse/layers/layer.hpp"
#include "dynsparse/layers/masked_weights.hpp"
#include "dynsparse/layers/product_mode.hpp"
#include "dynsparse/surrogate/surrogate.hpp"
#include "dynsparse/threshold/granularity.hpp"

namespace dynsparse {

template <std::size_t In, std::size_t Out, Surrogate S, ThresholdGranularity G>
class masked_dense_layer : public masked_weights<Out, In, S, G> {
    using base = masked_weights<Out, In, S, G>;

public:
    using input_shape = shape<In>;
    using output_shape = shape<Out>;

    static std::string describe() { return detail::masked_layer_name("masked_dense", std::to_string(Out), S::name, G::name); }

    void forward(const matrix& x, matrix& y, bool /*training*/) {
        this->prepare_mask();
        if (products_.decide(Out * In, this->kept_count(), kept_weights_crossover)) {
            kept_rows_.build(this->masked_weight_.data(), Out, In, this->row_kept());
            detail::sparse_linear_forward(x, kept_rows_, this->bias_.data(), Out, In, y);
            return;
        }
        // DST empties whole rows (neurons): when an eighth or more of them hold no weight,
        // the product runs on the others only.
        live_rows_.clear();
        const std::uint32_t* kept = this->row_kept();
        for (std::size_t r = 0; r < Out; ++r)
            if (kept[r] != 0) live_rows_.push_back(r);
        if (live_rows_.size() * 8 <= Out * 7)
            detail::linear_forward_rows(x, this->masked_weight_.data(), this->bias_.data(), Out, In,
                                        live_rows_, compact_, scratch_, y);
        else
            detail::linear_forward(x, this->masked_weight_.data(), this->bias_.data(), Out, In, y);
    }

    void backward(const matrix& x, const matrix& /*y*/, const matrix& dy, matrix* dx) {
        // grad_weight_ first receives dL/dWm, then the mask pass turns it into dL/dW. The
        // kept weights of the forward serve dx (the mask has not changed since).
        const bool kept_dx = products_.active() && dx != nullptr;
        detail::linear_backward(x, this->masked_weight_.data(), dy, Out, In,
                                this->grad_weight_.data(), this->grad_bias_.data(), kept_dx ? nullptr : dx,
                                this->weight_gradient_zeroed());
        if (kept_dx) detail::sparse_linear_input_gradient(dy, kept_rows_, Out, In, *dx);
        this->finish_weight_gradient();
    }

    /// Which products forward and backward use (see layers/product_mode.hpp).
    void set_product_mode(product_mode m) { products_.set_mode(m); }
    product_mode get_product_mode() const { return products_.mode(); }
    /// True when the last forward used the kept-weight products.
    bool used_kept_weights() const { return products_.active(); }

private:
    std::vector<std::size_t> live_rows_;
    std::vector<float> compact_, scratch_;
    detail::kept_products products_;
    detail::kept_rows kept_rows_;  // W*M's kept weights, when products_ chose them
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
        static_assert(!SequenceShape<In>,
                      "masked_dense<Out> reads a vector, not a sequence (T, F): put dynsparse::last_step "
                      "(the last time step) or dynsparse::flatten before it");
        static_assert(SequenceShape<In> || In::rank == 1,
                      "masked_dense<Out> takes a vector input; put dynsparse::flatten before it");
        using type = masked_dense_layer<In::size, Out, S, G>;
    };
    template <class In>
    using bind = typename binder<In>::type;
};

}  // namespace dynsparse
