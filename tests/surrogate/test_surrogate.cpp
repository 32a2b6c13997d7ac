// Compile-time checks of the policy concepts, and the surrogates' numbers.
#include <doctest/doctest.h>

#include <cmath>

#include "dynsparse/surrogate/surrogate.hpp"
#include "dynsparse/threshold/granularity.hpp"
#include "support/policy_lists.hpp"

namespace ds = dynsparse;

// Every shipped policy satisfies its concept...
static_assert(ds::Surrogate<ds::long_tailed>);
static_assert(ds::Surrogate<ds::straight_through>);
static_assert(ds::Surrogate<ds::sigmoid_surrogate<>>);
static_assert(ds::Surrogate<ds::sigmoid_surrogate<10>>);
static_assert(ds::ThresholdGranularity<ds::scalar>);
static_assert(ds::ThresholdGranularity<ds::per_neuron>);
static_assert(ds::ThresholdGranularity<ds::per_filter>);
static_assert(ds::ThresholdGranularity<ds::per_weight>);

// ...and broken ones do not.
namespace mocks {
struct no_smooth_step {  // misses smooth_step
    static constexpr std::string_view name = "x";
    static float derivative(float) { return 1; }
};
struct double_derivative {  // wrong return type
    static constexpr std::string_view name = "x";
    static double derivative(float) { return 1; }
    static float smooth_step(float) { return 0; }
};
struct no_name {
    static float derivative(float) { return 1; }
    static float smooth_step(float) { return 0; }
};
struct no_layer_kinds {  // misses for_dense / for_conv
    static constexpr std::string_view name = "x";
    static constexpr std::size_t count(std::size_t, std::size_t) { return 1; }
    static constexpr std::size_t index(std::size_t, std::size_t, std::size_t) { return 0; }
    static constexpr bool varies_along_row = false;
};
}  // namespace mocks
static_assert(!ds::Surrogate<mocks::no_smooth_step>);
static_assert(!ds::Surrogate<mocks::double_derivative>);
static_assert(!ds::Surrogate<mocks::no_name>);
static_assert(!ds::Surrogate<int>);
static_assert(!ds::ThresholdGranularity<mocks::no_layer_kinds>);
static_assert(!ds::ThresholdGranularity<ds::long_tailed>);

// Which layer kinds take which granularity.
static_assert(ds::per_neuron::for_dense && !ds::per_neuron::for_conv);
static_assert(!ds::per_filter::for_dense && ds::per_filter::for_conv);
static_assert(ds::scalar::for_dense && ds::scalar::for_conv);
static_assert(ds::per_weight::count(3, 4) == 12 && ds::per_weight::index(2, 1, 4) == 9);

TEST_CASE("long_tailed is DST's H(x)") {
    using H = ds::long_tailed;
    CHECK(H::derivative(0.0f) == doctest::Approx(2.0));
    CHECK(H::derivative(0.1f) == doctest::Approx(1.6));
    CHECK(H::derivative(-0.3f) == doctest::Approx(0.8));
    CHECK(H::derivative(0.4f) == doctest::Approx(0.4));
    CHECK(H::derivative(0.7f) == doctest::Approx(0.4));
    CHECK(H::derivative(-1.0f) == doctest::Approx(0.4));
    CHECK(H::derivative(1.01f) == 0.0f);
    CHECK(H::derivative(-5.0f) == 0.0f);
}

TEST_CASE("straight_through is 1 on |x| <= 1") {
    using H = ds::straight_through;
    CHECK(H::derivative(0.0f) == 1.0f);
    CHECK(H::derivative(-1.0f) == 1.0f);
    CHECK(H::derivative(1.0f) == 1.0f);
    CHECK(H::derivative(1.001f) == 0.0f);
    CHECK(H::derivative(-3.0f) == 0.0f);
}

TEST_CASE("sigmoid_surrogate is the derivative of a logistic of steepness K") {
    using H = ds::sigmoid_surrogate<4>;
    CHECK(H::derivative(0.0f) == doctest::Approx(1.0));  // K/4
    const float x = 0.3f;
    const double s = 1.0 / (1.0 + std::exp(-4.0 * x));
    CHECK(H::derivative(x) == doctest::Approx(4.0 * s * (1 - s)));
    CHECK(ds::sigmoid_surrogate<8>::derivative(0.0f) == doctest::Approx(2.0));
    CHECK(ds::sigmoid_surrogate<5, 2>::steepness == 2.5f);
    CHECK(H::derivative(10.0f) < 1e-10f + 1e-6f);
}

TEST_CASE_TEMPLATE("each surrogate's derivative is the derivative of its smooth step", S,
                   DYNSPARSE_SURROGATES, ds::sigmoid_surrogate<12>) {
    const float eps = 1e-3f;
    std::size_t checked = 0;
    for (float x = -1.5f; x <= 1.5f; x += 0.0371f) {
        bool near_kink = false;
        for (float k : {-1.0f, -0.4f, 0.0f, 0.4f, 1.0f}) near_kink |= std::fabs(x - k) < 2 * eps;
        if (near_kink) continue;
        const double numeric =
            (static_cast<double>(S::smooth_step(x + eps)) - S::smooth_step(x - eps)) / (2.0 * eps);
        INFO("x = " << x);
        CHECK(S::derivative(x) == doctest::Approx(numeric).epsilon(2e-2).scale(1.0));
        ++checked;
    }
    CHECK(checked > 60);
    // The smooth step is increasing and centred on the exact step's jump.
    CHECK(S::smooth_step(-0.5f) < S::smooth_step(0.5f));
    CHECK(S::smooth_step(0.0f) == doctest::Approx(0.5));
}
