// The generic trainer: determinism, divergence detection, the regulariser's effect, and
// a short learning test on real Fashion-MNIST that must show learning and pruning.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <string>
#include <utility>

#include "dynsparse/data/dataset.hpp"
#include "dynsparse/layers/activations.hpp"
#include "dynsparse/layers/batch_norm.hpp"
#include "dynsparse/layers/dense.hpp"
#include "dynsparse/layers/masked_dense.hpp"
#include "dynsparse/train/trainer.hpp"
#include "support/fixtures.hpp"

namespace ds = dynsparse;

namespace {

using ds::testing::blobs;
using ds::testing::tiny_dst;

ds::train_config quiet_config(std::size_t epochs, float alpha, std::uint64_t seed = 1) {
    ds::train_config c;
    c.epochs = epochs;
    c.batch_size = 16;
    c.alpha = alpha;
    c.schedule = ds::constant_lr(0.05f);
    c.seed = seed;
    c.progress = false;
    return c;
}

template <class Net>
std::vector<float> all_parameters(Net& net) {
    std::vector<float> out;
    net.for_each_parameter([&](const ds::parameter& p) { out.insert(out.end(), p.value.begin(), p.value.end()); });
    return out;
}

/// Trains until training_diverged; returns its message (empty when none was thrown) and
/// whether any epoch was reported first.
template <class Trainer>
std::pair<std::string, bool> divergence(Trainer& tr, const ds::dataset& data) {
    bool reported = false;
    try {
        tr.fit(data, data, [&](const ds::epoch_report&) { reported = true; });
    } catch (const ds::training_diverged& e) {
        return {e.what(), reported};
    }
    return {"", reported};
}

}  // namespace

TEST_CASE("training is deterministic for a seed") {
    const auto data = blobs(200, 1);
    auto run = [&](std::uint64_t shuffle_seed) {
        tiny_dst net;
        net.initialize(3);
        ds::trainer<tiny_dst> tr(net, {}, ds::sgd({.momentum = 0.9f}), quiet_config(2, 1e-3f, shuffle_seed));
        tr.fit(data, data);
        return all_parameters(net);
    };
    const auto a = run(1), b = run(1), c = run(2);
    CHECK(a == b);
    CHECK(a != c);
}

TEST_CASE("the trainer learns separable data and the regulariser raises thresholds") {
    const auto train = blobs(600, 2), test = blobs(300, 3);
    tiny_dst net;
    net.initialize(1);
    ds::trainer<tiny_dst> tr(net, {}, ds::sgd({.momentum = 0.9f}), quiet_config(5, 2e-2f));
    const auto before = tr.evaluate(test);
    const auto history = tr.fit(train, test);
    REQUIRE(history.size() == 5);
    CHECK(history.back().eval.accuracy > 90.0);
    CHECK(history.back().eval.accuracy > before.accuracy);
    float mean_t = 0;
    net.for_each_masked_layer([&](auto& l, std::size_t) { mean_t += l.statistics().threshold_mean; });
    CHECK(mean_t > 0.0f);  // started at 0, pushed up by alpha * exp(-t)
    CHECK(history.back().remaining < 1.0);
    CHECK(history.back().layers.size() == 2);
    CHECK(history.back().train_seconds > 0.0);
}

TEST_CASE("a non-finite loss stops training with a message naming the step") {
    auto data = blobs(64, 4);
    data.images(40, 2) = std::numeric_limits<float>::quiet_NaN();  // in the 3rd batch of 16
    tiny_dst net;
    net.initialize(1);
    auto cfg = quiet_config(1, 0.0f);
    ds::trainer<tiny_dst> tr(net, {}, ds::sgd(), cfg);
    try {
        tr.fit(data, data);
        FAIL("expected training_diverged");
    } catch (const ds::training_diverged& e) {
        const std::string msg = e.what();
        INFO(msg);
        CHECK(msg.find("epoch 1, step") != std::string::npos);
        CHECK(msg.find("of 4") != std::string::npos);
        CHECK(msg.find("nan") != std::string::npos);
    }
}

