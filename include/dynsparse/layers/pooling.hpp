#pragma once
// max_pool2d<K, Stride> and avg_pool2d<K, Stride>: K x K pooling over (C, H, W) samples,
// no padding, output size floor((H - K) / Stride) + 1 as in PyTorch.
// Max pooling remembers the winning input of every output in forward (the first
// maximum, as PyTorch) and routes dy there in backward.
#include <cstdint>
#include <string>
#include <vector>

#include "dynsparse/core/shape.hpp"
#include "dynsparse/layers/conv2d.hpp"
#include "dynsparse/layers/layer.hpp"

namespace dynsparse {

namespace detail {

template <class In, std::size_t K, std::size_t S, bool Max>
class pool2d_layer {
    using geo = window_shape<In, K, S, 0>;
    static constexpr std::size_t C = geo::channels, H = geo::height, W = geo::width;
    static constexpr std::size_t OH = geo::out_height, OW = geo::out_width;
    static constexpr std::size_t in_size = C * H * W, out_size = C * OH * OW;

public:
    using input_shape = In;
    using output_shape = shape<C, OH, OW>;
    static std::string describe() {
        return std::string(Max ? "max_pool2d<" : "avg_pool2d<") + std::to_string(K) +
               (S != K ? ", " + std::to_string(S) : std::string()) + ">";
    }

    void initialize(rng&) {}

    void forward(const matrix& x, matrix& y, bool /*training*/) {
        const std::size_t batch = x.shape(0);
        ensure_shape(y, batch, out_size);
        if constexpr (Max) argmax_.resize(batch * out_size);
        for (std::size_t r = 0; r < batch; ++r)
            for (std::size_t c = 0; c < C; ++c) {
                const float* xc = x.data() + r * in_size + c * H * W;
                float* yc = y.data() + r * out_size + c * OH * OW;
                for (std::size_t oy = 0; oy < OH; ++oy)
                    for (std::size_t ox = 0; ox < OW; ++ox) {
                        const float* win = xc + oy * S * W + ox * S;
                        if constexpr (Max) {
                            float best = win[0];
                            std::uint32_t at = 0;
                            for (std::size_t i = 0; i < K; ++i)
                                for (std::size_t j = 0; j < K; ++j) {
                                    const float v = win[i * W + j];
                                    const bool better = v > best;
                                    best = better ? v : best;
                                    at = better ? static_cast<std::uint32_t>(i * W + j) : at;
                                }
                            yc[oy * OW + ox] = best;
                            argmax_[r * out_size + c * OH * OW + oy * OW + ox] =
                                static_cast<std::uint32_t>(c * H * W + oy * S * W + ox * S) + at;
                        } else {
                            float sum = 0.0f;
                            for (std::size_t i = 0; i < K; ++i)
                                for (std::size_t j = 0; j < K; ++j) sum += win[i * W + j];
                            yc[oy * OW + ox] = sum * (1.0f / static_cast<float>(K * K));
                        }
                    }
            }
    }

    void backward(const matrix& /*x*/, const matrix& /*y*/, const matrix& dy, matrix* dx) {
        if (dx == nullptr) return;
        const std::size_t batch = dy.shape(0);
        ensure_shape(*dx, batch, in_size);
        std::fill(dx->begin(), dx->end(), 0.0f);
        for (std::size_t r = 0; r < batch; ++r) {
            const float* d = dy.data() + r * out_size;
            float* g = dx->data() + r * in_size;
            if constexpr (Max) {
                const std::uint32_t* a = argmax_.data() + r * out_size;
                for (std::size_t k = 0; k < out_size; ++k) g[a[k]] += d[k];
            } else {
                const float scale = 1.0f / static_cast<float>(K * K);
                for (std::size_t c = 0; c < C; ++c)
                    for (std::size_t oy = 0; oy < OH; ++oy)
                        for (std::size_t ox = 0; ox < OW; ++ox) {
                            const float v = d[(c * OH + oy) * OW + ox] * scale;
                            float* win = g + c * H * W + oy * S * W + ox * S;
                            for (std::size_t i = 0; i < K; ++i)
                                for (std::size_t j = 0; j < K; ++j) win[i * W + j] += v;
                        }
            }
        }
    }

    template <class F>
    void for_each_parameter(F&&) {}

private:
    std::vector<std::uint32_t> argmax_;  // per output: index of its input within the sample
};

template <std::size_t K, std::size_t Stride, bool Max>
struct pool2d_spec {
    static_assert(K > 0, "pooling: the window K must be positive");
    static_assert(Stride > 0, "pooling: the stride must be positive");
    template <class In>
    using bind = pool2d_layer<In, K, Stride, Max>;
};

}  // namespace detail

/// Spec: K x K max pooling (stride K by default).
template <std::size_t K, std::size_t Stride = K>
struct max_pool2d : detail::pool2d_spec<K, Stride, true> {};

/// Spec: K x K average pooling (stride K by default).
template <std::size_t K, std::size_t Stride = K>
struct avg_pool2d : detail::pool2d_spec<K, Stride, false> {};

}  // namespace dynsparse
