// sequential: compile-time shapes, layer visiting, and back-propagation through a whole
// network checked by finite differences.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "dynsparse/layers/activations.hpp"
#include "dynsparse/layers/batch_norm.hpp"
#include "dynsparse/layers/dense.hpp"
#include "dynsparse/layers/dropout.hpp"
#include "dynsparse/layers/masked_dense.hpp"
#include "dynsparse/layers/reshape.hpp"
#include "dynsparse/network/masked_layer_view.hpp"
#include "dynsparse/network/sequential.hpp"
#include "dynsparse/optim/optimizer.hpp"
#include "dynsparse/optim/update.hpp"
#include "support/fixtures.hpp"
#include "support/gradient_check.hpp"

namespace ds = dynsparse;

struct lenet_300_100 : ds::sequential<ds::input<784>, ds::masked_dense<300>, ds::relu,
                                      ds::masked_dense<100>, ds::relu, ds::masked_dense<10>> {};

static_assert(ds::Network<lenet_300_100>);
static_assert(lenet_300_100::layer_count == 5);
static_assert(lenet_300_100::masked_layer_count() == 3);
static_assert(std::is_same_v<lenet_300_100::input_shape, ds::shape<784>>);
static_assert(std::is_same_v<lenet_300_100::output_shape, ds::shape<10>>);
static_assert(std::is_same_v<lenet_300_100::layer_type<2>,
                             ds::masked_dense_layer<300, 100, ds::long_tailed, ds::per_neuron>>);

// Shapes propagate through reshape and flatten.
struct reshaped : ds::sequential<ds::input<784>, ds::reshape<28, 28>, ds::tanh, ds::flatten,
                                 ds::dense<10>> {};
static_assert(std::is_same_v<reshaped::layer_type<0>::output_shape, ds::shape<28, 28>>);
static_assert(std::is_same_v<reshaped::layer_type<2>::output_shape, ds::shape<784>>);
static_assert(reshaped::masked_layer_count() == 0);

using small_net = ds::sequential<ds::input<6>, ds::masked_dense<5, ds::long_tailed, ds::per_neuron>,
                                 ds::tanh, ds::masked_dense<4, ds::straight_through, ds::scalar>,
                                 ds::sigmoid, ds::dense<3>>;

TEST_CASE("sequential back-propagates through every layer (finite differences)") {
    ds::rng gen(9);
    small_net net;
    net.initialize(5);
    // Smooth masks and non-zero thresholds so every path, thresholds included, is exercised.
    net.for_each_masked_layer([&](auto& layer, std::size_t) {
        layer.set_reset_rule(false);
        layer.set_smooth_forward(true);
        for (auto& t : layer.thresholds()) t = 0.05f;
    });
    ds::testing::checkable c;
    c.forward = [&](const ds::matrix& x) -> const ds::matrix& { return net.forward(x, true); };
    c.backward = [&](const ds::matrix& x, const ds::matrix& dy) {
        net.forward(x, true);
        net.backward(dy);
        return ds::matrix{};  // the first layer's input gradient is not computed
    };
    c.params = [&] {
        std::vector<ds::parameter> ps;
        net.for_each_parameter([&](const ds::parameter& p) { ps.push_back(p); });
        return ps;
    };
    const auto r = ds::testing::check_gradients(c, ds::testing::random_matrix(4, 6, gen), gen,
                                                {.epsilon = 5e-3f, .absolute_tolerance = 1e-3,
                                                 .relative_tolerance = 3e-2});
    DYNSPARSE_CHECK_GRADIENTS(r);
    // weights + biases + thresholds: (30+5+5) + (20+4+1) + (12+3)
    CHECK(r.checked == 40 + 25 + 15);
}

TEST_CASE("for_each_layer, for_each_masked_layer and get") {
    lenet_300_100 net;
    net.initialize(1);
    std::vector<std::size_t> all, masked;
    net.for_each_layer([&](auto&, std::size_t i) { all.push_back(i); });
    net.for_each_masked_layer([&](auto&, std::size_t i) { masked.push_back(i); });
    CHECK(all == std::vector<std::size_t>{0, 1, 2, 3, 4});
    CHECK(masked == std::vector<std::size_t>{0, 2, 4});
    CHECK(net.get<2>().weight().shape(0) == 100);
    CHECK(net.get<2>().weight().shape(1) == 300);
    std::size_t params = 0;
    net.for_each_parameter([&](const ds::parameter& p) { params += p.value.size(); });
    CHECK(params == (784 * 300 + 300 + 300) + (300 * 100 + 100 + 100) + (100 * 10 + 10 + 10));
    CHECK(lenet_300_100::describe().find("[4] masked_dense<10, long_tailed, per_neuron> -> (10)") !=
          std::string::npos);
}

