#pragma once
// A masked layer multiplied by its kept weights (product_mode::kept_weights) against the
// same layer with dense products: outputs and input gradients to rounding; the weight and
// threshold gradients to the bit where both modes compute them with the same dense GEMMs
// from the same inputs (masked_dense, masked_conv2d), to rounding where the products feed
// the recurrence first (masked_lstm).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>

#include "dynsparse/core/rng.hpp"
#include "dynsparse/core/tensor.hpp"
#include "dynsparse/layers/product_mode.hpp"
#include "dynsparse/testing/gradient_check.hpp"

namespace dynsparse::testing {

enum class weight_gradients { bitwise, to_rounding };

namespace detail {
inline void check_close(const matrix& kept, const matrix& dense) {
    REQUIRE(kept.size() == dense.size());
    for (std::size_t i = 0; i < dense.size(); ++i)
        CHECK(kept.data()[i] == doctest::Approx(dense.data()[i]).epsilon(1e-5).scale(0.1));
}
}  // namespace detail

/// set_thresholds(layer) chooses the mask of the dense-mode layer; the kept-mode copy gets
/// the same weights, biases and thresholds.
template <class L, class SetThresholds>
void check_kept_products_match_dense(SetThresholds&& set_thresholds, std::size_t batch, weight_gradients gradients) {
    CAPTURE(batch);
    rng gen(3);
    L dense_layer, kept_layer;
    dense_layer.initialize(gen);
    set_thresholds(dense_layer);
    kept_layer.weight() = dense_layer.weight();
    kept_layer.bias() = dense_layer.bias();
    kept_layer.threshold() = dense_layer.threshold();
    dense_layer.set_product_mode(product_mode::dense);
    kept_layer.set_product_mode(product_mode::kept_weights);
    const matrix x = random_matrix(batch, L::input_shape::size, gen);
    const matrix dy = random_matrix(batch, L::output_shape::size, gen);
    matrix y_dense, y_kept, dx_dense, dx_kept;
    dense_layer.forward(x, y_dense, true);
    kept_layer.forward(x, y_kept, true);
    CHECK(kept_layer.used_kept_weights());
    CHECK_FALSE(dense_layer.used_kept_weights());
    detail::check_close(y_kept, y_dense);
    dense_layer.backward(x, y_dense, dy, &dx_dense);
    kept_layer.backward(x, y_kept, dy, &dx_kept);
    detail::check_close(dx_kept, dx_dense);
    if (gradients == weight_gradients::bitwise) {
        CHECK(std::equal(dense_layer.weight_gradient().begin(), dense_layer.weight_gradient().end(),
                         kept_layer.weight_gradient().begin()));
        CHECK(std::equal(dense_layer.threshold_gradient().begin(), dense_layer.threshold_gradient().end(),
                         kept_layer.threshold_gradient().begin()));
    } else {
        detail::check_close(kept_layer.weight_gradient(), dense_layer.weight_gradient());
    }
}

/// Sets every threshold of a layer to t.
inline auto thresholds_at(float t) {
    return [t](auto& layer) {
        for (auto& v : layer.threshold()) v = t;
    };
}

}  // namespace dynsparse::testing