TEST_CASE("a NaN weight hidden by its mask stops training before the epoch is reported") {
    // The loss stays finite (the mask hides the weight), so only the parameter check sees it.
    const auto data = blobs(64, 4);
    tiny_dst net;
    net.initialize(1);
    auto& first = net.get<0>();
    first.threshold().fill(0.5f);
    first.weight()(3, 2) = std::numeric_limits<float>::quiet_NaN();
    ds::trainer<tiny_dst> tr(net, {}, ds::sgd(), quiet_config(1, 0.0f));
    const auto [msg, reported] = divergence(tr, data);
    INFO(msg);
    REQUIRE_MESSAGE(!msg.empty(), "expected training_diverged");
    CHECK(msg.find("step 1 of 4") != std::string::npos);
    CHECK(msg.find("layer 0 (masked_dense<16") != std::string::npos);
    CHECK(msg.find("weight[26] is nan") != std::string::npos);  // row 3, column 2 of 16 x 8
    CHECK_FALSE(reported);
}

TEST_CASE("an infinite threshold (every weight masked, the loss finite) stops training") {
    const auto data = blobs(64, 4);
    tiny_dst net;
    net.initialize(1);
    net.get<2>().threshold()(1) = std::numeric_limits<float>::infinity();
    ds::trainer<tiny_dst> tr(net, {}, ds::sgd({.momentum = 0.9f}), quiet_config(3, 1e-3f));
    const auto [msg, reported] = divergence(tr, data);
    INFO(msg);
    REQUIRE_MESSAGE(!msg.empty(), "expected training_diverged");
    CHECK(msg.find("epoch 1, step 1 of 4") != std::string::npos);
    CHECK(msg.find("layer 2 (masked_dense<3") != std::string::npos);
    CHECK(msg.find("threshold[1] is ") != std::string::npos);  // inf, or nan from inf - inf
    CHECK(msg.find("not reported or saved") != std::string::npos);
    CHECK_FALSE(reported);
}

TEST_CASE("first_non_finite finds the first NaN or infinity in any block") {
    std::vector<float> v(1000, 1.0f);
    CHECK(ds::first_non_finite(v) == ds::all_finite);
    CHECK(ds::first_non_finite(std::span<const float>{}) == ds::all_finite);
    v[700] = -std::numeric_limits<float>::infinity();
    v[999] = std::numeric_limits<float>::quiet_NaN();
    CHECK(ds::first_non_finite(v) == 700);
    v[3] = std::numeric_limits<float>::max();  // large but finite
    CHECK(ds::first_non_finite(v) == 700);
    v[255] = std::numeric_limits<float>::infinity();
    CHECK(ds::first_non_finite(v) == 255);
}

TEST_CASE("the trainer rejects data that does not fit the network") {
    auto data = blobs(10, 5);
    struct wide : ds::sequential<ds::input<9>, ds::dense<3>> {};
    wide net;
    net.initialize(1);
    ds::trainer<wide> tr(net, {}, ds::sgd(), quiet_config(1, 0.0f));
    CHECK_THROWS_WITH_AS(tr.fit(data, data), doctest::Contains("8 features per sample but the network's input takes 9"),
                         ds::invalid_argument);
}

TEST_CASE("learning test: DST LeNet-300-100 on a Fashion-MNIST subset learns and prunes") {
    const auto loaded = ds::testing::fashion_mnist();
    if (!loaded) return;
    const ds::train_test& data = *loaded;
    using lenet = ds::testing::lenet_300_100;
    const ds::dataset train = ds::take(data.train, 0, 12000);
    const ds::dataset test = ds::take(data.test, 0, 2000);

    lenet net;
    net.initialize(1);
    ds::train_config cfg;
    cfg.epochs = 3;
    cfg.batch_size = 64;
    cfg.alpha = 2e-3f;  // stronger than the paper's 5e-4 so pruning shows in a short run
    cfg.schedule = ds::constant_lr(0.01f);
    cfg.progress = false;
    ds::trainer<lenet> tr(net, {}, ds::sgd({.momentum = 0.9f}), cfg);
    const double chance = tr.evaluate(test).accuracy;
    const auto history = tr.fit(train, test);
    const auto& last = history.back();
    MESSAGE("accuracy " << chance << "% -> " << last.eval.accuracy << "%, remaining "
                        << 100 * last.remaining << "%");
    CHECK(last.eval.accuracy > 78.0);
    CHECK(last.eval.accuracy > chance + 50.0);
    CHECK(last.remaining < 0.6);                        // pruned
    CHECK(history[0].remaining > last.remaining);       // and still pruning
    CHECK(last.layers[0].stats.remaining() < last.layers[2].stats.remaining());  // input layer first
    CHECK(std::isfinite(last.train_loss));
}