TEST_CASE("describe() lists every layer with its output shape, in order") {
    const std::string d = reshaped::describe();
    CHECK(d == "  [0] reshape<28, 28> -> (28,28)\n  [1] tanh -> (28,28)\n  [2] reshape<784> -> (784)\n"
               "  [3] dense<10> -> (10)\n");
    CHECK(small_net::describe_inline() ==
          "masked_dense<5, long_tailed, per_neuron>, tanh, masked_dense<4, straight_through, scalar>, "
          "sigmoid, dense<3>");
}

TEST_CASE("masked_layers gives views that read and toggle each masked layer") {
    small_net net;
    net.initialize(3);
    const auto views = ds::masked_layers(net);
    REQUIRE(views.size() == 2);
    CHECK(views[0].index() == 0);
    CHECK(views[1].index() == 2);
    CHECK(views[0].name() == "masked_dense<5, long_tailed, per_neuron>");
    CHECK(views[1].name() == "masked_dense<4, straight_through, scalar>");

    // Statistics and masked weights are the layers' own, after a forward pass that prunes.
    for (auto& t : net.get<0>().thresholds()) t = 0.2f;
    ds::rng gen(4);
    net.forward(ds::testing::random_matrix(3, 6, gen), false);
    const ds::mask_statistics s0 = views[0].statistics(), l0 = net.get<0>().statistics();
    CHECK(s0.kept == l0.kept);
    CHECK(s0.kept < s0.total);
    CHECK(s0.total == 30);
    CHECK(s0.threshold_mean == doctest::Approx(0.2));
    const auto& wm = net.get<0>().masked_weight();
    REQUIRE(views[0].masked_weight().size() == wm.size());
    CHECK(std::equal(wm.begin(), wm.end(), views[0].masked_weight().begin()));
    const ds::mask_totals t = ds::totals(views);
    CHECK(t.kept == s0.kept + net.get<2>().statistics().kept);
    CHECK(t.total == 30 + 20);

    CHECK(net.get<2>().reset_rule());
    views[1].set_reset_rule(false);
    CHECK_FALSE(net.get<2>().reset_rule());
    CHECK(net.get<0>().reset_rule());

    // A mask made by an optimizer step is used by the next forward as it is; after
    // invalidate_mask that forward recomputes it from thresholds written in between.
    views[0].set_reset_rule(false);
    std::vector<ds::parameter> params;
    net.for_each_parameter([&](const ds::parameter& p) { params.push_back(p); });
    const std::span<float> thresholds = net.get<0>().thresholds();
    std::fill(thresholds.begin(), thresholds.end(), 0.0f);
    const ds::matrix x = ds::testing::random_matrix(3, 6, gen);
    ds::sgd opt(ds::sgd::options{});
    ds::update_pass pass(net);
    for (const bool invalidate : {false, true}) {
        CAPTURE(invalidate);
        std::fill(thresholds.begin(), thresholds.end(), 0.0f);
        net.forward(x, false);
        pass.run(opt, 0.0f, 0.0f);  // lr 0: W unchanged, the step's mask is made
        std::fill(thresholds.begin(), thresholds.end(), 5.0f);  // behind the layer's back
        if (invalidate) views[0].invalidate_mask();
        net.forward(x, false);
        CHECK(views[0].statistics().kept == (invalidate ? 0u : 30u));
    }
}

TEST_CASE("initialisation is deterministic for a seed and differs between seeds") {
    lenet_300_100 a, b, c;
    a.initialize(7);
    b.initialize(7);
    c.initialize(8);
    CHECK(a.get<0>().weight() == b.get<0>().weight());
    CHECK(a.get<4>().bias() == b.get<4>().bias());
    CHECK(a.get<0>().weight() != c.get<0>().weight());
}

TEST_CASE("forward rejects a batch of the wrong width with a message naming both sizes") {
    lenet_300_100 net;
    net.initialize(1);
    ds::matrix x({2, 100});
    CHECK_THROWS_WITH_AS(net.forward(x, false), doctest::Contains("expected a batch x 784 input, got 2 x 100"),
                         ds::invalid_argument);
}

