// masked_dense: finite-difference gradient checks over every surrogate x granularity,
// the exact step mask, the exact-mode gradient formulas and the 1% reset rule.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "dynsparse/layers/masked_dense.hpp"
#include "dynsparse/layers/product_mode.hpp"
#include "dynsparse/optim/optimizer.hpp"
#include "dynsparse/optim/update.hpp"
#include "support/fixtures.hpp"
#include "support/gradient_check.hpp"
#include "support/kept_products.hpp"
#include "support/policy_lists.hpp"

namespace ds = dynsparse;
using ds::testing::as_checkable;
using ds::testing::check_gradients;

using ds::testing::per_input;

namespace {


}  // namespace

TEST_CASE_TEMPLATE("masked_dense gradients match finite differences of the smoothed forward", C,
                   DYNSPARSE_DENSE_COMBOS) {
    using L = ds::masked_dense_layer<5, 4, typename C::surrogate, typename C::granularity>;
    static_assert(ds::MaskedLayer<L>);
    ds::rng gen(42);
    L layer;
    const auto result = ds::testing::check_masked_layer(layer, ds::testing::random_matrix(3, 5, gen), gen);
    DYNSPARSE_CHECK_GRADIENTS(result);
    // inputs (15) + weights (20) + biases (4) + thresholds
    CHECK(result.checked == 15 + 20 + 4 + L::threshold_count);
}

TEST_CASE_TEMPLATE("masked_dense exact forward uses the strict step mask", C, DYNSPARSE_DENSE_COMBOS) {
    using G = typename C::granularity;
    using L = ds::masked_dense_layer<6, 3, typename C::surrogate, G>;
    ds::rng gen(7);
    L layer;
    layer.initialize(gen);
    CHECK(layer.statistics().total == 18);
    for (auto& t : layer.threshold()) t = 0.2f;
    layer.weight()(0, 0) = 0.2f;   // |W| == t: strict step keeps nothing
    layer.weight()(1, 1) = -0.2f;  // also exactly at the threshold
    layer.weight()(2, 2) = -0.5f;  // above: kept
    layer.update_mask();
    std::size_t kept = 0;
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 6; ++j) {
            const float w = layer.weight()(i, j);
            const bool keep = std::fabs(w) > 0.2f;
            kept += keep;
            CHECK(layer.masked_weight()(i, j) == (keep ? w : 0.0f));
        }
    CHECK(layer.masked_weight()(0, 0) == 0.0f);
    CHECK(layer.masked_weight()(1, 1) == 0.0f);
    CHECK(layer.masked_weight()(2, 2) == -0.5f);
    CHECK(layer.statistics().kept == kept);

    // The forward output is x Wm^T + b.
    ds::matrix x = ds::testing::random_matrix(2, 6, gen), y;
    layer.forward(x, y, true);
    for (std::size_t r = 0; r < 2; ++r)
        for (std::size_t o = 0; o < 3; ++o) {
            double expect = layer.bias()(o);
            for (std::size_t j = 0; j < 6; ++j) expect += x(r, j) * layer.masked_weight()(o, j);
            CHECK(y(r, o) == doctest::Approx(expect).epsilon(1e-5));
        }
}

TEST_CASE_TEMPLATE("masked_dense exact backward: performance + structure gradients", C,
                   DYNSPARSE_DENSE_COMBOS) {
    using S = typename C::surrogate;
    using G = typename C::granularity;
    using L = ds::masked_dense_layer<4, 3, S, G>;
    ds::rng gen(11);
    L layer;
    layer.set_reset_rule(false);
    layer.initialize(gen);
    for (auto& t : layer.threshold()) t = gen.uniform(0.0f, 0.3f);
    layer.weight()(0, 1) = 0.0f;  // sign(0) = 0: structure gradient must vanish
    ds::matrix x = ds::testing::random_matrix(5, 4, gen), y, dx;
    ds::matrix dy = ds::testing::random_matrix(5, 3, gen);
    layer.forward(x, y, true);
    layer.backward(x, y, dy, &dx);

    std::vector<double> expect_t(L::threshold_count, 0.0);
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 4; ++j) {
            double g = 0;  // dL/dWm = dy^T x
            for (std::size_t r = 0; r < 5; ++r) g += dy(r, i) * x(r, j);
            const float w = layer.weight()(i, j);
            const float t = layer.threshold()(G::index(i, j, 4));
            const float q = std::fabs(w) - t;
            const double m = q > 0 ? 1.0 : 0.0;
            const double sign = w > 0 ? 1.0 : (w < 0 ? -1.0 : 0.0);
            const double h = S::derivative(q);
            const double expect_w = g * m + g * w * h * sign;
            CHECK(layer.weight_gradient()(i, j) == doctest::Approx(expect_w).epsilon(1e-4).scale(1e-5));
            expect_t[G::index(i, j, 4)] -= g * w * h;
        }
    CHECK(layer.weight_gradient()(0, 1) ==
          doctest::Approx(0.0 + (layer.masked_weight()(0, 1) != 0 ? 1 : 0)).epsilon(1e9));
    for (std::size_t k = 0; k < L::threshold_count; ++k)
        CHECK(layer.threshold_gradient()(k) == doctest::Approx(expect_t[k]).epsilon(1e-4).scale(1e-5));
    // dx = dy Wm
    for (std::size_t r = 0; r < 5; ++r)
        for (std::size_t j = 0; j < 4; ++j) {
            double e = 0;
            for (std::size_t i = 0; i < 3; ++i) e += dy(r, i) * layer.masked_weight()(i, j);
            CHECK(dx(r, j) == doctest::Approx(e).epsilon(1e-5));
        }
}

