// CIFAR-scale building blocks: batch norm, dropout, global average pooling, convolutions
// without bias and with grouped / re-unfolded GEMMs, chains and residual blocks (identity
// and masked 1x1 shortcuts), with finite-difference gradient checks; the VGG-16 and
// WRN-16-k model types (shapes at compile time, masked-layer counts, short training runs
// of reduced-width variants).
#include <doctest/doctest.h>

#include <cmath>
#include <numeric>

#include "dynsparse/layers/activations.hpp"
#include "dynsparse/layers/batch_norm.hpp"
#include "dynsparse/layers/conv2d.hpp"
#include "dynsparse/layers/dropout.hpp"
#include "dynsparse/layers/masked_conv2d.hpp"
#include "dynsparse/layers/pooling.hpp"
#include "dynsparse/models/vgg16_cifar.hpp"
#include "dynsparse/models/wide_resnet.hpp"
#include "dynsparse/network/residual.hpp"
#include "dynsparse/train/trainer.hpp"
#include "support/fixtures.hpp"
#include "support/gradient_check.hpp"

namespace ds = dynsparse;
using ds::testing::as_checkable;
using ds::testing::check_gradients;
using ds::testing::random_matrix;

namespace {
/// The fields a part's visit_state hands out, by type: float arrays (running statistics)
/// and integers (reset counts).
struct state_fields {
    std::size_t spans = 0, counts = 0, other = 0;
};
template <class T>
state_fields count_state_fields(T& part) {
    state_fields n;
    part.visit_state([&](std::string_view, auto&& field) {
        using F = std::remove_cvref_t<decltype(field)>;
        if constexpr (std::is_same_v<F, std::span<float>>)
            ++n.spans;
        else if constexpr (std::is_same_v<F, std::size_t>)
            ++n.counts;
        else
            ++n.other;
    });
    return n;
}
}  // namespace

// ------------------------------------------------------------------ compile-time shapes
using vgg = ds::models::vgg16_cifar<>;
static_assert(ds::Network<vgg>);
static_assert(vgg::masked_layer_count() == 15);
static_assert(std::is_same_v<vgg::output_shape, ds::shape<10>>);
static_assert(std::is_same_v<vgg::layer_type<0>::output_shape, ds::shape<64, 32, 32>>);
static_assert(!vgg::layer_type<0>::has_bias);
static_assert(std::is_same_v<vgg::layer_type<6>::output_shape, ds::shape<64, 16, 16>>);   // pool 1
static_assert(std::is_same_v<vgg::layer_type<43>::output_shape, ds::shape<512, 1, 1>>);  // avg pool
static_assert(vgg::layer_count == 49);

using wrn = ds::models::wrn16_8<>;
static_assert(ds::Network<wrn>);
static_assert(wrn::masked_layer_count() == 17);
static_assert(std::is_same_v<wrn::layer_type<1>::output_shape, ds::shape<128, 32, 32>>);
static_assert(std::is_same_v<wrn::layer_type<3>::output_shape, ds::shape<256, 16, 16>>);
static_assert(std::is_same_v<wrn::layer_type<5>::output_shape, ds::shape<512, 8, 8>>);
static_assert(std::is_same_v<wrn::layer_type<9>::output_shape, ds::shape<512>>);

static_assert(std::is_same_v<ds::batch_norm::bind<ds::shape<4, 3, 3>>::output_shape, ds::shape<4, 3, 3>>);
static_assert(ds::batch_norm::bind<ds::shape<4, 3, 3>>::channels == 4);
static_assert(ds::batch_norm::bind<ds::shape<7>>::channels == 7);
static_assert(std::is_same_v<ds::global_avg_pool::bind<ds::shape<5, 3, 2>>::output_shape, ds::shape<5>>);