namespace {

struct predict_net : ds::sequential<ds::input<6>, ds::masked_dense<8>, ds::batch_norm, ds::relu, ds::dropout<30>,
                                    ds::masked_dense<3>> {};

/// Everything of a network a user can read: parameters, the layers' state fields (batch
/// norm's running statistics, reset counts), mask statistics and every layer's last output.
template <class Net>
std::vector<float> observable(Net& net) {
    std::vector<float> out;
    net.for_each_parameter([&](const ds::parameter& p) { out.insert(out.end(), p.value.begin(), p.value.end()); });
    net.visit_state([&](std::string_view, auto&& field) {
        using F = std::remove_cvref_t<decltype(field)>;
        if constexpr (std::is_same_v<F, std::span<float>>)
            out.insert(out.end(), field.begin(), field.end());
        else if constexpr (std::is_arithmetic_v<F>)
            out.push_back(static_cast<float>(field));
    });
    for (const auto& v : ds::masked_layers(net)) out.push_back(static_cast<float>(v.statistics().kept));
    for (std::size_t i = 0; i < Net::layer_count; ++i)
        out.insert(out.end(), net.output_of(i).begin(), net.output_of(i).end());
    return out;
}

ds::matrix ramp(std::size_t rows, std::size_t cols) {
    ds::matrix x = ds::make_matrix(rows, cols);
    for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = std::sin(0.7f * static_cast<float>(i));
    return x;
}

}  // namespace

TEST_CASE("predict and predict_proba are const and agree with forward in evaluation mode") {
    predict_net net;
    net.initialize(3);
    const ds::matrix x = ramp(5, 6);
    net.forward(x, true);  // batch norm's running statistics move, dropout draws
    const std::vector<float> before = observable(net);

    const predict_net& c = net;
    const ds::matrix p = c.predict_proba(x);
    const std::vector<std::size_t> k = c.predict(x);
    CHECK(observable(net) == before);  // output_of, running statistics, masks: untouched

    const ds::matrix logits = net.forward(x, false);
    REQUIRE(p.shape(0) == 5);
    REQUIRE(p.shape(1) == 3);
    REQUIRE(k.size() == 5);
    for (std::size_t r = 0; r < 5; ++r) {
        CAPTURE(r);
        const float* z = logits.data() + r * 3;
        CHECK(k[r] == static_cast<std::size_t>(std::max_element(z, z + 3) - z));
        double sum = 0;
        for (std::size_t j = 0; j < 3; ++j) {
            sum += p(r, j);
            CHECK(p(r, j) == doctest::Approx(std::exp(z[j] - z[k[r]]) * p(r, k[r])).epsilon(1e-5));
        }
        CHECK(sum == doctest::Approx(1.0).epsilon(1e-6));
        const std::span<const float> sample(x.data() + r * 6, 6);
        CHECK(c.predict(sample) == k[r]);
        const std::vector<float> one = c.predict_proba(sample);
        REQUIRE(one.size() == 3);
        for (std::size_t j = 0; j < 3; ++j) CHECK(one[j] == doctest::Approx(p(r, j)).epsilon(1e-6));
    }
}

TEST_CASE("predict between an update and the next forward leaves training unchanged") {
    auto run = [](bool predict) {
        ds::testing::tiny_dst net;
        net.initialize(9);
        ds::sgd opt({.momentum = 0.9f});
        ds::update_pass pass(net);
        const ds::matrix x = ramp(4, 8);
        ds::matrix dy = ds::make_matrix(4, 3, 0.1f);
        for (int step = 0; step < 3; ++step) {
            net.forward(x, true);
            ds::defer_surrogate_backward(net);
            net.backward(dy);
            pass.run(opt, 0.1f, 1e-3f);  // makes the next forward's mask
            if (predict) (void)std::as_const(net).predict(x);
        }
        net.forward(x, true);
        return observable(net);
    };
    CHECK(run(true) == run(false));
}

TEST_CASE("predict rejects a sample or batch of the wrong width") {
    predict_net net;
    net.initialize(1);
    const std::vector<float> sample(5, 0.0f);
    CHECK_THROWS_WITH_AS(net.predict(sample), doctest::Contains("a sample of 5 values, the network's input takes 6"),
                         ds::invalid_argument);
    CHECK_THROWS_WITH_AS(net.predict(ramp(2, 4)), doctest::Contains("infer: expected a batch x 6 input, got 2 x 4"),
                         ds::invalid_argument);
}
