#pragma once
// conv2d<OutChannels, Kernel, Stride, Padding, Bias>: a 2-D convolution over (C, H, W)
// samples, y = conv(x, W) + b with square kernels, the unmasked baseline of masked_conv2d
// (Bias = ds::no_bias: y = conv(x, W)).
// Computed as im2col + one GEMM per sample (see detail/im2col.hpp).
#include <string>

#include "dynsparse/core/shape.hpp"
#include "dynsparse/detail/im2col.hpp"
#include "dynsparse/layers/layer.hpp"
#include "dynsparse/layers/trainable_weights.hpp"

namespace dynsparse {

namespace detail {

/// Output geometry of a K x K window with stride S and padding P over an (C, H, W) input,
/// with the shape checks every convolution and pooling spec shares.
template <class In, std::size_t K, std::size_t S, std::size_t P>
struct window_shape {
    static_assert(In::rank == 3,
                  "a convolution or pooling layer takes a (C, H, W) input; give the network an "
                  "image input such as input<1, 28, 28> or reshape<C, H, W> a vector first");
    static constexpr std::size_t channels = In::dims[0];
    static constexpr std::size_t height = In::rank == 3 ? In::dims[1] : 1;
    static constexpr std::size_t width = In::rank == 3 ? In::dims[2] : 1;
    static_assert(K <= height + 2 * P && K <= width + 2 * P,
                  "the kernel (window) is larger than the padded input: use a smaller kernel, "
                  "more padding, or fewer pooling layers before this one");
    static constexpr bool fits = K <= height + 2 * P && K <= width + 2 * P;
    static constexpr std::size_t out_height = fits ? (height + 2 * P - K) / S + 1 : 1;
    static constexpr std::size_t out_width = fits ? (width + 2 * P - K) / S + 1 : 1;
    static constexpr conv_geometry geometry() {
        return {channels, height, width, K, S, P, out_height, out_width};
    }
};

template <std::size_t K, std::size_t S, std::size_t P>
inline std::string window_args() {
    return std::to_string(K) + (S != 1 || P != 0 ? ", " + std::to_string(S) : std::string()) +
           (P != 0 ? ", " + std::to_string(P) : std::string());
}

}  // namespace detail

/// The filters are weight(), c_out x (c_in*k*k).
template <class In, std::size_t Out, std::size_t K, std::size_t S, std::size_t P, bool Bias = true>
class conv2d_layer
    : public trainable_weights<Out, detail::window_shape<In, K, S, P>::channels * K * K, Bias> {
    using geo = detail::window_shape<In, K, S, P>;

public:
    using input_shape = In;
    using output_shape = shape<Out, geo::out_height, geo::out_width>;
    static constexpr std::size_t fan_in = geo::channels * K * K;

    static std::string describe() {
        return "conv2d<" + std::to_string(Out) + ", " + detail::window_args<K, S, P>() +
               (Bias ? "" : ", no_bias") + ">";
    }

    /// PyTorch's Conv2d initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = c_in*k*k.
    void initialize(rng& gen) { this->initialize_fan_in_uniform(gen, fan_in); }

    void forward(const matrix& x, matrix& y, bool /*training*/) {
        detail::conv_forward<geo::geometry()>(Out, x, this->weight_.data(), this->bias_data(), buf_, y);
    }

    void backward(const matrix& x, const matrix& /*y*/, const matrix& dy, matrix* dx) {
        detail::conv_backward<geo::geometry(), Out>(x, this->weight_.data(), dy, this->grad_weight_.data(),
                                               this->bias_gradient_data(), buf_, dx);
    }

private:
    detail::conv_buffers buf_;
};

/// Spec: a 2-D convolution with OutChannels filters of Kernel x Kernel.
template <std::size_t OutChannels, std::size_t Kernel, std::size_t Stride = 1, std::size_t Padding = 0,
          bool Bias = with_bias>
struct conv2d {
    static_assert(OutChannels > 0, "conv2d<OutChannels, Kernel>: OutChannels must be positive");
    static_assert(Kernel > 0, "conv2d<OutChannels, Kernel>: Kernel must be positive");
    static_assert(Stride > 0, "conv2d<OutChannels, Kernel, Stride>: Stride must be positive");
    template <class In>
    struct binder {
        using check = detail::window_shape<In, Kernel, Stride, Padding>;
        using type = conv2d_layer<In, OutChannels, Kernel, Stride, Padding, Bias>;
    };
    template <class In>
    using bind = typename binder<In>::type;
};

}  // namespace dynsparse