// Explicit instantiations compile every member.
template class ds::batch_norm_layer<ds::shape<3, 4, 4>>;
template class ds::batch_norm_layer<ds::shape<6>>;
template class ds::dropout_layer<ds::shape<6>, 30>;
template class ds::global_avg_pool_layer<ds::shape<3, 4, 4>>;
template class ds::conv2d_layer<ds::shape<2, 6, 6>, 3, 3, 1, 1, ds::no_bias>;
template class ds::masked_conv2d_layer<ds::shape<2, 6, 6>, 3, 3, 1, 1, ds::long_tailed, ds::per_filter,
                                       ds::no_bias>;

namespace {

/// Restores the convolution tuning when a test changes it.
struct conv_tuning_scope {
    ds::detail::conv_settings saved = ds::detail::conv_tuning();
    ~conv_tuning_scope() { ds::detail::conv_tuning() = saved; }
};

template <class L>
void smooth_and_place(L& layer, ds::rng& gen) {
    layer.initialize(gen);
    ds::testing::place_kink_free_weights(layer, gen);
    layer.set_smooth_forward(true);
}

}  // namespace

// ------------------------------------------------------------------ batch norm
TEST_CASE_TEMPLATE("batch_norm gradients match finite differences (training mode)", Sh,
                   ds::shape<3, 2, 3>, ds::shape<5>) {
    ds::rng gen(11);
    ds::batch_norm::bind<Sh> layer;
    layer.initialize(gen);
    for (auto& g : layer.gamma()) g = gen.uniform(0.5f, 1.5f);
    for (auto& b : layer.beta()) b = gen.uniform(-0.5f, 0.5f);
    ds::matrix y;
    const auto r = check_gradients(as_checkable(layer, y), random_matrix(4, Sh::size, gen), gen,
                                   {.epsilon = 1e-3f, .absolute_tolerance = 3e-3, .relative_tolerance = 3e-2});
    DYNSPARSE_CHECK_GRADIENTS(r);
}

TEST_CASE("batch_norm gradients match finite differences (evaluation mode)") {
    ds::rng gen(12);
    ds::batch_norm::bind<ds::shape<2, 2, 2>> layer;
    layer.initialize(gen);
    for (auto& g : layer.gamma()) g = gen.uniform(0.5f, 1.5f);
    layer.running_mean() = ds::vector({0.3f, -0.2f});
    layer.running_var() = ds::vector({2.0f, 0.5f});
    ds::matrix y;
    ds::testing::checkable c = as_checkable(layer, y);
    c.forward = [&](const ds::matrix& x) -> const ds::matrix& {
        layer.forward(x, y, false);
        return y;
    };
    c.backward = [&](const ds::matrix& x, const ds::matrix& dy) {
        layer.forward(x, y, false);
        ds::matrix dx;
        layer.backward(x, y, dy, &dx);
        return dx;
    };
    DYNSPARSE_CHECK_GRADIENTS(check_gradients(c, random_matrix(3, 8, gen), gen));
}

TEST_CASE("batch_norm: batch statistics in training, running statistics in evaluation") {
    ds::rng gen(3);
    ds::batch_norm::bind<ds::shape<2, 1, 2>> layer;
    layer.initialize(gen);
    // channel 0 holds {1, 3} and {5, 7} (mean 4, biased var 5), channel 1 holds all 2s.
    ds::matrix x = {{1, 3, 2, 2}, {5, 7, 2, 2}};
    ds::matrix y;
    layer.forward(x, y, true);
    const float s = 1.0f / std::sqrt(5.0f + 1e-5f);
    CHECK(y(0, 0) == doctest::Approx(-3 * s));
    CHECK(y(1, 1) == doctest::Approx(3 * s));
    CHECK(y(0, 2) == doctest::Approx(0.0f));
    // running = 0.9 * initial + 0.1 * batch; the variance unbiased (4 values: 5 * 4/3)
    CHECK(layer.running_mean()(0) == doctest::Approx(0.4f));
    CHECK(layer.running_var()(0) == doctest::Approx(0.9f + 0.1f * 20.0f / 3.0f));
    CHECK(layer.running_var()(1) == doctest::Approx(0.9f));
    layer.forward(x, y, false);  // evaluation: (x - 0.4) / sqrt(running var + eps)
    CHECK(y(0, 0) == doctest::Approx((1 - 0.4f) / std::sqrt(0.9f + 2.0f / 3.0f + 1e-5f)));
    CHECK(layer.running_mean()(0) == doctest::Approx(0.4f));  // unchanged by evaluation
    std::vector<std::string> names;
    layer.visit_state([&](std::string_view name, std::span<float> v) {
        names.emplace_back(name);
        CHECK(v.size() == 2);
    });
    CHECK(names == std::vector<std::string>{"running_mean", "running_var"});
    ds::batch_norm::bind<ds::shape<4>> vector_bn;
    const ds::matrix one = {{1, 2, 3, 4}};
    CHECK_THROWS_WITH_AS(vector_bn.forward(one, y, true), doctest::Contains("more than one value"),
                         ds::invalid_argument);
    vector_bn.forward(one, y, false);  // evaluation of a single sample is fine
    CHECK(y(0, 3) == doctest::Approx(4.0f / std::sqrt(1.0f + 1e-5f)));
}

