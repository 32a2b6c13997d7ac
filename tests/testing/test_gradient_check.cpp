// The installed gradient checker (dynsparse/testing/): it passes correct layers and
// policies, catches wrong ones, and says where.
#include <doctest/doctest.h>

#include <cmath>
#include <numeric>
#include <string_view>
#include <vector>

#include "dynsparse/layers/dense.hpp"
#include "dynsparse/layers/masked_dense.hpp"
#include "dynsparse/testing/gradient_check.hpp"
#include "dynsparse/testing/policy_check.hpp"
#include "support/policy_lists.hpp"

namespace ds = dynsparse;

namespace {

/// A surrogate whose derivative is twice the derivative of its smooth step.
struct inconsistent_surrogate {
    static constexpr std::string_view name = "inconsistent";
    static float derivative(float x) { return 2.0f * ds::straight_through::derivative(x); }
    static float smooth_step(float x) { return ds::straight_through::smooth_step(x); }
};

}  // namespace

TEST_CASE_TEMPLATE("check_surrogate passes every shipped surrogate with every granularity", C,
                   DYNSPARSE_DENSE_COMBOS, ds::testing::combo<ds::long_tailed, ds::per_filter>) {
    using S = typename C::surrogate;
    using G = typename C::granularity;
    const auto r = ds::testing::check_surrogate<S, G>();
    INFO(r.summary());
    CHECK(r.passed());
    // masked_dense: 15 inputs, 20 weights, 4 biases, thresholds; masked_conv2d when allowed.
    std::size_t expect = 0;
    if constexpr (G::for_dense) expect += 15 + 20 + 4 + G::count(4, 5);
    if constexpr (G::for_conv) expect += 100 + 54 + 3 + G::count(3, 18);
    CHECK(r.checked == expect);
}

TEST_CASE("check_surrogate catches a derivative that is not the smooth step's, and says where") {
    const auto r = ds::testing::check_surrogate<inconsistent_surrogate>();
    CHECK_FALSE(r.passed());
    CHECK(r.failed > 0);
    CHECK(r.worst_error > 0.01);
    CHECK(!r.first_failure.empty());
    // The bias gradient does not go through the surrogate; the thresholds' does.
    std::size_t entries_checked = 0, entries_failed = 0;
    for (const auto& e : r.entries) {
        entries_checked += e.checked;
        entries_failed += e.failed;
        if (e.name == "masked_dense: bias") CHECK(e.failed == 0);
        if (e.name == "masked_dense: threshold") CHECK(e.failed > 0);
    }
    CHECK(entries_checked == r.checked);
    CHECK(entries_failed == r.failed);
    CHECK(r.worst_name.rfind("masked_dense: ", 0) == 0);
}

TEST_CASE("check_granularity checks a user's granularity through the row-varying kernels") {
    const auto r = ds::testing::check_granularity<ds::testing::per_input>();
    INFO(r.summary());
    CHECK(r.passed());
    CHECK(r.checked == 15 + 20 + 4 + 5);
}

TEST_CASE("on a masked layer the exact forward fails the check; check_masked_layer passes and restores") {
    using L = ds::masked_dense_layer<7, 4, ds::long_tailed, ds::per_neuron>;
    ds::rng gen(3);
    L layer;
    layer.initialize(gen);
    for (auto& t : layer.threshold()) t = 0.2f;
    const ds::matrix x = ds::testing::random_matrix(3, 7, gen);
    // The unit step has derivative 0 where the surrogate is not: most derivatives disagree.
    const auto exact = ds::testing::check_layer(layer, x, gen);
    CHECK(exact.failed > 0);

    CHECK(layer.reset_rule());
    const auto smooth = ds::testing::check_masked_layer(layer, x, gen);
    INFO(smooth.summary());
    CHECK(smooth.passed());
    CHECK(smooth.checked == 21 + 28 + 4 + 4);
    CHECK(layer.reset_rule());
    // The forward is exact again: every masked weight is W or 0.
    ds::matrix y;
    layer.forward(x, y, true);
    const auto& wm = layer.masked_weight();
    const auto& w = layer.weight();
    for (std::size_t i = 0; i < wm.size(); ++i)
        CHECK((wm.data()[i] == 0.0f || wm.data()[i] == w.data()[i]));
}

TEST_CASE("kink_free rejects points near a kink or jump of the surrogate") {
    CHECK(ds::testing::kink_free<ds::long_tailed>(0.7f, 1e-2f));
    CHECK_FALSE(ds::testing::kink_free<ds::long_tailed>(0.41f, 1e-2f));
    CHECK_FALSE(ds::testing::kink_free<ds::long_tailed>(0.0f, 1e-2f));
    CHECK_FALSE(ds::testing::kink_free<ds::straight_through>(-0.98f, 1e-2f));
    CHECK(ds::testing::kink_free<ds::sigmoid_surrogate<>>(0.0f, 1e-2f));
}

TEST_CASE("check_layer: an unmasked layer passes; a wrong gradient is named with its element") {
    ds::rng gen(5);
    ds::dense_layer<4, 3> layer;
    layer.initialize(gen);
    const ds::matrix x = ds::testing::random_matrix(2, 4, gen);
    const auto r = ds::testing::check_layer(layer, x, gen);
    CHECK(r.passed());
    CHECK(r.checked == 8 + 12 + 3);
    REQUIRE(r.entries.size() == 3);
    CHECK(r.entries[0].name == "input");

    // A checkable whose reported bias gradient is off by one in element 2.
    ds::matrix y;
    auto c = ds::testing::as_checkable(layer, y);
    auto params = c.params;
    std::vector<float> wrong_bias_grad;
    c.params = [&] {
        auto ps = params();
        for (auto& p : ps)
            if (p.name == std::string_view("bias")) {
                wrong_bias_grad.assign(p.gradient.begin(), p.gradient.end());
                wrong_bias_grad[2] += 1.0f;
                p.gradient = {wrong_bias_grad.data(), wrong_bias_grad.size()};
            }
        return ps;
    };
    const auto bad = ds::testing::check_gradients(c, x, gen);
    CHECK(bad.failed == 1);
    CHECK(bad.worst_name == "bias");
    CHECK(bad.worst_element == 2);
    CHECK(bad.worst_error == doctest::Approx(1.0).epsilon(0.01));
}