TEST_CASE("masked weights keep receiving the structure gradient, so they can come back") {
    ds::masked_dense_layer<2, 1, ds::long_tailed, ds::scalar> layer;
    layer.weight()(0, 0) = 0.3f;   // pruned: |W| - t = -0.2, inside the surrogate's support
    layer.weight()(0, 1) = -0.9f;  // kept
    layer.threshold()(0) = 0.5f;
    layer.bias()(0) = 0.0f;
    ds::matrix x({1, 2}), y, dy({1, 1});
    x(0, 0) = 1.0f;
    x(0, 1) = 1.0f;
    dy(0, 0) = 1.0f;
    layer.forward(x, y, true);
    CHECK(layer.masked_weight()(0, 0) == 0.0f);
    CHECK(y(0, 0) == doctest::Approx(-0.9));
    layer.backward(x, y, dy, nullptr);
    // G = 1; pruned weight: 0*1 + 1*|0.3|*H(-0.2) = 0.3 * (2 - 0.8)
    CHECK(layer.weight_gradient()(0, 0) == doctest::Approx(0.3 * 1.2));
    // kept weight: 1 + 0.9 * H(0.4) = 1 + 0.9 * 0.4
    CHECK(layer.weight_gradient()(0, 1) == doctest::Approx(1.0 + 0.9 * 0.4));
    // dL/dt = -(0.3 * 1.2 + (-0.9) * 0.4)
    CHECK(layer.threshold_gradient()(0) == doctest::Approx(-(0.36 - 0.36)).scale(1.0));
}

TEST_CASE("the 1% reset rule zeroes the thresholds in training steps only, is counted and can be switched off") {
    using L = ds::masked_dense_layer<10, 20, ds::long_tailed, ds::per_neuron>;
    ds::rng gen(3);
    L layer;
    layer.initialize(gen);
    // The rule applies in training steps only: an update with learning rate 0 keeps W and t
    // and makes the next mask.
    ds::sgd opt;
    ds::update_pass pass(layer);
    auto training_step = [&] { pass.run(opt, 0.0f, 0.0f); };
    for (auto& t : layer.threshold()) t = 10.0f;  // prunes everything
    layer.update_mask();                          // as a forward pass: never resets
    CHECK(layer.statistics().resets == 0);
    CHECK(layer.statistics().kept == 0);
    training_step();
    CHECK(layer.statistics().resets == 1);
    CHECK(layer.statistics().kept == 200);  // thresholds back at 0: dense again
    for (float t : layer.threshold()) CHECK(t == 0.0f);

    // Exactly 1% kept (2 of 200) also fires the rule; 1.5% (3 of 200) does not.
    auto keep_n = [&](std::size_t n) {
        for (auto& t : layer.threshold()) t = 0.9f;
        for (auto& w : layer.weight()) w = 0.5f;
        for (std::size_t k = 0; k < n; ++k) layer.weight().data()[k * 7] = 1.0f;
        training_step();
    };
    keep_n(3);
    CHECK(layer.statistics().resets == 1);
    CHECK(layer.statistics().kept == 3);
    keep_n(2);
    CHECK(layer.statistics().resets == 2);
    CHECK(layer.statistics().kept == 200);

    layer.set_reset_rule(false);
    keep_n(0);
    CHECK(layer.statistics().resets == 2);
    CHECK(layer.statistics().kept == 0);
}

