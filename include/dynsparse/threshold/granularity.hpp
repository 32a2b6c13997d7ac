#pragma once
// Threshold granularities: how many thresholds a masked layer learns and which weights
// share one.
//
// A masked layer views its weights as a `rows x cols` matrix (c_out x fan_in; a
// convolution kernel c_out x c_in x kh x kw is viewed as c_out x (c_in*kh*kw)).
// Contract of a ThresholdGranularity `G` (all static):
//   G::name                          a std::string_view for reports;
//   G::count(rows, cols)             how many thresholds the layer has;
//   G::index(i, j, cols)             which threshold weight (i, j) is compared with;
//   G::varies_along_row              true when weights of one row use different thresholds
//                                    (lets kernels keep a per-row accumulator otherwise);
//   G::for_dense, G::for_conv        which layer kinds may use it.
#include <concepts>
#include <cstddef>
#include <string_view>

namespace dynsparse {

template <class G>
concept ThresholdGranularity = requires(std::size_t n) {
    { G::name } -> std::convertible_to<std::string_view>;
    { G::count(n, n) } -> std::same_as<std::size_t>;
    { G::index(n, n, n) } -> std::same_as<std::size_t>;
    { G::varies_along_row } -> std::convertible_to<bool>;
    { G::for_dense } -> std::convertible_to<bool>;
    { G::for_conv } -> std::convertible_to<bool>;
};

/// One threshold for the whole layer.
struct scalar {
    static constexpr std::string_view name = "scalar";
    static constexpr std::size_t count(std::size_t, std::size_t) { return 1; }
    static constexpr std::size_t index(std::size_t, std::size_t, std::size_t) { return 0; }
    static constexpr bool varies_along_row = false;
    static constexpr bool for_dense = true;
    static constexpr bool for_conv = true;
};

/// One threshold per output neuron (a row of a dense or recurrent weight matrix).
struct per_neuron {
    static constexpr std::string_view name = "per_neuron";
    static constexpr std::size_t count(std::size_t rows, std::size_t) { return rows; }
    static constexpr std::size_t index(std::size_t i, std::size_t, std::size_t) { return i; }
    static constexpr bool varies_along_row = false;
    static constexpr bool for_dense = true;
    static constexpr bool for_conv = false;
};

/// One threshold per output channel of a convolution (its whole kernel).
struct per_filter {
    static constexpr std::string_view name = "per_filter";
    static constexpr std::size_t count(std::size_t rows, std::size_t) { return rows; }
    static constexpr std::size_t index(std::size_t i, std::size_t, std::size_t) { return i; }
    static constexpr bool varies_along_row = false;
    static constexpr bool for_dense = false;
    static constexpr bool for_conv = true;
};

/// One threshold per weight (the paper's rejected "matrix" threshold: doubles the
/// parameters, offered for experiments).
struct per_weight {
    static constexpr std::string_view name = "per_weight";
    static constexpr std::size_t count(std::size_t rows, std::size_t cols) { return rows * cols; }
    static constexpr std::size_t index(std::size_t i, std::size_t j, std::size_t cols) {
        return i * cols + j;
    }
    static constexpr bool varies_along_row = true;
    static constexpr bool for_dense = true;
    static constexpr bool for_conv = true;
};

}  // namespace dynsparse