TEST_CASE("the mask made inside the optimizer step equals a mask recomputed from W and t") {
    const auto data = blobs(64, 6);
    tiny_dst net;
    net.initialize(2);
    ds::trainer<tiny_dst> tr(net, {}, ds::sgd({.momentum = 0.9f}), quiet_config(1, 5e-2f));
    ds::matrix x;
    std::vector<std::uint8_t> y;
    std::vector<std::size_t> idx(16);
    for (std::size_t s = 0; s < 20; ++s) {
        std::iota(idx.begin(), idx.end(), (s * 16) % 48);
        ds::gather_batch(data, idx, x, y);
        tr.step(x, y, 0.05f);
        // After the step, the fused mask (from the update reports) is pending; compare it
        // with the exact definition M = |W| > t, without touching the mutable accessors.
        const auto& layer = std::as_const(net).get<0>();
        const auto& w = layer.weight();
        const auto& t = layer.threshold();
        std::size_t kept = 0;
        for (std::size_t i = 0; i < w.shape(0); ++i)
            for (std::size_t j = 0; j < w.shape(1); ++j) {
                const bool keep = std::fabs(w(i, j)) > t(i);
                kept += keep;
                REQUIRE(layer.masked_weight()(i, j) == (keep ? w(i, j) : 0.0f));
            }
        CHECK(layer.statistics().kept == kept);
    }
    float t_mean = std::as_const(net).get<0>().statistics().threshold_mean;
    CHECK(t_mean > 0.0f);  // thresholds moved, so the masks compared above were not trivial
}

TEST_CASE("a minimal stateless optimizer trains masked layers like ds::sgd") {
    // Three members and no state: the update pass still does surrogate, mask and reset.
    struct plain_sgd {
        float lr = 0;
        void begin_step(std::span<const ds::parameter>, float step_lr) { lr = step_lr; }
        void update(const ds::update_range& r) {
            for (std::size_t i = r.begin; i < r.end; ++i) r.value[i] -= lr * (r.gradient[i] + 0.0f * r.value[i]);
        }
        void end_step() {}
    };
    static_assert(ds::Optimizer<plain_sgd>);
    const auto data = blobs(200, 7);
    tiny_dst a, b;
    a.initialize(4);
    b.initialize(4);
    ds::trainer<tiny_dst, ds::softmax_cross_entropy, plain_sgd> ta(a, {}, plain_sgd{}, quiet_config(2, 1e-2f));
    ds::trainer<tiny_dst> tb(b, {}, ds::sgd(), quiet_config(2, 1e-2f));
    ta.fit(data, data);
    tb.fit(data, data);
    // Both are plain SGD: the fused mask path must not change a single bit.
    CHECK(all_parameters(a) == all_parameters(b));
}

TEST_CASE("step callbacks see every step, and set_alpha changes alpha from the next step") {
    tiny_dst net;
    net.initialize(5);
    ds::trainer<tiny_dst> tr(net, {}, ds::sgd({.momentum = 0.9f}), quiet_config(2, 1e-3f));
    std::vector<ds::step_report> seen;
    tr.add_step_callback([&](const ds::step_report& s) {
        seen.push_back(s);
        if (s.global_step == 5) tr.set_alpha(2e-2f);
    });
    const auto history = tr.fit(blobs(80, 1), blobs(30, 2));  // 5 steps per epoch
    REQUIRE(seen.size() == 10);
    for (std::size_t i = 0; i < seen.size(); ++i) {
        CHECK(seen[i].global_step == i + 1);
        CHECK(seen[i].epoch == i / 5 + 1);
        CHECK(seen[i].step_in_epoch == i % 5 + 1);
        CHECK(seen[i].steps_per_epoch == 5);
        CHECK(seen[i].total_steps == 10);
        CHECK(std::isfinite(seen[i].loss));
        CHECK(seen[i].alpha == (i < 5 ? 1e-3f : 2e-2f));
    }
    CHECK(history[0].alpha == 2e-2f);  // the alpha at the end of the epoch
    CHECK(tr.alpha() == 2e-2f);
    CHECK_THROWS_AS(tr.set_alpha(-1.0f), ds::invalid_argument);
    CHECK_THROWS_AS(tr.set_alpha(std::numeric_limits<float>::quiet_NaN()), ds::invalid_argument);
}

