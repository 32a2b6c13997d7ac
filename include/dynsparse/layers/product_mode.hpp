#pragma once
// How a masked layer multiplies by its masked weights in the forward and input-gradient
// products: dense BLAS over W*M (zeros included), or the kept weights only
// (detail/sparse_linear.hpp). `automatic` picks the kept weights when the layer keeps
// less than its crossover (kept_weights_crossover for dense layers,
// kept_filters_crossover for convolutions, kept_gates_crossover for LSTMs): below it they
// are faster than the GEMMs on the machines measured in docs/benchmarks.md. The weight gradient is a dense GEMM in
// every mode (DST needs dL/dW for every weight).
#include <cstddef>
#include <string>
#include <string_view>

#include "dynsparse/core/error.hpp"

namespace dynsparse {

enum class product_mode { automatic, dense, kept_weights };

/// Kept fraction below which `automatic` uses the kept-weight products: masked_dense.
inline constexpr double kept_weights_crossover = 0.25;
/// The same for masked_conv2d, whose dense input gradient of a 3x3 same-size convolution
/// is itself a convolution and hard to beat above ~18% (docs/benchmarks.md).
inline constexpr double kept_filters_crossover = 0.15;
/// The same for masked_lstm's gate matrices (docs/benchmarks.md).
inline constexpr double kept_gates_crossover = 0.30;

inline std::string_view to_string(product_mode m) {
    switch (m) {
        case product_mode::dense: return "dense";
        case product_mode::kept_weights: return "kept";
        default: return "auto";
    }
}

/// "auto", "dense" or "kept"; anything else throws invalid_argument naming the text.
inline product_mode parse_product_mode(std::string_view s) {
    if (s == "auto") return product_mode::automatic;
    if (s == "dense") return product_mode::dense;
    if (s == "kept") return product_mode::kept_weights;
    throw invalid_argument("unknown product mode '" + std::string(s) + "' (expected auto, dense or kept)");
}

namespace detail {

/// A masked layer's choice of products, made at each forward from the mask's kept count
/// and kept for the backward that follows. The layer compresses W*M (detail::kept_rows)
/// when the choice is the kept weights.
class kept_products {
public:
    void set_mode(product_mode m) { mode_ = m; }
    product_mode mode() const { return mode_; }
    /// True when the last forward chose the kept weights (backward then uses them too).
    bool active() const { return active_; }

    /// The choice for this forward: kept weights when the mode says so, or, in automatic
    /// mode, when fewer than crossover x weights are kept.
    bool decide(std::size_t weights, std::size_t kept, double crossover) {
        if (mode_ == product_mode::automatic)
            active_ = static_cast<double>(kept) < crossover * static_cast<double>(weights);
        else
            active_ = mode_ == product_mode::kept_weights;
        return active_;
    }

private:
    product_mode mode_ = product_mode::automatic;
    bool active_ = false;
};

}  // namespace detail

/// Sets the product mode of every masked layer of `net` that has one (masked_dense,
/// masked_conv2d, masked_lstm).
template <class Net>
void set_product_mode(Net& net, product_mode m) {
    net.for_each_masked_layer([&](auto& layer, std::size_t) {
        if constexpr (requires { layer.set_product_mode(m); }) layer.set_product_mode(m);
    });
}

}  // namespace dynsparse
