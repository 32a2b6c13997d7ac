// The masked layers' surrogate pass deferred into the SGD step (parameter::complete,
// defer_surrogate_backward): the same parameters, masks and outputs bit for bit as the
// pass run in backward, for every SGD variant, on 1, 2 and 3 threads; the weight
// gradient the step leaves zeroed and the next backward accumulates into; and the
// masked dense forward that skips rows without weights.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "dynsparse/core/parallel.hpp"
#include "dynsparse/detail/linear_kernels.hpp"
#include "dynsparse/layers/masked_conv2d.hpp"
#include "dynsparse/layers/masked_dense.hpp"
#include "dynsparse/optim/optimizer.hpp"
#include "dynsparse/optim/update.hpp"

namespace ds = dynsparse;

namespace {
struct threads_scope {
    explicit threads_scope(std::size_t n) { ds::set_threads(n); }
    ~threads_scope() { ds::set_threads(1); }
};

struct run_trace {
    std::vector<float> values;        // parameters, masked weights, outputs after each step
    std::vector<std::size_t> kept;    // mask statistics after each step
    std::size_t deferred_steps = 0;   // steps whose surrogate pass the optimizer completed
    std::size_t zeroed_backwards = 0; // backward passes that found the gradient zeroed
};

// Forward, backward, regulariser and SGD step, as trainer::step does it; with `defer`, the
// layer leaves its surrogate pass to the step.
template <class L>
struct probe : L {
    bool zeroed() const { return this->weight_gradient_zeroed(); }
};

template <class L>
run_trace run(bool defer, ds::sgd::options o, std::size_t threads) {
    threads_scope scope(threads);
    ds::rng gen(11);
    probe<L> layer;
    layer.initialize(gen);
    auto t = layer.thresholds();
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = 0.03f + 0.01f * static_cast<float>(i % 4);
    ds::matrix x = ds::make_matrix(3, L::input_shape::size), y, dx;
    for (float& v : x) v = gen.uniform(-1.0f, 1.0f);
    ds::matrix dy = ds::make_matrix(3, L::output_shape::size);
    std::vector<ds::parameter> params;
    layer.for_each_parameter([&](const ds::parameter& p) { params.push_back(p); });
    ds::sgd opt(o);
    ds::update_pass pass(layer);
    run_trace trace;
    for (int step = 0; step < 4; ++step) {
        for (float& v : dy) v = gen.uniform(-0.1f, 0.1f);
        layer.forward(x, y, true);
        if (layer.zeroed()) ++trace.zeroed_backwards;
        if (defer) layer.defer_surrogate_backward();
        layer.backward(x, y, dy, &dx);
        if (layer.surrogate_backward_pending()) ++trace.deferred_steps;
        pass.run(opt, 0.01f, 1e-3f);
        CHECK_FALSE(layer.surrogate_backward_pending());
        trace.kept.push_back(layer.statistics().kept);
        for (const ds::parameter& p : params) trace.values.insert(trace.values.end(), p.value.begin(), p.value.end());
        const ds::matrix& wm = layer.masked_weight();
        trace.values.insert(trace.values.end(), wm.begin(), wm.end());
        trace.values.insert(trace.values.end(), y.begin(), y.end());
        trace.values.insert(trace.values.end(), dx.begin(), dx.end());
    }
    return trace;
}

std::size_t count_differences(const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    std::size_t differ = 0;
    for (std::size_t i = 0; i < a.size(); ++i) differ += a[i] != b[i];
    return differ;
}

template <class L>
void check_deferred_matches(bool defers) {
    const ds::sgd::options variants[] = {
        {},
        {.momentum = 0.9f},
        {.momentum = 0.9f, .nesterov = true, .weight_decay = 5e-4f, .decay_thresholds = true},
    };
    for (const auto& o : variants) {
        CAPTURE(o.momentum);
        CAPTURE(o.nesterov);
        for (std::size_t threads : {1u, 2u, 3u}) {
            CAPTURE(threads);
            // (Convolutions share a batch's samples between threads, so compare at the
            // same thread count; tests/core/test_parallel.cpp compares thread counts.)
            const run_trace plain = run<L>(false, o, threads);
            CHECK(plain.deferred_steps == 0);
            CHECK(plain.zeroed_backwards == 0);
            CHECK(plain.kept.front() != plain.kept.back());  // the mask moves between steps
            const run_trace deferred = run<L>(true, o, threads);
            CHECK(deferred.deferred_steps == (defers ? 4u : 0u));
            CHECK(deferred.kept == plain.kept);
            CHECK(count_differences(deferred.values, plain.values) == 0);
            // Steps 2-4 find the gradient zeroed by the step before (masked_dense then
            // accumulates its product into it).
            CHECK(deferred.zeroed_backwards == (defers ? 3u : 0u));
        }
    }
}
}  // namespace

