// The update pass (optim/update.hpp) with policies written outside the library: an
// optimizer defined here trains bit for bit like ds::sgd; regulariser and reset rule are
// swapped through the trainer; evaluation never changes parameters; a thrashing reset rule
// is reported; the gradient reducer sees raw gradients before the update.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <sstream>
#include <vector>

#include "dynsparse/dynsparse.hpp"
#include "support/fixtures.hpp"

namespace ds = dynsparse;

namespace {
/// SGD with momentum and weight decay written from the concept alone (not ds::sgd).
class my_momentum_sgd {
public:
    my_momentum_sgd(float momentum, float weight_decay) : m_(momentum), wd_(weight_decay) {}
    void begin_step(std::span<const ds::parameter> params, float lr) {
        if (buffers_.empty())
            for (const auto& p : params) buffers_.emplace_back(p.value.size(), 0.0f);
        lr_ = lr;
    }
    void update(const ds::update_range& r) {
        const float wd = r.kind == ds::parameter_kind::threshold ? 0.0f : wd_;
        std::vector<float>& b = buffers_[r.index];
        const float keep = started_ ? m_ : 0.0f;
        for (std::size_t i = r.begin; i < r.end; ++i) {
            b[i] = keep * b[i] + (r.gradient[i] + wd * r.value[i]);
            r.value[i] -= lr_ * b[i];
        }
    }
    void end_step() { started_ = true; }

private:
    float m_, wd_, lr_ = 0;
    bool started_ = false;
    std::vector<std::vector<float>> buffers_;
};
static_assert(ds::Optimizer<my_momentum_sgd>);
static_assert(!ds::StatefulOptimizer<my_momentum_sgd>);

// All three granularities: per_filter (conv), per_neuron and scalar (dense).
struct three_granularities
    : ds::sequential<ds::input<2, 8, 8>, ds::masked_conv2d<4, 3, 1, 1, ds::long_tailed, ds::per_filter>,
                     ds::relu, ds::max_pool2d<2>, ds::flatten,
                     ds::masked_dense<12, ds::long_tailed, ds::per_neuron>, ds::relu,
                     ds::masked_dense<3, ds::long_tailed, ds::scalar>> {};

template <class Opt>
std::vector<float> train_50_steps(Opt opt) {
    three_granularities net;
    net.initialize(5);
    ds::rng gen(9);
    ds::matrix x = ds::make_matrix(16, three_granularities::input_shape::size);
    std::vector<std::uint8_t> y(16);
    ds::train_config cfg;
    cfg.alpha = 5e-3f;
    cfg.progress = false;
    ds::trainer<three_granularities, ds::softmax_cross_entropy, Opt> tr(net, {}, std::move(opt), cfg);
    for (int s = 0; s < 50; ++s) {
        for (float& v : x) v = gen.uniform(-1.0f, 1.0f);
        for (auto& c : y) c = static_cast<std::uint8_t>(gen.below(3));
        tr.step(x, y, 0.05f);
    }
    std::vector<float> out;
    net.for_each_parameter([&](const ds::parameter& p) { out.insert(out.end(), p.value.begin(), p.value.end()); });
    for (const auto& v : ds::masked_layers(net)) {
        const auto wm = v.masked_weight();
        out.insert(out.end(), wm.begin(), wm.end());
    }
    return out;
}
}  // namespace

TEST_CASE("an optimizer written outside the library trains bit for bit like ds::sgd") {
    const std::vector<float> mine = train_50_steps(my_momentum_sgd(0.9f, 5e-4f));
    const std::vector<float> library = train_50_steps(ds::sgd({.momentum = 0.9f, .weight_decay = 5e-4f}));
    REQUIRE(mine.size() == library.size());
    std::size_t differ = 0;
    for (std::size_t i = 0; i < mine.size(); ++i) differ += mine[i] != library[i];
    CHECK(differ == 0);
    // The run is not trivial: it moved the parameters away from a fresh network's.
    const std::vector<float> other = train_50_steps(ds::sgd({.momentum = 0.5f, .weight_decay = 5e-4f}));
    std::size_t moved = 0;
    for (std::size_t i = 0; i < mine.size(); ++i) moved += mine[i] != other[i];
    CHECK(moved > mine.size() / 2);
}

TEST_CASE("the regulariser's value is computed once per step by the update pass") {
    ds::testing::tiny_dst net;
    net.initialize(1);
    ds::update_pass pass(net);
    const ds::matrix x = ds::make_matrix(4, 8);
    ds::matrix dy = ds::make_matrix(4, 3);
    dy.fill(0.1f);
    double expected = 0;
    for (const auto& p : pass.parameters())
        if (p.kind == ds::parameter_kind::threshold)
            for (float t : p.value) expected += std::exp(-t);
    net.forward(x, true);
    ds::defer_surrogate_backward(net);
    net.backward(dy);
    ds::sgd opt;
    const ds::update_result r = pass.run(opt, 0.01f, 2e-3f);
    CHECK(r.regulariser == doctest::Approx(2e-3 * expected).epsilon(1e-6));
    CHECK(pass.run(opt, 0.01f, 0.0f).regulariser == 0.0);
}

