#pragma once
// Elementwise activations: relu, tanh, sigmoid. They keep the input shape and compute
// their backward pass from the output y alone.
#include <cmath>
#include <cstddef>
#include <string>

#include "dynsparse/core/parallel.hpp"
#include "dynsparse/core/select.hpp"
#include "dynsparse/layers/layer.hpp"

namespace dynsparse {

namespace detail {

template <class Fn, class In>
class activation_layer {
public:
    using input_shape = In;
    using output_shape = In;
    static std::string describe() { return std::string(Fn::name); }

    void initialize(rng&) {}

    void forward(const matrix& x, matrix& y, bool /*training*/) {
        ensure_shape(y, x.shape(0), x.shape(1));
        const float* xp = x.data();
        float* yp = y.data();
        const std::size_t width = x.shape(1);
        parallel_for(x.shape(0), [&](std::size_t, std::size_t lo, std::size_t hi) {
            for (std::size_t i = lo * width; i < hi * width; ++i) yp[i] = Fn::value(xp[i]);
        }, grain_for(width));
    }

    void backward(const matrix& /*x*/, const matrix& y, const matrix& dy, matrix* dx) {
        if (dx == nullptr) return;
        ensure_shape(*dx, y.shape(0), y.shape(1));
        const float* yp = y.data();
        const float* dyp = dy.data();
        float* dxp = dx->data();
        const std::size_t width = y.shape(1);
        parallel_for(y.shape(0), [&](std::size_t, std::size_t lo, std::size_t hi) {
            for (std::size_t i = lo * width; i < hi * width; ++i)
                dxp[i] = dyp[i] * Fn::derivative_from_output(yp[i]);
        }, grain_for(width));
    }

    template <class F>
    void for_each_parameter(F&&) {}
};

struct relu_fn {
    static constexpr std::string_view name = "relu";
    static float value(float x) { return select(x < 0.0f, 0.0f, x); }  // NaN passes through
    static float derivative_from_output(float y) { return select(y > 0.0f, 1.0f, 0.0f); }
};
struct tanh_fn {
    static constexpr std::string_view name = "tanh";
    static float value(float x) { return std::tanh(x); }
    static float derivative_from_output(float y) { return 1.0f - y * y; }
};
struct sigmoid_fn {
    static constexpr std::string_view name = "sigmoid";
    static float value(float x) { return 1.0f / (1.0f + std::exp(-x)); }
    static float derivative_from_output(float y) { return y * (1.0f - y); }
};

template <class Fn>
struct activation_spec {
    template <class In>
    using bind = activation_layer<Fn, In>;
};

}  // namespace detail

struct relu : detail::activation_spec<detail::relu_fn> {};
struct tanh : detail::activation_spec<detail::tanh_fn> {};
struct sigmoid : detail::activation_spec<detail::sigmoid_fn> {};

}  // namespace dynsparse
