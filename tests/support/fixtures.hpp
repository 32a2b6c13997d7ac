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
#include "dynsparse/testing/gradient_check.hpp"

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

/// DYNSPARSE_DATA_DIR, or where Debian's dataset-fashion-mnist package puts the files.
inline std::filesystem::path fashion_mnist_directory() {
    const char* env = std::getenv("DYNSPARSE_DATA_DIR");
    return env ? env : "/usr/share/datasets/fashion-mnist";
}

/// Fashion-MNIST, standardised, from fashion_mnist_directory(); nothing (with a message)
/// when it is not installed.
inline std::optional<train_test> fashion_mnist() {
    const std::filesystem::path dir = fashion_mnist_directory();
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
