#pragma once
// The surrogate x granularity lists the masked-layer tests run over, in one place: a test
// template over DYNSPARSE_DENSE_COMBOS (etc.) runs once per combination.
#include <cstddef>
#include <string_view>

#include "dynsparse/surrogate/surrogate.hpp"
#include "dynsparse/threshold/granularity.hpp"

namespace dynsparse::testing {

template <class S, class G>
struct combo {
    using surrogate = S;
    using granularity = G;
};

/// A combination plus a convolution's stride and padding (void, void for an unmasked conv2d).
template <class S, class G, std::size_t Stride, std::size_t Pad>
struct conv_combo {
    using surrogate = S;
    using granularity = G;
    static constexpr std::size_t stride = Stride, padding = Pad;
};

/// A user-style granularity whose thresholds are shared down columns (one per input), so
/// the kernels' "varies along the row" path must add up contributions from many rows.
struct per_input {
    static constexpr std::string_view name = "per_input";
    static constexpr std::size_t count(std::size_t, std::size_t cols) { return cols; }
    static constexpr std::size_t index(std::size_t, std::size_t j, std::size_t) { return j; }
    static constexpr bool varies_along_row = true;
    static constexpr bool for_dense = true;
    static constexpr bool for_conv = false;
};

}  // namespace dynsparse::testing

/// Every surrogate the library ships.
#define DYNSPARSE_SURROGATES \
    dynsparse::long_tailed, dynsparse::straight_through, dynsparse::sigmoid_surrogate<>

/// Every shipped surrogate x every row-matrix granularity (dense and LSTM layers).
#define DYNSPARSE_MATRIX_COMBOS                                                              \
    dynsparse::testing::combo<dynsparse::long_tailed, dynsparse::per_neuron>,                \
        dynsparse::testing::combo<dynsparse::long_tailed, dynsparse::scalar>,                \
        dynsparse::testing::combo<dynsparse::long_tailed, dynsparse::per_weight>,            \
        dynsparse::testing::combo<dynsparse::straight_through, dynsparse::per_neuron>,       \
        dynsparse::testing::combo<dynsparse::straight_through, dynsparse::scalar>,           \
        dynsparse::testing::combo<dynsparse::straight_through, dynsparse::per_weight>,       \
        dynsparse::testing::combo<dynsparse::sigmoid_surrogate<>, dynsparse::per_neuron>,    \
        dynsparse::testing::combo<dynsparse::sigmoid_surrogate<>, dynsparse::scalar>,        \
        dynsparse::testing::combo<dynsparse::sigmoid_surrogate<>, dynsparse::per_weight>

/// The matrix combinations plus the user-style per_input granularity (dense layers).
#define DYNSPARSE_DENSE_COMBOS \
    DYNSPARSE_MATRIX_COMBOS,   \
        dynsparse::testing::combo<dynsparse::long_tailed, dynsparse::testing::per_input>

/// Every shipped surrogate x the convolution granularities, at stride/padding (1, 0) and
/// (2, 1), plus per_weight with padding 1.
#define DYNSPARSE_CONV_COMBOS                                                                        \
    dynsparse::testing::conv_combo<dynsparse::long_tailed, dynsparse::per_filter, 1, 0>,             \
        dynsparse::testing::conv_combo<dynsparse::long_tailed, dynsparse::scalar, 1, 0>,             \
        dynsparse::testing::conv_combo<dynsparse::long_tailed, dynsparse::per_filter, 2, 1>,         \
        dynsparse::testing::conv_combo<dynsparse::long_tailed, dynsparse::scalar, 2, 1>,             \
        dynsparse::testing::conv_combo<dynsparse::straight_through, dynsparse::per_filter, 1, 0>,    \
        dynsparse::testing::conv_combo<dynsparse::straight_through, dynsparse::scalar, 1, 0>,        \
        dynsparse::testing::conv_combo<dynsparse::straight_through, dynsparse::per_filter, 2, 1>,    \
        dynsparse::testing::conv_combo<dynsparse::straight_through, dynsparse::scalar, 2, 1>,        \
        dynsparse::testing::conv_combo<dynsparse::sigmoid_surrogate<>, dynsparse::per_filter, 1, 0>, \
        dynsparse::testing::conv_combo<dynsparse::sigmoid_surrogate<>, dynsparse::scalar, 1, 0>,     \
        dynsparse::testing::conv_combo<dynsparse::sigmoid_surrogate<>, dynsparse::per_filter, 2, 1>, \
        dynsparse::testing::conv_combo<dynsparse::sigmoid_surrogate<>, dynsparse::scalar, 2, 1>,     \
        dynsparse::testing::conv_combo<dynsparse::long_tailed, dynsparse::per_weight, 1, 1>
