#pragma once
// Checksums of a network's replicated state, one per top-level layer, for the divergence
// guard of data-parallel runs (distributed/mpi.hpp): every rank hashes the same fields in
// the same order, and equal replicas give equal checksums. No MPI here.
//
// Hashed: each layer's trainable tensors (weights, biases, thresholds, batch-norm scale
// and shift) and its state (reset counters, ...), and each masked layer's masked weights
// W*M. Not hashed: batch-norm running statistics, which are per-rank by design.
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dynsparse/io/checkpoint.hpp"

namespace dynsparse::distributed {

/// 64-bit FNV-1a over bytes, continuing from `h`.
inline std::uint64_t fnv1a(const void* data, std::size_t bytes, std::uint64_t h = 14695981039346656037ULL) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < bytes; ++i) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

namespace detail {

struct hashing_visitor final : field_visitor {
    std::uint64_t h = 14695981039346656037ULL;
    void add(const void* p, std::size_t n) { h = fnv1a(p, n, h); }
    void operator()(std::string_view, std::size_t& v) override { add(&v, sizeof v); }
    void operator()(std::string_view, float& v) override { add(&v, sizeof v); }
    void operator()(std::string_view, double& v) override { add(&v, sizeof v); }
    void operator()(std::string_view, std::vector<double>& list) override {
        add(list.data(), list.size() * sizeof(double));
    }
    void operator()(std::string_view, bool& v) override {
        const unsigned char b = v ? 1 : 0;
        add(&b, 1);
    }
    void operator()(std::string_view, rng& g) override {
        const auto s = g.state();
        add(s.data(), sizeof s);
    }
    void operator()(std::string_view name, std::span<float> v) override {
        if (name == "running_mean" || name == "running_var") return;  // per-rank statistics
        add(v.data(), v.size_bytes());
    }
    void operator()(std::string_view, std::vector<std::vector<float>>& buffers) override {
        for (const auto& b : buffers) add(b.data(), b.size() * sizeof(float));
    }
};

}  // namespace detail

/// One checksum per top-level layer of the view's network, in network order.
inline std::vector<std::uint64_t> layer_checksums(const checkpoint_view& view) {
    std::vector<std::uint64_t> sums;
    for (const auto& l : view.layers) {
        detail::hashing_visitor v;
        l.visit(l.layer, v);
        sums.push_back(v.h);
    }
    for (const auto& m : view.masked) {
        if (m.index() >= sums.size()) continue;
        const auto wm = m.masked_weight();
        sums[m.index()] = fnv1a(wm.data(), wm.size_bytes(), sums[m.index()]);
    }
    return sums;
}

/// "layer 2 (masked_dense<100, ...>)": how messages name a top-level layer.
inline std::string layer_label(const checkpoint_view& view, std::size_t i) {
    return "layer " + std::to_string(i) + " (" + view.layers[i].describe() + ")";
}

}  // namespace dynsparse::distributed