TEST_CASE("masked_dense initialisation follows PyTorch: U(-1/sqrt(fan_in), +) and t = 0") {
    ds::masked_dense_layer<400, 50, ds::long_tailed, ds::per_neuron> layer;
    ds::rng gen(5);
    layer.initialize(gen);
    const float bound = 1.0f / 20.0f;
    float lo = 1, hi = -1;
    for (float w : layer.weight()) {
        lo = std::min(lo, w);
        hi = std::max(hi, w);
    }
    CHECK(lo >= -bound);
    CHECK(hi <= bound);
    CHECK(lo < -0.9f * bound);  // the range is used, not a narrower one
    CHECK(hi > 0.9f * bound);
    for (float b : layer.bias()) CHECK(std::fabs(b) <= bound);
    for (float t : layer.threshold()) CHECK(t == 0.0f);
    layer.update_mask();
    CHECK(layer.statistics().remaining() == 1.0);
}

// Forces every member of the class template to compile.
template class ds::masked_dense_layer<8, 4, ds::long_tailed, ds::per_neuron>;
template class ds::masked_dense_layer<8, 4, ds::straight_through, ds::scalar>;
template class ds::masked_dense_layer<8, 4, ds::sigmoid_surrogate<8>, ds::per_weight>;

namespace {

// Thresholds that keep roughly `fraction` of a layer's weights (per-neuron, from |W|'s quantile).
template <class L>
void keep_about(L& layer, float fraction) {
    std::vector<float> a;
    for (float w : layer.weight()) a.push_back(std::fabs(w));
    std::sort(a.begin(), a.end());
    const float t = a[static_cast<std::size_t>((1.0f - fraction) * static_cast<float>(a.size() - 1))];
    for (auto& v : layer.threshold()) v = t;
}

}  // namespace

TEST_CASE("masked_dense kept-weight products equal the dense products, and leave dL/dW and dL/dt unchanged") {
    using L = ds::masked_dense_layer<120, 40, ds::long_tailed, ds::per_neuron>;
    for (const float fraction : {0.0f, 0.02f, 0.1f, 0.5f}) {
        CAPTURE(fraction);
        ds::testing::check_kept_products_match_dense<L>([&](L& layer) { keep_about(layer, fraction); }, 37,
                                                        ds::testing::weight_gradients::bitwise);
    }
}

TEST_CASE("masked_dense picks the kept-weight products below the crossover only") {
    using L = ds::masked_dense_layer<200, 50, ds::long_tailed, ds::per_neuron>;
    ds::rng gen(5);
    L layer;
    layer.initialize(gen);
    CHECK(layer.get_product_mode() == ds::product_mode::automatic);
    const ds::matrix x = ds::testing::random_matrix(4, 200, gen);
    ds::matrix y;
    layer.forward(x, y, false);  // thresholds 0: all kept
    CHECK_FALSE(layer.used_kept_weights());
    keep_about(layer, 0.5f * static_cast<float>(ds::kept_weights_crossover));
    layer.forward(x, y, false);
    CHECK(layer.used_kept_weights());
    keep_about(layer, 2.0f * static_cast<float>(ds::kept_weights_crossover));
    layer.forward(x, y, false);
    CHECK_FALSE(layer.used_kept_weights());
    CHECK(ds::parse_product_mode("kept") == ds::product_mode::kept_weights);
    CHECK(ds::parse_product_mode("dense") == ds::product_mode::dense);
    CHECK(ds::parse_product_mode("auto") == ds::product_mode::automatic);
    CHECK_THROWS_WITH_AS(ds::parse_product_mode("sparse"), doctest::Contains("'sparse'"), std::invalid_argument);
}

TEST_CASE_TEMPLATE("masked_dense gradients match finite differences with the kept-weight products", C,
                   DYNSPARSE_DENSE_COMBOS) {
    using L = ds::masked_dense_layer<5, 4, typename C::surrogate, typename C::granularity>;
    ds::rng gen(43);
    L layer;
    layer.set_product_mode(ds::product_mode::kept_weights);
    const auto result = ds::testing::check_masked_layer(layer, ds::testing::random_matrix(3, 5, gen), gen);
    DYNSPARSE_CHECK_GRADIENTS(result);
    CHECK(layer.used_kept_weights());
}
