// Softmax cross-entropy, SGD, Adam, learning-rate schedules and the sparse regulariser.
#include <doctest/doctest.h>

#include <cmath>

#include "dynsparse/loss/softmax_cross_entropy.hpp"
#include "dynsparse/optim/optimizer.hpp"
#include "dynsparse/optim/schedule.hpp"
#include "dynsparse/optim/update.hpp"
#include "support/gradient_check.hpp"

namespace ds = dynsparse;

static_assert(ds::Loss<ds::softmax_cross_entropy>);
static_assert(ds::Optimizer<ds::sgd>);
static_assert(ds::Optimizer<ds::adam>);
static_assert(!ds::Optimizer<int>);

TEST_CASE("softmax cross-entropy: value and finite-difference gradient") {
    ds::rng gen(1);
    ds::matrix z = ds::testing::random_matrix(3, 4, gen, -2, 2), g;
    const std::vector<std::uint8_t> y{2, 0, 3};
    ds::softmax_cross_entropy loss;
    const double v = loss.value_and_gradient(z, y, g);
    double expect = 0;
    for (std::size_t r = 0; r < 3; ++r) {
        double s = 0;
        for (std::size_t c = 0; c < 4; ++c) s += std::exp(z(r, c));
        expect += std::log(s) - z(r, y[r]);
    }
    CHECK(v == doctest::Approx(expect / 3).epsilon(1e-6));
    ds::matrix scratch;
    for (std::size_t k = 0; k < z.size(); ++k) {
        const float keep = z.data()[k], eps = 1e-2f;
        z.data()[k] = keep + eps;
        const double up = loss.value_and_gradient(z, y, scratch);
        z.data()[k] = keep - eps;
        const double down = loss.value_and_gradient(z, y, scratch);
        z.data()[k] = keep;
        CHECK(g.data()[k] == doctest::Approx((up - down) / (2 * eps)).epsilon(1e-3).scale(1e-3));
    }
    // Large logits stay finite.
    z(0, 0) = 1e4f;
    CHECK(std::isfinite(loss.value_and_gradient(z, y, g)));
    CHECK(ds::count_correct(z, y) >= 0u);
}

TEST_CASE("softmax cross-entropy rejects a label the network cannot output") {
    ds::matrix z({1, 3}), g;
    const std::vector<std::uint8_t> y{3};
    CHECK_THROWS_WITH_AS(ds::softmax_cross_entropy{}.value_and_gradient(z, y, g),
                         doctest::Contains("label 3 but the network has 3 outputs"), ds::invalid_argument);
}

namespace {
struct one_param {
    std::vector<float> value, grad;
    ds::parameter_kind kind = ds::parameter_kind::weight;
    std::vector<ds::parameter> list() {
        return {ds::parameter{"p", kind, {value.data(), value.size()}, {grad.data(), grad.size()}}};
    }
};
}  // namespace

TEST_CASE("sgd follows PyTorch: momentum buffer starts at the gradient, Nesterov, weight decay") {
    one_param p{{1.0f}, {0.5f}};
    ds::sgd opt({.momentum = 0.9f, .weight_decay = 0.1f});
    ds::optimizer_step(opt, p.list(), 0.1f);  // g = 0.5 + 0.1*1 = 0.6; b = 0.6; w = 1 - 0.06
    CHECK(p.value[0] == doctest::Approx(0.94));
    ds::optimizer_step(opt, p.list(), 0.1f);  // g = 0.5 + 0.094 = 0.594; b = 0.54 + 0.594 = 1.134; w -= 0.1134
    CHECK(p.value[0] == doctest::Approx(0.94 - 0.1134));

    one_param n{{1.0f}, {0.5f}};
    ds::sgd nesterov({.momentum = 0.9f, .nesterov = true});
    ds::optimizer_step(nesterov, n.list(), 0.1f);  // b = 0.5; step = 0.5 + 0.9*0.5 = 0.95
    CHECK(n.value[0] == doctest::Approx(1.0 - 0.095));
    CHECK_THROWS_AS(ds::sgd({.momentum = 0.0f, .nesterov = true}), ds::invalid_argument);
}

TEST_CASE("sgd applies weight decay to thresholds only when asked") {
    for (bool decay : {false, true}) {
        one_param t{{2.0f}, {0.0f}, ds::parameter_kind::threshold};
        ds::sgd opt({.weight_decay = 0.5f, .decay_thresholds = decay});
        ds::optimizer_step(opt, t.list(), 0.1f);
        CHECK(t.value[0] == doctest::Approx(decay ? 2.0 - 0.1 * 0.5 * 2.0 : 2.0));
    }
}