TEST_CASE("a surrogate pass deferred into the SGD step gives the same steps bit for bit") {
    SUBCASE("masked_dense, a threshold per neuron (deferred)") {
        check_deferred_matches<ds::masked_dense_layer<40, 700, ds::long_tailed, ds::per_neuron>>(true);
    }
    SUBCASE("masked_conv2d, a threshold per filter (deferred)") {
        check_deferred_matches<ds::masked_conv2d_layer<ds::shape<8, 5, 5>, 24, 3, 1, 1, ds::long_tailed,
                                                       ds::per_filter, ds::with_bias>>(true);
    }
    SUBCASE("masked_dense, one threshold for the layer (not deferrable: runs in backward)") {
        check_deferred_matches<ds::masked_dense_layer<40, 700, ds::long_tailed, ds::scalar>>(false);
    }
}

TEST_CASE("a deferred pass that no optimizer step completes runs in the next forward") {
    using L = ds::masked_dense_layer<30, 12, ds::long_tailed, ds::per_neuron>;
    ds::rng gen(3);
    L a, b;
    a.initialize(gen);
    b.weight() = a.weight();
    b.bias() = a.bias();
    ds::matrix x = ds::make_matrix(2, 30), y, dy = ds::make_matrix(2, 12), dx;
    for (float& v : x) v = gen.uniform(-1.0f, 1.0f);
    for (float& v : dy) v = gen.uniform(-1.0f, 1.0f);
    a.forward(x, y, true);
    b.forward(x, y, true);
    a.backward(x, y, dy, &dx);
    b.defer_surrogate_backward();
    b.backward(x, y, dy, &dx);
    CHECK(b.surrogate_backward_pending());
    b.forward(x, y, true);
    CHECK_FALSE(b.surrogate_backward_pending());
    CHECK(count_differences({b.weight_gradient().begin(), b.weight_gradient().end()},
                            {a.weight_gradient().begin(), a.weight_gradient().end()}) == 0);
    CHECK(count_differences({b.threshold_gradient().begin(), b.threshold_gradient().end()},
                            {a.threshold_gradient().begin(), a.threshold_gradient().end()}) == 0);
}

TEST_CASE("masked dense forward skipping rows without weights equals the full product") {
    using L = ds::masked_dense_layer<64, 48, ds::long_tailed, ds::per_neuron>;
    ds::rng gen(9);
    L layer;
    layer.initialize(gen);
    auto t = layer.thresholds();
    for (std::size_t r = 0; r < 48; ++r) t[r] = r % 3 == 0 ? 10.0f : 0.02f;  // a third of the rows empty
    ds::matrix x = ds::make_matrix(5, 64), y, full;
    for (float& v : x) v = gen.uniform(-1.0f, 1.0f);
    layer.forward(x, y, true);
    std::size_t empty = 0;
    for (std::size_t r = 0; r < 48; ++r) empty += layer.kept_in_row(r) == 0;
    CHECK(empty == 16);
    ds::detail::linear_forward(x, layer.masked_weight().data(), layer.bias().data(), 48, 64, full);
    REQUIRE(y.size() == full.size());
    for (std::size_t s = 0; s < 5; ++s)
        for (std::size_t r = 0; r < 48; ++r) {
            CAPTURE(s);
            CAPTURE(r);
            if (r % 3 == 0)
                CHECK(y(s, r) == layer.bias()(r));  // an empty row gives its bias
            else
                CHECK(y(s, r) == doctest::Approx(full(s, r)).epsilon(1e-6));
        }
}
