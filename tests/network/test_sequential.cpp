// sequential: compile-time shapes, layer visiting, and back-propagation through a whole
// network checked by finite differences.
#include <doctest/doctest.h>

#include <algorithm>
#include <span>
#include <vector>

#include "dynsparse/layers/activations.hpp"
#include "dynsparse/layers/dense.hpp"
#include "dynsparse/layers/masked_dense.hpp"
#include "dynsparse/layers/reshape.hpp"
#include "dynsparse/network/masked_layer_view.hpp"
#include "dynsparse/network/sequential.hpp"
#include "dynsparse/optim/optimizer.hpp"
#include "dynsparse/optim/update.hpp"
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
