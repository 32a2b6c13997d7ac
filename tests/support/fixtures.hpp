#pragma once
// Fixtures shared by the test files: a tiny DST network with separable data, a way to put
// a masked layer's weights where central differences are exact, and the real
// Fashion-MNIST for the short learning tests.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "dynsparse/core/rng.hpp"
#include "dynsparse/data/dataset.hpp"
#include "dynsparse/layers/activations.hpp"
#include "dynsparse/layers/masked_dense.hpp"
#include "dynsparse/network/sequential.hpp"

namespace dynsparse::testing {

struct tiny_dst : sequential<input<8>, masked_dense<16>, relu, masked_dense<3>> {};

/// Three Gaussian blobs in 8 dimensions: learnable in a few steps.
inline dataset blobs(std::size_t n, std::uint64_t seed) {
    rng gen(seed);
    dataset d;
    d.classes = 3;
    d.images = make_matrix(n, 8);
    d.labels.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<std::uint8_t>(gen.below(3));
        d.labels[i] = c;
        for (std::size_t f = 0; f < 8; ++f)
            d.images(i, f) = (f % 3 == c ? 1.5f : 0.0f) + gen.uniform(-0.5f, 0.5f);
    }
    return d;
}

inline bool near_kink(float q) {
    for (float k : {-1.0f, -0.4f, 0.0f, 0.4f, 1.0f})
        if (std::fabs(q - k) < 0.05f) return true;
    return false;
}

/// Thresholds in [0.3, 0.8] and weights whose Q = |W| - t lies away from the kinks of the
/// surrogates (so central differences are exact up to rounding), with |W| >= 0.1.
template <class L>
void place_weights(L& layer, rng& gen) {
    using G = typename L::granularity;
    auto& w = layer.weight();
    auto& t = layer.threshold();
    for (auto& v : t) v = gen.uniform(0.3f, 0.8f);
    const std::size_t rows = w.shape(0), cols = w.shape(1);
    for (std::size_t i = 0; i < rows; ++i)
        for (std::size_t j = 0; j < cols; ++j) {
            const float ti = t(G::index(i, j, cols));
            float q;
            do q = gen.uniform(-1.4f, 1.4f);
            while (near_kink(q) || ti + q < 0.1f);
            w(i, j) = (gen.uniform01() < 0.5f ? -1.0f : 1.0f) * (ti + q);
        }
    for (auto& b : layer.bias()) b = gen.uniform(-0.5f, 0.5f);
}

/// Fashion-MNIST, standardised, from DYNSPARSE_DATA_DIR or the Debian package; nothing
/// (with a message) when it is not installed.
inline std::optional<train_test> fashion_mnist() {
    const char* env = std::getenv("DYNSPARSE_DATA_DIR");
    const std::filesystem::path dir = env ? env : default_fashion_mnist_directory;
    if (!std::filesystem::exists(dir)) {
        MESSAGE("Fashion-MNIST not found at " << dir.string() << "; install dataset-fashion-mnist");
        return std::nullopt;
    }
    train_test data = load_mnist_directory(dir);
    standardize(data);
    return data;
}

struct lenet_300_100 : sequential<input<784>, masked_dense<300>, relu, masked_dense<100>, relu,
                                  masked_dense<10>> {};

}  // namespace dynsparse::testing