TEST_CASE("adam's first steps match the bias-corrected update") {
    one_param p{{1.0f}, {0.2f}};
    ds::adam opt;
    ds::optimizer_step(opt, p.list(), 0.01f);  // m^ = g, v^ = g^2: step = lr * g / (|g| + eps) = lr
    CHECK(p.value[0] == doctest::Approx(0.99).epsilon(1e-6));
    p.grad[0] = -0.2f;
    ds::optimizer_step(opt, p.list(), 0.01f);
    const double m = 0.9 * 0.1 * 0.2 + 0.1 * -0.2, v = 0.999 * 0.001 * 0.04 + 0.001 * 0.04;
    const double mh = m / (1 - 0.81), vh = v / (1 - 0.998001);
    CHECK(p.value[0] == doctest::Approx(0.99 - 0.01 * mh / (std::sqrt(vh) + 1e-8)).epsilon(1e-5));
}

TEST_CASE("learning-rate schedules") {
    CHECK(ds::constant_lr(0.1f)(7, 20) == doctest::Approx(0.1));
    const auto ms = ds::multi_step_lr(0.1f, {80, 120}, 0.1f);
    CHECK(ms(79, 160) == doctest::Approx(0.1));
    CHECK(ms(80, 160) == doctest::Approx(0.01));
    CHECK(ms(120, 160) == doctest::Approx(0.001));
    // The schedule itself refuses milestones that do not strictly increase, not only the CLI.
    CHECK_THROWS_WITH_AS(ds::multi_step_lr(0.1f, {2, 1}), doctest::Contains("2 then 1"), ds::invalid_argument);
    CHECK_THROWS_AS(ds::multi_step_lr(0.1f, {5, 5}), ds::invalid_argument);
    const auto cos = ds::cosine_lr(0.1f, 0.0f);
    CHECK(cos(0, 10) == doctest::Approx(0.1));
    CHECK(cos(5, 10) == doctest::Approx(0.05));
    CHECK(cos(9, 10) < 0.01f);
}

namespace {
// Finite differences of a regulariser's value against the gradient it adds, and the value
// against a sum written out here.
template <class R>
void check_regulariser(double (*term)(double t, double alpha, double n)) {
    CAPTURE(R::name);
    std::vector<float> t{0.0f, 0.5f, -1.0f, 2.0f}, dt{0.1f, 0.0f, 0.0f, -0.2f};
    const std::vector<float> dt0 = dt;
    const float alpha = 0.01f;
    const ds::regulariser_scope scope{alpha, 8, 80};  // the block is half of its layer
    const double value = R{}.apply(t, dt, scope);
    double expected = 0;
    for (float ti : t) expected += term(ti, alpha, 8);
    CHECK(value == doctest::Approx(expected).epsilon(1e-6));
    for (std::size_t i = 0; i < t.size(); ++i) {
        const double eps = 1e-3;
        const double numeric = (term(t[i] + eps, alpha, 8) - term(t[i] - eps, alpha, 8)) / (2 * eps);
        CHECK(dt[i] - dt0[i] == doctest::Approx(numeric).epsilon(1e-3));
    }
}
}  // namespace

TEST_CASE("regularisers add the gradient of the value they return") {
    check_regulariser<ds::exp_decay>([](double t, double a, double) { return a * std::exp(-t); });
    check_regulariser<ds::layer_mean_exp_decay>([](double t, double a, double n) { return a / n * std::exp(-t); });
    check_regulariser<ds::linear_pull>([](double t, double a, double) { return -a * t; });
}

TEST_CASE("reset rules: one_percent at <= 1% kept, never_reset never, no_late_reset not near the end") {
    const ds::reset_query low{10, 1000, 0, 50, 100}, high{11, 1000, 0, 50, 100};
    CHECK(ds::one_percent{}.should_reset(low));
    CHECK_FALSE(ds::one_percent{}.should_reset(high));
    CHECK_FALSE(ds::never_reset{}.should_reset(low));
    const ds::no_late_reset late{.final_fraction = 0.1};
    CHECK(late.should_reset(low));                             // step 50 of 100
    CHECK_FALSE(late.should_reset({10, 1000, 0, 95, 100}));    // in the last 10%
    CHECK_FALSE(late.should_reset({11, 1000, 0, 10, 100}));    // enough weights kept
    CHECK(late.should_reset({10, 1000, 0, 95, 0}));            // unknown run length
}