// ------------------------------------------------------------------ dropout, pooling
TEST_CASE("dropout with a fixed mask: gradients match finite differences; evaluation is the identity") {
    ds::rng gen(5);
    ds::dropout<40>::bind<ds::shape<3, 2, 2>> layer;
    layer.initialize(gen);
    ds::matrix x = random_matrix(4, 12, gen), y;
    layer.forward(x, y, true);
    std::size_t dropped = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const float ratio = y.data()[i] / x.data()[i];
        CHECK((ratio == doctest::Approx(0.0f) || ratio == doctest::Approx(1.0f / 0.6f)));
        dropped += ratio == 0.0f;
    }
    CHECK(dropped > 0);
    CHECK(dropped < x.size());
    layer.freeze_mask(true);
    DYNSPARSE_CHECK_GRADIENTS(check_gradients(as_checkable(layer, y), x, gen));
    layer.forward(x, y, false);
    CHECK(y == x);
    CHECK_THROWS_AS(layer.set_rate(1.0f), ds::invalid_argument);
}

TEST_CASE("dropout keeps about 1 - rate of the elements") {
    ds::rng gen(6);
    ds::dropout<30>::bind<ds::shape<1000>> layer;
    layer.initialize(gen);
    ds::matrix x = ds::make_matrix(10, 1000, 1.0f), y;
    layer.forward(x, y, true);
    const double kept = static_cast<double>(std::count_if(y.begin(), y.end(), [](float v) { return v != 0; }));
    CHECK(kept / 10000.0 == doctest::Approx(0.7).epsilon(0.03));
}

TEST_CASE("global_avg_pool: values and gradients") {
    ds::rng gen(7);
    ds::global_avg_pool::bind<ds::shape<3, 2, 3>> layer;
    ds::matrix x = random_matrix(2, 18, gen), y;
    layer.forward(x, y, true);
    CHECK(y(1, 2) == doctest::Approx(std::accumulate(x.data() + 18 + 12, x.data() + 36, 0.0f) / 6.0f));
    DYNSPARSE_CHECK_GRADIENTS(check_gradients(as_checkable(layer, y), x, gen));
}

// ------------------------------------------------------------------ convolutions
TEST_CASE("conv2d without bias has no bias parameter and equals a biased one with bias 0") {
    ds::rng gen(8);
    ds::conv2d<3, 3, 1, 1, ds::no_bias>::bind<ds::shape<2, 5, 5>> plain;
    ds::conv2d<3, 3, 1, 1>::bind<ds::shape<2, 5, 5>> biased;
    plain.initialize(gen);
    biased.weight() = plain.weight();
    biased.bias().fill(0.0f);
    std::vector<std::string> names;
    plain.for_each_parameter([&](const ds::parameter& p) { names.emplace_back(p.name); });
    CHECK(names == std::vector<std::string>{"weight"});
    const ds::matrix x = random_matrix(3, 50, gen);
    ds::matrix y1, y2;
    plain.forward(x, y1, true);
    biased.forward(x, y2, true);
    CHECK(y1 == y2);
    DYNSPARSE_CHECK_GRADIENTS(check_gradients(as_checkable(plain, y1), x, gen));
}