TEST_CASE("an observing step callback does not change training") {
    auto run = [](bool observe) {
        tiny_dst net;
        net.initialize(7);
        ds::trainer<tiny_dst> tr(net, {}, ds::sgd({.momentum = 0.9f}), quiet_config(2, 1e-3f));
        std::size_t calls = 0;
        if (observe) tr.add_step_callback([&](const ds::step_report&) { ++calls; });
        tr.fit(blobs(80, 1), blobs(30, 2));
        CHECK(calls == (observe ? 10u : 0u));
        return all_parameters(net);
    };
    CHECK(run(true) == run(false));
}

TEST_CASE("evaluate is const and cannot fire the reset rule") {
    const auto data = blobs(40, 5);
    tiny_dst net;
    net.initialize(2);
    ds::trainer<tiny_dst> tr(net, {}, ds::sgd(), quiet_config(1, 0.0f));
    net.get<0>().threshold().fill(10.0f);  // keeps no weight: the 1% rule's case
    const ds::trainer<tiny_dst>& c = tr;
    const ds::evaluation ev = c.evaluate(data);
    CHECK(ev.samples == 40);
    CHECK(tr.total_resets() == 0);
    CHECK(net.get<0>().threshold()(0) == 10.0f);
    CHECK(tr.masked_layers()[0].statistics().kept == 0);
    CHECK(c.evaluate(data).loss == ev.loss);  // and again: nothing moved
    // The rule is live: one training step resets the layer.
    tr.train_epoch(data);
    CHECK(tr.total_resets() > 0);
}

TEST_CASE("predict and evaluate between steps leave training unchanged") {
    const auto data = blobs(64, 6);
    auto run = [&](bool look) {
        tiny_dst net;
        net.initialize(8);
        ds::trainer<tiny_dst> tr(net, {}, ds::sgd({.momentum = 0.9f}), quiet_config(2, 1e-3f));
        tr.add_step_callback([&](const ds::step_report&) {
            if (!look) return;
            (void)std::as_const(net).predict(data.images);  // right after the update: the fresh mask
            (void)std::as_const(tr).evaluate(data);
        });
        const auto history = tr.fit(data, data);
        std::vector<float> out = all_parameters(net);
        for (const auto& e : history) out.push_back(static_cast<float>(e.eval.loss));
        return out;
    };
    CHECK(run(true) == run(false));
}

TEST_CASE("fit on a finished run throws; extend continues it with the schedule over the new count") {
    const auto data = blobs(48, 1);  // 3 steps per epoch
    tiny_dst net;
    net.initialize(3);
    auto cfg = quiet_config(2, 1e-3f);
    cfg.schedule = [](std::size_t e, std::size_t total) {
        return 0.1f * static_cast<float>(total - e) / static_cast<float>(total);
    };
    ds::trainer<tiny_dst> tr(net, {}, ds::sgd(), cfg);
    std::vector<ds::step_report> steps;
    tr.add_step_callback([&](const ds::step_report& s) { steps.push_back(s); });
    CHECK(tr.fit(data, data).size() == 2);
    CHECK_THROWS_WITH_AS(tr.fit(data, data), doctest::Contains("the run is finished (2 of 2 epochs done)"),
                         ds::invalid_argument);
    tr.extend(2);
    CHECK(tr.config().epochs == 4);
    const auto more = tr.fit(data, data);
    REQUIRE(more.size() == 2);
    CHECK(more[0].epoch == 3);
    CHECK(more[0].learning_rate == cfg.schedule(2, 4));
    CHECK(more[1].learning_rate == cfg.schedule(3, 4));
    REQUIRE(steps.size() == 12);
    CHECK(steps.back().total_steps == 12);
    CHECK(steps.back().global_step == 12);
    CHECK(tr.history().size() == 4);
    CHECK_THROWS_WITH_AS(tr.set_epochs(3), doctest::Contains("4 epochs are done already"), ds::invalid_argument);
    tr.set_epochs(4);  // allowed: no change
    CHECK_THROWS_AS(tr.fit(data, data), ds::invalid_argument);
}

