// The library's thread pool (core/parallel.hpp): chunking, exceptions, nesting, and
// convolution/pooling layers giving the same results on several threads as on one; the
// DST passes over the weights and the optimizer step bit for bit.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "dynsparse/core/parallel.hpp"
#include "dynsparse/layers/activations.hpp"
#include "dynsparse/layers/conv2d.hpp"
#include "dynsparse/layers/masked_conv2d.hpp"
#include "dynsparse/layers/masked_dense.hpp"
#include "dynsparse/layers/pooling.hpp"
#include "dynsparse/layers/reshape.hpp"
#include "dynsparse/network/sequential.hpp"
#include "dynsparse/optim/optimizer.hpp"
#include "dynsparse/optim/update.hpp"

namespace ds = dynsparse;

namespace {
// Restores one thread when a test ends, whatever happens in it.
struct threads_scope {
    explicit threads_scope(std::size_t n) { ds::set_threads(n); }
    ~threads_scope() { ds::set_threads(1); }
};
}  // namespace

TEST_CASE("parallel_for covers every item once, in contiguous chunks in order") {
    for (std::size_t t : {1u, 2u, 3u, 5u}) {
        threads_scope scope(t);
        CHECK(ds::threads() == t);
        for (std::size_t items : {1u, 2u, 3u, 7u, 64u}) {
            std::vector<int> hits(items, 0);
            std::vector<std::size_t> lo_of(t, items), hi_of(t, 0);
            ds::parallel_for(items, [&](std::size_t c, std::size_t lo, std::size_t hi) {
                lo_of[c] = lo;
                hi_of[c] = hi;
                for (std::size_t i = lo; i < hi; ++i) ++hits[i];
            });
            for (int h : hits) CHECK(h == 1);
            const std::size_t chunks = ds::parallel_chunks(items);
            CHECK(chunks == std::min(t, items));
            CHECK(lo_of[0] == 0);
            CHECK(hi_of[chunks - 1] == items);
            for (std::size_t c = 1; c < chunks; ++c) {
                CHECK(lo_of[c] == hi_of[c - 1]);
                CHECK(hi_of[c] > lo_of[c]);
            }
        }
    }
}

TEST_CASE("parallel_for keeps chunks at least `grain` items long") {
    threads_scope scope(3);
    CHECK(ds::parallel_chunks(10, 4) == 2);
    CHECK(ds::parallel_chunks(10, 11) == 1);
    CHECK(ds::parallel_chunks(100, 10) == 3);
    CHECK(ds::parallel_chunks(0) == 1);
    std::atomic<std::size_t> covered{0}, calls{0}, short_chunks{0};
    ds::parallel_for(10, [&](std::size_t, std::size_t lo, std::size_t hi) {
        if (hi - lo < 4) ++short_chunks;
        covered += hi - lo;
        ++calls;
    }, 4);
    CHECK(short_chunks == 0);
    CHECK(calls == 2);
    CHECK(covered == 10);
}

TEST_CASE("parallel_for runs its chunks on different threads and rethrows their errors") {
    threads_scope scope(2);
    std::atomic<int> ran{0};
    std::vector<std::thread::id> ids(2);
    ds::parallel_for(2, [&](std::size_t c, std::size_t, std::size_t) {
        ids[c] = std::this_thread::get_id();
        ++ran;
    });
    CHECK(ran == 2);
    CHECK(ids[0] == std::this_thread::get_id());
    CHECK(ids[1] != ids[0]);

    for (std::size_t bad : {0u, 1u}) {  // the caller's chunk, then a worker's
        CHECK_THROWS_WITH_AS(ds::parallel_for(10, [&](std::size_t c, std::size_t, std::size_t) {
                                 if (c == bad) throw std::runtime_error("chunk failed");
                             }),
                             "chunk failed", std::runtime_error);
    }
    // The pool still works after an error, and nested loops run serially inside a chunk.
    std::atomic<int> inner{0}, elsewhere{0};
    ds::parallel_for(4, [&](std::size_t, std::size_t lo, std::size_t hi) {
        const auto outer = std::this_thread::get_id();
        ds::parallel_for(hi - lo, [&](std::size_t, std::size_t l2, std::size_t h2) {
            inner += static_cast<int>(h2 - l2);
            if (std::this_thread::get_id() != outer) ++elsewhere;
        });
    });
    CHECK(inner == 4);
    CHECK(elsewhere == 0);
    CHECK_THROWS_AS(ds::set_threads(0), ds::invalid_argument);
}

namespace {
struct small_conv_net
    : ds::sequential<ds::input<2, 10, 10>, ds::masked_conv2d<4, 3, 1, 1>, ds::relu,
                     ds::max_pool2d<2>, ds::conv2d<5, 3, 2, 1>, ds::avg_pool2d<2, 1>, ds::flatten,
                     ds::masked_dense<3>> {};

struct step_result {
    std::vector<float> output, grads;
};

step_result forward_backward(std::size_t threads) {
    threads_scope scope(threads);
    small_conv_net net;
    net.initialize(7);
    ds::rng gen(11);
    const std::size_t batch = 9;  // not a multiple of the thread counts
    ds::matrix x = ds::make_matrix(batch, small_conv_net::input_shape::size);
    for (float& v : x) v = gen.uniform(-1.0f, 1.0f);
    const ds::matrix& y = net.forward(x, true);
    ds::matrix dy = ds::make_matrix(y.shape(0), y.shape(1));
    for (float& v : dy) v = gen.uniform(-1.0f, 1.0f);
    net.backward(dy);
    step_result r{std::vector<float>(y.begin(), y.end()), {}};
    net.for_each_parameter([&](const ds::parameter& p) {
        r.grads.insert(r.grads.end(), p.gradient.begin(), p.gradient.end());
    });
    return r;
}
}  // namespace