TEST_CASE("convolution: grouped GEMMs and re-unfolding in backward give the per-sample results") {
    conv_tuning_scope restore;
    ds::rng gen(9);
    using layer_t = ds::masked_conv2d<4, 3, 2, 1, ds::long_tailed, ds::per_filter, ds::no_bias>::bind<
        ds::shape<3, 5, 5>>;  // 3x3 output: 9 positions
    layer_t reference, grouped;
    smooth_and_place(reference, gen);
    grouped.weight() = reference.weight();
    grouped.threshold() = reference.threshold();
    grouped.set_smooth_forward(true);
    const ds::matrix x = random_matrix(7, 75, gen), dy = random_matrix(7, 36, gen);
    ds::matrix y1, y2, dx1, dx2;
    ds::detail::conv_tuning() = {.group_columns = 1, .keep_unfolded_bytes = std::size_t{1} << 30};
    reference.forward(x, y1, true);
    reference.backward(x, y1, dy, &dx1);
    // groups of 3 samples (27 columns): 3 + 3 + 1; the unfolded input is not kept
    ds::detail::conv_tuning() = {.group_columns = 27, .keep_unfolded_bytes = 0, .min_groups = 1};
    grouped.forward(x, y2, true);
    grouped.backward(x, y2, dy, &dx2);
    for (std::size_t i = 0; i < y1.size(); ++i) CHECK(y2.data()[i] == doctest::Approx(y1.data()[i]));
    for (std::size_t i = 0; i < dx1.size(); ++i) CHECK(dx2.data()[i] == doctest::Approx(dx1.data()[i]));
    for (std::size_t i = 0; i < reference.weight_gradient().size(); ++i)
        CHECK(grouped.weight_gradient().data()[i] == doctest::Approx(reference.weight_gradient().data()[i]));
    for (std::size_t i = 0; i < reference.threshold_gradient().size(); ++i)
        CHECK(grouped.threshold_gradient()(i) == doctest::Approx(reference.threshold_gradient()(i)));
    // and the grouped path on its own against finite differences, with a bias
    ds::masked_conv2d<2, 3, 1, 1>::bind<ds::shape<2, 2, 2>> small;
    smooth_and_place(small, gen);
    ds::matrix y;
    DYNSPARSE_CHECK_GRADIENTS(check_gradients(as_checkable(small, y), random_matrix(5, 8, gen), gen));
}

// ------------------------------------------------------------------ residual blocks
TEST_CASE("residual with a masked 1x1 shortcut: gradients match finite differences") {
    using S = ds::long_tailed;
    using G = ds::per_filter;
    using block = ds::residual<ds::chain<ds::masked_conv2d<3, 3, 2, 1, S, G, ds::no_bias>, ds::batch_norm,
                                         ds::tanh, ds::masked_conv2d<3, 3, 1, 1, S, G, ds::no_bias>>,
                               ds::masked_conv2d<3, 1, 2, 0, S, G, ds::no_bias>>;
    using layer_t = block::bind<ds::shape<2, 4, 4>>;
    static_assert(std::is_same_v<layer_t::output_shape, ds::shape<3, 2, 2>>);
    static_assert(layer_t::masked_layer_count() == 3);
    ds::rng gen(10);
    layer_t layer;
    layer.initialize(gen);
    smooth_and_place(layer.body().get<0>(), gen);
    smooth_and_place(layer.body().get<3>(), gen);
    smooth_and_place(layer.shortcut(), gen);
    std::size_t masked = 0;
    layer.for_each_masked_layer([&](auto&, std::size_t) { ++masked; });
    CHECK(masked == 3);
    ds::matrix y;
    const auto r = check_gradients(as_checkable(layer, y), random_matrix(4, 32, gen), gen,
                                   {.epsilon = 1e-2f, .absolute_tolerance = 4e-3, .relative_tolerance = 3e-2});
    DYNSPARSE_CHECK_GRADIENTS(r);
}

