#pragma once
// Gradient checks of a surrogate or a threshold granularity of your own: the policy is
// plugged into small masked layers (dense, and conv2d when the granularity allows
// convolutions) and each is checked with check_masked_layer. A surrogate whose
// derivative is not the derivative of its smooth step shows up as failed derivatives; a
// granularity is checked through the kernel paths its flags (varies_along_row, sharing of
// thresholds between rows) select.
//
//   const auto r = ds::testing::check_surrogate<my_surrogate>();
//   if (!r.passed()) std::cerr << r.summary() << '\n';
#include <cstdint>
#include <string>

#include "dynsparse/layers/masked_conv2d.hpp"
#include "dynsparse/layers/masked_dense.hpp"
#include "dynsparse/testing/gradient_check.hpp"
#include "dynsparse/threshold/granularity.hpp"

namespace dynsparse::testing {

/// Checks surrogate S (with granularity G) in a masked_dense layer (5 -> 4, batch 3) and,
/// if G::for_conv, a masked_conv2d layer (2x5x5 -> 3 channels, 3x3 kernel, stride 2,
/// padding 1, batch 2). Entry names carry the layer ("masked_dense: weight").
template <Surrogate S, ThresholdGranularity G = per_neuron>
gradient_check_result check_surrogate(std::uint64_t seed = 1, const gradient_check_options& o = {}) {
    rng gen(seed);
    gradient_check_result r;
    if constexpr (G::for_dense) {
        masked_dense_layer<5, 4, S, G> layer;
        r.merge(check_masked_layer(layer, random_matrix(3, 5, gen), gen, o), "masked_dense: ");
    }
    if constexpr (G::for_conv) {
        masked_conv2d_layer<shape<2, 5, 5>, 3, 3, 2, 1, S, G> layer;
        r.merge(check_masked_layer(layer, random_matrix(2, 50, gen), gen, o), "masked_conv2d: ");
    }
    return r;
}

/// Checks granularity G with surrogate S (default DST's long_tailed).
template <ThresholdGranularity G, Surrogate S = long_tailed>
gradient_check_result check_granularity(std::uint64_t seed = 1, const gradient_check_options& o = {}) {
    return check_surrogate<S, G>(seed, o);
}

}  // namespace dynsparse::testing
