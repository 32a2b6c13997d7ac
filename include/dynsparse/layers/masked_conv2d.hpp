#pragma once
// masked_conv2d<OutChannels, Kernel, Stride, Padding, Surrogate, Granularity, Bias>: DST's
// trainable masked convolution (Bias = ds::no_bias drops the bias, as before batch norm).
//
// The kernel c_out x c_in x k x k is viewed as the matrix W (c_out x c_in*k*k), exactly
// as in masked_dense:
//   Q = |W| - t,  M = step(Q),  Wm = W * M,  y = conv(x, Wm) + b   (bias never masked)
//   dL/dW = G*M + G*|W|*H(Q),  dL/dt = -sum over the group of G*W*H(Q),  G = dL/dWm,
// with the same mask kernels, reset rule and optimizer hook as masked_dense. The default
// granularity is per_filter (one threshold per output channel, the paper's choice);
// scalar and per_weight are also accepted, per_neuron is not.
//
// Below a kept fraction (layers/product_mode.hpp) the products with the unfolded input
// (forward, and dL/dcol for the input gradient) use the kept weights only; the weight
// gradient is a dense GEMM in every mode.
#include <string>

#include "dynsparse/core/shape.hpp"
#include "dynsparse/detail/im2col.hpp"
#include "dynsparse/layers/conv2d.hpp"
#include "dynsparse/layers/layer.hpp"
#include "dynsparse/layers/masked_weights.hpp"
#include "dynsparse/layers/product_mode.hpp"
#include "dynsparse/surrogate/surrogate.hpp"
#include "dynsparse/threshold/granularity.hpp"

namespace dynsparse {

template <class In, std::size_t Out, std::size_t K, std::size_t Stride, std::size_t Pad, Surrogate S,
          ThresholdGranularity G, bool Bias = true>
class masked_conv2d_layer
    : public masked_weights<Out, detail::window_shape<In, K, Stride, Pad>::channels * K * K, S, G, Bias> {
    using geo = detail::window_shape<In, K, Stride, Pad>;

public:
    using input_shape = In;
    using output_shape = shape<Out, geo::out_height, geo::out_width>;
    static constexpr std::size_t fan_in = geo::channels * K * K;

    static std::string describe() {
        return detail::masked_layer_name("masked_conv2d",
                                         std::to_string(Out) + ", " + detail::window_args<K, Stride, Pad>(),
                                         S::name, G::name, Bias ? "" : "no_bias");
    }

    void forward(const matrix& x, matrix& y, bool /*training*/) {
        this->prepare_mask();
        if (products_.decide(Out * fan_in, this->kept_count(), kept_filters_crossover)) {
            kept_rows_.build(this->masked_weight_.data(), Out, fan_in, this->row_kept());
            detail::conv_forward_with<geo::geometry()>(detail::kept_filters{&kept_rows_, Out, fan_in}, x,
                                                       this->bias_data(), buf_, y);
        } else {
            detail::conv_forward<geo::geometry()>(Out, x, this->masked_weight_.data(), this->bias_data(), buf_, y);
        }
    }

    void backward(const matrix& x, const matrix& /*y*/, const matrix& dy, matrix* dx) {
        // grad_weight_ first receives dL/dWm, then the mask pass turns it into dL/dW. The
        // weight gradient is a dense GEMM either way; dx uses the forward's kept weights.
        if (products_.active())
            detail::conv_backward_with<geo::geometry(), Out>(x, detail::kept_filters{&kept_rows_, Out, fan_in},
                                                             dy, this->grad_weight_.data(),
                                                             this->bias_gradient_data(), buf_, dx);
        else
            detail::conv_backward<geo::geometry(), Out>(x, this->masked_weight_.data(), dy, this->grad_weight_.data(),
                                                        this->bias_gradient_data(), buf_, dx);
        this->finish_weight_gradient();
    }

    /// Which products forward and backward use (see layers/product_mode.hpp).
    void set_product_mode(product_mode m) { products_.set_mode(m); }
    product_mode get_product_mode() const { return products_.mode(); }
    /// True when the last forward used the kept-weight products.
    bool used_kept_weights() const { return products_.active(); }

private:
    detail::conv_buffers buf_;
    detail::kept_products products_;
    detail::kept_rows kept_rows_;  // W*M's kept weights, when products_ chose them
};

/// Spec: a DST masked 2-D convolution with OutChannels filters of Kernel x Kernel.
template <std::size_t OutChannels, std::size_t Kernel, std::size_t Stride = 1, std::size_t Padding = 0,
          class S = long_tailed, class G = per_filter, bool Bias = with_bias>
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
        using type = masked_conv2d_layer<In, OutChannels, Kernel, Stride, Padding, S, G, Bias>;
    };
    template <class In>
    using bind = typename binder<In>::type;
};

}  // namespace dynsparse