TEST_CASE("residual with identity shortcut inside a chain: gradients and output") {
    using block = ds::chain<ds::batch_norm, ds::tanh,
                            ds::residual<ds::chain<ds::conv2d<2, 3, 1, 1, ds::no_bias>, ds::tanh>>>;
    using layer_t = block::bind<ds::shape<2, 3, 3>>;
    ds::rng gen(13);
    layer_t layer;
    layer.initialize(gen);
    const ds::matrix x = random_matrix(3, 18, gen);
    ds::matrix y;
    layer.forward(x, y, true);
    // the residual's output is its input (the chain's second output) plus the body's
    auto& res = layer.layers().get<2>();
    const ds::matrix& pre = layer.layers().output_of(1);
    const ds::matrix& body = res.body().output_of(1);
    for (std::size_t i = 0; i < y.size(); ++i)
        CHECK(y.data()[i] == doctest::Approx(pre.data()[i] + body.data()[i]));
    CHECK(count_state_fields(layer).spans == 2);
    DYNSPARSE_CHECK_GRADIENTS(check_gradients(as_checkable(layer, y), x, gen,
                                              {.epsilon = 1e-3f, .absolute_tolerance = 3e-3, .relative_tolerance = 3e-2}));
}

// ------------------------------------------------------------------ models
namespace {

/// A fixed batch of CIFAR-shaped inputs: trains `net` on it for `steps` SGD steps and
/// returns the training-mode loss before and after.
template <class Net>
std::pair<double, double> overfit(Net& net, std::size_t steps, float lr) {
    ds::dataset d;
    d.classes = 10;
    ds::rng gen(21);
    d.images = random_matrix(8, 3072, gen);
    for (std::size_t i = 0; i < 8; ++i) d.labels.push_back(static_cast<std::uint8_t>(i % 4));
    ds::train_config cfg;
    cfg.epochs = 1;
    cfg.batch_size = 8;
    cfg.alpha = 5e-6f;
    cfg.progress = false;
    ds::trainer<Net> tr(net, {}, ds::sgd({.momentum = 0.9f, .weight_decay = 1e-4f, .decay_thresholds = true}),
                        cfg);
    ds::matrix x = d.images;
    std::vector<std::uint8_t> y = d.labels;
    const double first = tr.step(x, y, lr);
    double last = first;
    for (std::size_t s = 1; s < steps; ++s) last = tr.step(x, y, lr);
    const auto ev = tr.evaluate(d);
    CHECK(std::isfinite(ev.loss));
    return {first, last};
}

}  // namespace

TEST_CASE("VGG-16 (widths / 16) learns a fixed batch; its masked layers report") {
    ds::models::vgg16_cifar<ds::long_tailed, ds::per_filter, ds::per_neuron, 16> net;
    net.initialize(1);
    const auto [first, last] = overfit(net, 12, 0.05f);
    CHECK(last < first);
    const auto layers = ds::sparsity_report(net);
    CHECK(layers.size() == 15);
    CHECK(layers.front().stats.total == 4 * 27);
}

TEST_CASE("WRN-16-1 learns a fixed batch; 17 masked layers, running statistics visited") {
    ds::models::wide_resnet_16<1> net;
    net.initialize(1);
    const auto [first, last] = overfit(net, 12, 0.05f);
    CHECK(last < first);
    CHECK(ds::sparsity_report(net).size() == 17);
    const auto fields = count_state_fields(net);
    CHECK(fields.spans == 2 * 13);  // two batch norms per block (6 blocks) and one before the pool
    CHECK(fields.counts == 17);     // every masked layer's reset count, inside the blocks too
}
