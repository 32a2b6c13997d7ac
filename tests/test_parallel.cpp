// The library's thread pool (core/parallel.hpp): chunking, exceptions, nesting, and
// convolution/pooling layers giving the same results on several threads as on one.
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