TEST_CASE("evaluation never applies the reset rule; training steps do, and thrashing is reported") {
    ds::testing::tiny_dst net;
    net.initialize(2);
    const ds::dataset data = ds::testing::blobs(64, 4);
    ds::train_config cfg;
    cfg.epochs = 1;
    cfg.batch_size = 8;
    cfg.progress = false;
    cfg.alpha = 1e6f;  // every step prunes everything: the rule resets every step
    std::ostringstream warnings;
    cfg.warnings = &warnings;
    ds::trainer tr(net, ds::softmax_cross_entropy{}, ds::sgd{}, cfg);
    // Thresholds far above every weight: the mask is empty, but evaluating must not reset.
    auto t = net.get<0>().thresholds();
    std::fill(t.begin(), t.end(), 10.0f);
    tr.evaluate(data);
    CHECK(net.get<0>().statistics().kept == 0);
    CHECK(net.get<0>().statistics().resets == 0);
    CHECK(t[0] == 10.0f);
    const ds::epoch_report r = tr.train_epoch(data);
    CHECK(r.resets >= 8);
    REQUIRE(r.layers.size() == 2);
    CHECK(r.layers[0].thrashing);
    CHECK(r.layers[0].epoch_resets == r.layers[0].stats.resets);
    CHECK(warnings.str().find("thrash") != std::string::npos);
    CHECK(warnings.str().find("masked_dense<16") != std::string::npos);
}

TEST_CASE("reset rules and regularisers are trainer policies") {
    const ds::dataset data = ds::testing::blobs(64, 4);
    ds::train_config cfg;
    cfg.epochs = 1;
    cfg.batch_size = 8;
    cfg.progress = false;
    cfg.alpha = 1e6f;
    cfg.warnings = nullptr;
    ds::testing::tiny_dst a, b;
    a.initialize(3);
    b.initialize(3);
    ds::trainer<ds::testing::tiny_dst, ds::softmax_cross_entropy, ds::sgd, ds::exp_decay, ds::never_reset> never(
        a, {}, {}, cfg);
    CHECK(never.train_epoch(data).resets == 0);
    CHECK(never.reset_rule_name() == "never");
    CHECK(a.get<0>().statistics().kept == 0);  // pruned to nothing, never reset
    ds::trainer<ds::testing::tiny_dst, ds::softmax_cross_entropy, ds::sgd, ds::linear_pull> pull(b, {}, {}, cfg);
    CHECK(pull.regulariser_name() == "linear_pull");
    const ds::epoch_report r = pull.train_epoch(data);
    CHECK(r.resets > 0);
    CHECK(std::isfinite(r.regulariser));
}

TEST_CASE("the gradient reducer runs between backward and the update, on raw gradients") {
    ds::testing::tiny_dst a, b;
    a.initialize(4);
    b.initialize(4);
    ds::train_config cfg;
    cfg.progress = false;
    cfg.alpha = 0;  // the regulariser's term comes after the reducer: not doubled
    ds::trainer ta(a, ds::softmax_cross_entropy{}, ds::sgd{}, cfg), tb(b, ds::softmax_cross_entropy{}, ds::sgd{}, cfg);
    std::size_t calls = 0;
    // Doubling every gradient is the same as doubling the learning rate for plain SGD.
    tb.set_gradient_reducer([&](std::span<const ds::parameter> ps) {
        ++calls;
        CHECK(ps.size() == tb.parameters().size());
        for (const auto& p : ps)
            for (float& g : p.gradient) g *= 2.0f;
    });
    ds::rng gen(1);
    ds::matrix x = ds::make_matrix(8, 8);
    for (float& v : x) v = gen.uniform(-1.0f, 1.0f);
    const std::vector<std::uint8_t> y{0, 1, 2, 0, 1, 2, 0, 1};
    ta.step(x, y, 0.02f);
    tb.step(x, y, 0.01f);
    CHECK(calls == 1);
    std::vector<float> va, vb;
    a.for_each_parameter([&](const ds::parameter& p) { va.insert(va.end(), p.value.begin(), p.value.end()); });
    b.for_each_parameter([&](const ds::parameter& p) { vb.insert(vb.end(), p.value.begin(), p.value.end()); });
    REQUIRE(va.size() == vb.size());
    std::size_t close = 0;
    for (std::size_t i = 0; i < va.size(); ++i) close += std::abs(va[i] - vb[i]) <= 1e-6f * (1 + std::abs(va[i]));
    CHECK(close == va.size());
}