TEST_CASE("convolution and pooling layers give the same results on 1, 2 and 3 threads") {
    const step_result one = forward_backward(1);
    REQUIRE(!one.grads.empty());
    for (std::size_t t : {2u, 3u}) {
        CAPTURE(t);
        const step_result many = forward_backward(t);
        REQUIRE(many.output.size() == one.output.size());
        REQUIRE(many.grads.size() == one.grads.size());
        // Outputs are computed per sample: identical. Weight gradients are summed per chunk
        // and then across chunks: equal up to float reassociation.
        for (std::size_t i = 0; i < one.output.size(); ++i) CHECK(many.output[i] == one.output[i]);
        for (std::size_t i = 0; i < one.grads.size(); ++i)
            CHECK(many.grads[i] == doctest::Approx(one.grads[i]).epsilon(1e-5).scale(1e-3));
        // The same thread count reproduces bit for bit.
        const step_result again = forward_backward(t);
        CHECK(again.grads == many.grads);
    }
}

namespace {
// Everything a few DST steps of one masked layer leave behind: parameters, gradients,
// masked weights and mask counts after each step.
struct dst_trace {
    std::vector<float> values;
    std::vector<std::size_t> kept;
    std::size_t total = 0;
};

// A few DST steps (forward, backward, regulariser, SGD with momentum and weight decay) of
// one masked layer on a batch of one sample, so the layer's product (one chunk) is the
// same on any thread count and only the passes over the weights (mask, surrogate
// backward, optimizer with its mask report) are shared out. Big enough that rows and
// optimizer chunks do split between threads (grain_for, parallel_grain_elements).
template <class L>
dst_trace dst_steps(std::size_t threads) {
    threads_scope scope(threads);
    ds::rng gen(5);
    L layer;
    layer.initialize(gen);
    auto t = layer.thresholds();
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = 0.04f + 0.01f * static_cast<float>(i % 5);
    ds::matrix x = ds::make_matrix(1, L::input_shape::size), y, dx;
    for (float& v : x) v = gen.uniform(-1.0f, 1.0f);
    ds::matrix dy = ds::make_matrix(1, L::output_shape::size);
    for (float& v : dy) v = gen.uniform(-0.1f, 0.1f);  // small: a shared threshold stays > 0
    std::vector<ds::parameter> params;
    layer.for_each_parameter([&](const ds::parameter& p) { params.push_back(p); });
    ds::sgd opt({.momentum = 0.9f, .weight_decay = 5e-4f, .decay_thresholds = true});
    ds::update_pass pass(layer);
    dst_trace trace;
    for (int step = 0; step < 3; ++step) {
        layer.forward(x, y, true);
        layer.backward(x, y, dy, &dx);
        for (const ds::parameter& p : params) trace.values.insert(trace.values.end(), p.gradient.begin(), p.gradient.end());
        pass.run(opt, 0.005f, 1e-3f);
        trace.kept.push_back(layer.statistics().kept);  // the mask made in the update pass
        for (const ds::parameter& p : params) trace.values.insert(trace.values.end(), p.value.begin(), p.value.end());
        const ds::matrix& wm = layer.masked_weight();
        trace.values.insert(trace.values.end(), wm.begin(), wm.end());
    }
    layer.forward(x, y, true);
    trace.total = layer.statistics().total;
    trace.values.insert(trace.values.end(), y.begin(), y.end());
    trace.values.insert(trace.values.end(), dx.begin(), dx.end());
    return trace;
}

template <class L>
void check_dst_steps_match() {
    const dst_trace one = dst_steps<L>(1);
    REQUIRE(one.kept.size() == 3);
    // The thresholds mask part of the layer, and the mask changes between steps.
    CHECK(one.kept.back() > 0);
    CHECK(one.kept.back() < one.total);
    CHECK(one.kept.front() != one.kept.back());
    for (std::size_t t : {2u, 3u}) {
        CAPTURE(t);
        const dst_trace many = dst_steps<L>(t);
        CHECK(many.kept == one.kept);
        REQUIRE(many.values.size() == one.values.size());
        std::size_t differ = 0;
        for (std::size_t i = 0; i < one.values.size(); ++i) differ += many.values[i] != one.values[i];
        CHECK(differ == 0);
    }
}
}  // namespace

TEST_CASE("DST mask, surrogate backward and SGD step are the same bit for bit on 1, 2 and 3 threads") {
    SUBCASE("masked_dense, a threshold per neuron") {
        check_dst_steps_match<ds::masked_dense_layer<64, 700, ds::long_tailed, ds::per_neuron>>();
    }
    SUBCASE("masked_dense, one threshold for the layer (rows share it)") {
        check_dst_steps_match<ds::masked_dense_layer<64, 700, ds::long_tailed, ds::scalar>>();
    }
    SUBCASE("masked_dense, a threshold per weight (surrogate backward on one thread)") {
        check_dst_steps_match<ds::masked_dense_layer<64, 700, ds::long_tailed, ds::per_weight>>();
    }
    SUBCASE("masked_conv2d without bias, a threshold per filter") {
        check_dst_steps_match<ds::masked_conv2d_layer<ds::shape<32, 4, 4>, 128, 3, 1, 1, ds::long_tailed,
                                                      ds::per_filter, ds::no_bias>>();
    }
}
