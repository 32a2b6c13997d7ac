// dense, activations, reshape and flatten: finite-difference gradient checks and shapes.
#include <doctest/doctest.h>

#include "dynsparse/layers/activations.hpp"
#include "dynsparse/layers/dense.hpp"
#include "dynsparse/layers/reshape.hpp"
#include "support/gradient_check.hpp"

namespace ds = dynsparse;
using ds::testing::as_checkable;
using ds::testing::check_gradients;
using ds::testing::random_matrix;

static_assert(ds::Layer<ds::dense_layer<5, 3>>);
static_assert(!ds::MaskedLayer<ds::dense_layer<5, 3>>);
static_assert(ds::Layer<ds::relu::bind<ds::shape<7>>>);
static_assert(std::is_same_v<ds::flatten::bind<ds::shape<2, 3, 4>>::output_shape, ds::shape<24>>);
static_assert(std::is_same_v<ds::reshape<28, 28>::bind<ds::shape<784>>::output_shape, ds::shape<28, 28>>);
static_assert(std::is_same_v<ds::dense<10>::bind<ds::shape<784>>, ds::dense_layer<784, 10>>);

TEST_CASE("dense gradients match finite differences") {
    ds::rng gen(1);
    ds::dense_layer<6, 4> layer;
    layer.initialize(gen);
    ds::matrix y;
    const auto r = check_gradients(as_checkable(layer, y), random_matrix(3, 6, gen), gen,
                                   {.epsilon = 1e-2f, .absolute_tolerance = 1e-3, .relative_tolerance = 1e-2});
    DYNSPARSE_CHECK_GRADIENTS(r);
    CHECK(r.checked == 18 + 24 + 4);
}

TEST_CASE("dense forward is x W^T + b") {
    ds::rng gen(2);
    ds::dense_layer<3, 2> layer;
    layer.initialize(gen);
    ds::matrix x = random_matrix(4, 3, gen), y;
    layer.forward(x, y, false);
    REQUIRE(y.shape(0) == 4);
    REQUIRE(y.shape(1) == 2);
    for (std::size_t r = 0; r < 4; ++r)
        for (std::size_t o = 0; o < 2; ++o) {
            double e = layer.bias()(o);
            for (std::size_t j = 0; j < 3; ++j) e += x(r, j) * layer.weight()(o, j);
            CHECK(y(r, o) == doctest::Approx(e).epsilon(1e-5));
        }
}

TEST_CASE_TEMPLATE("activation gradients match finite differences", A, ds::relu, ds::tanh, ds::sigmoid) {
    ds::rng gen(3);
    typename A::template bind<ds::shape<5>> layer;
    ds::matrix x = random_matrix(4, 5, gen);
    for (auto& v : x)  // keep relu's kink out of the differences
        if (std::fabs(v) < 0.05f) v = 0.3f;
    ds::matrix y;
    const auto r = check_gradients(as_checkable(layer, y), x, gen,
                                   {.epsilon = 1e-2f, .absolute_tolerance = 1e-3, .relative_tolerance = 1e-2});
    DYNSPARSE_CHECK_GRADIENTS(r);
    CHECK(r.checked == 20);
}

TEST_CASE("activation values") {
    ds::relu::bind<ds::shape<3>> relu;
    ds::tanh::bind<ds::shape<3>> tanh;
    ds::sigmoid::bind<ds::shape<3>> sigmoid;
    ds::matrix x({1, 3}), y;
    x(0, 0) = -1.0f;
    x(0, 1) = 0.0f;
    x(0, 2) = 2.0f;
    relu.forward(x, y, false);
    CHECK(y(0, 0) == 0.0f);
    CHECK(y(0, 2) == 2.0f);
    tanh.forward(x, y, false);
    CHECK(y(0, 2) == doctest::Approx(std::tanh(2.0)));
    sigmoid.forward(x, y, false);
    CHECK(y(0, 1) == doctest::Approx(0.5));
    CHECK(y(0, 0) == doctest::Approx(1.0 / (1.0 + std::exp(1.0))));
}

TEST_CASE("reshape and flatten pass data and gradients through unchanged") {
    ds::rng gen(4);
    ds::flatten::bind<ds::shape<2, 3>> flat;
    ds::matrix x = random_matrix(2, 6, gen), y;
    const auto r = check_gradients(as_checkable(flat, y), x, gen);
    DYNSPARSE_CHECK_GRADIENTS(r);
    flat.forward(x, y, false);
    for (std::size_t i = 0; i < x.size(); ++i) CHECK(y.data()[i] == x.data()[i]);
}