TEST_CASE("an epoch callback may stop the run; void callbacks and empty std::function still work") {
    const auto data = blobs(48, 2);
    tiny_dst net;
    net.initialize(4);
    ds::trainer<tiny_dst> tr(net, {}, ds::sgd(), quiet_config(5, 1e-3f));
    std::size_t seen = 0;
    const auto history = tr.fit(data, data, [&](const ds::epoch_report& r) {
        ++seen;
        return r.epoch == 2 ? ds::epoch_action::stop : ds::epoch_action::proceed;
    });
    CHECK(history.size() == 2);
    CHECK(seen == 2);
    CHECK(tr.epoch() == 2);
    CHECK(tr.fit(data, data, [&](const ds::epoch_report&) { ++seen; }, 3).size() == 1);  // void, stop_after
    CHECK_THROWS_WITH_AS(tr.fit(data, data, {}, 3), doctest::Contains("stop_after = 3 but 3 epochs are done already"),
                         ds::invalid_argument);
    CHECK(seen == 3);
    const std::function<void(const ds::epoch_report&)> none;
    CHECK(tr.fit(data, data, none).size() == 2);  // to the end
    CHECK(tr.epoch() == 5);
}

namespace {
struct bn_net : ds::sequential<ds::input<8>, ds::masked_dense<16>, ds::batch_norm, ds::relu, ds::masked_dense<3>> {};
}  // namespace

TEST_CASE("keep_best restores the best epoch's parameters and running statistics at the end") {
    const auto data = blobs(64, 3);
    for (const ds::keep_best_by by : {ds::keep_best_by::none, ds::keep_best_by::loss, ds::keep_best_by::accuracy}) {
        CAPTURE(static_cast<int>(by));
        bn_net net;
        net.initialize(5);
        auto cfg = quiet_config(4, 1e-3f);
        cfg.keep_best = by;
        ds::trainer<bn_net> tr(net, {}, ds::sgd({.momentum = 0.9f}), cfg);
        std::vector<std::vector<float>> params, means;
        const auto history = tr.fit(data, data, [&](const ds::epoch_report& r) {
            params.push_back(all_parameters(net));
            const auto& m = net.get<1>().running_mean();
            means.emplace_back(m.begin(), m.end());
            if (r.epoch == 2)  // wreck the later epochs: every parameter 0
                net.for_each_parameter([](const ds::parameter& p) { std::fill(p.value.begin(), p.value.end(), 0.0f); });
        });
        REQUIRE(history.size() == 4);
        std::size_t best = 0;  // 0-based
        for (std::size_t e = 1; e < 4; ++e) {
            const bool better = by == ds::keep_best_by::accuracy
                                    ? history[e].eval.accuracy > history[best].eval.accuracy
                                    : history[e].eval.loss < history[best].eval.loss;
            if (better) best = e;
        }
        if (by == ds::keep_best_by::none) {
            CHECK(tr.best_epoch() == 0);
            CHECK(all_parameters(net) == params[3]);
            continue;
        }
        CHECK(best < 2);  // the wrecked epochs are worse
        CHECK(tr.best_epoch() == best + 1);
        CHECK(all_parameters(net) == params[best]);
        const auto& m = net.get<1>().running_mean();
        CHECK(std::vector<float>(m.begin(), m.end()) == means[best]);
        CHECK(tr.evaluate(data).loss == doctest::Approx(history[best].eval.loss).epsilon(1e-6));
    }
}
