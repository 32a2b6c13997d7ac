// Recurrent layers: compile-time sequence shapes, lstm's forward against a direct
// implementation of the equations, finite-difference checks through time of lstm,
// masked_lstm (every surrogate x {per_neuron, scalar, per_weight}) and last_step, the
// per-gate-matrix thresholds and masks, a stacked network, and a short learning run.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "dynsparse/layers/dense.hpp"
#include "dynsparse/layers/lstm.hpp"
#include "dynsparse/layers/masked_dense.hpp"
#include "dynsparse/layers/masked_lstm.hpp"
#include "dynsparse/layers/product_mode.hpp"
#include "dynsparse/layers/reshape.hpp"
#include "dynsparse/network/sequential.hpp"
#include "dynsparse/optim/optimizer.hpp"
#include "dynsparse/train/trainer.hpp"
#include "support/fixtures.hpp"
#include "support/gradient_check.hpp"
#include "support/kept_products.hpp"
#include "support/policy_lists.hpp"

namespace ds = dynsparse;
using ds::testing::as_checkable;
using ds::testing::check_gradients;

// ------------------------------------------------------------------ compile-time shapes
struct lstm_a : ds::sequential<ds::sequence_input<28, 28>, ds::masked_lstm<128>, ds::masked_lstm<128>,
                               ds::last_step, ds::dense<10>> {};
static_assert(ds::Network<lstm_a>);
static_assert(lstm_a::masked_layer_count() == 2);
static_assert(std::is_same_v<lstm_a::input_shape, ds::sequence<28, 28>>);
static_assert(std::is_same_v<lstm_a::layer_type<0>::output_shape, ds::sequence<28, 128>>);
static_assert(std::is_same_v<lstm_a::layer_type<1>::input_shape, ds::sequence<28, 128>>);
static_assert(std::is_same_v<lstm_a::layer_type<2>::output_shape, ds::shape<128>>);
static_assert(std::is_same_v<lstm_a::layer_type<3>, ds::dense_layer<128, 10>>);
static_assert(lstm_a::input_shape::size == 784);
// Eight gate matrices, each with one threshold per hidden unit.
static_assert(lstm_a::layer_type<0>::threshold_count == 8 * 128);
static_assert(ds::MaskedLayer<lstm_a::layer_type<0>>);
static_assert(ds::Layer<ds::lstm<16>::bind<ds::sequence<5, 3>>>);
static_assert(!ds::MaskedLayer<ds::lstm<16>::bind<ds::sequence<5, 3>>>);
static_assert(ds::masked_lstm<4, ds::long_tailed, ds::scalar>::bind<ds::sequence<5, 3>>::threshold_count == 8);
static_assert(ds::masked_lstm<4, ds::long_tailed, ds::per_weight>::bind<ds::sequence<5, 3>>::threshold_count ==
              4 * 4 * 3 + 4 * 4 * 4);
// A masked head is a choice too, and flatten reads a whole sequence.
struct lstm_masked_head : ds::sequential<ds::sequence_input<6, 2>, ds::lstm<3>, ds::last_step,
                                         ds::masked_dense<4>> {};
static_assert(lstm_masked_head::masked_layer_count() == 1);
static_assert(std::is_same_v<ds::flatten::bind<ds::sequence<6, 3>>::output_shape, ds::shape<18>>);

namespace {

constexpr std::size_t T = 3, F = 3, H = 4, B = 2;

double logistic(double x) { return 1.0 / (1.0 + std::exp(-x)); }

/// The LSTM equations written out in double, one sample and step at a time.
ds::matrix reference_lstm(const ds::matrix& x, const ds::matrix& w, const ds::vector& b) {
    ds::matrix y = ds::make_matrix(B, T * H);
    for (std::size_t s = 0; s < B; ++s) {
        std::vector<double> h(H, 0.0), c(H, 0.0);
        for (std::size_t t = 0; t < T; ++t) {
            std::vector<double> z(4 * H);
            for (std::size_t r = 0; r < 4 * H; ++r) {
                double v = b(r);
                for (std::size_t j = 0; j < F; ++j) v += w(r, j) * x(s, t * F + j);
                for (std::size_t j = 0; j < H; ++j) v += w(r, F + j) * h[j];
                z[r] = v;
            }
            for (std::size_t j = 0; j < H; ++j) {
                const double i = logistic(z[j]), f = logistic(z[H + j]), g = std::tanh(z[2 * H + j]),
                             o = logistic(z[3 * H + j]);
                c[j] = f * c[j] + i * g;
                h[j] = o * std::tanh(c[j]);
                y(s, t * H + j) = static_cast<float>(h[j]);
            }
        }
    }
    return y;
}

}  // namespace

TEST_CASE("lstm forward computes the LSTM equations (gates i, f, g, o)") {
    ds::rng gen(3);
    ds::lstm_layer<T, F, H> layer;
    layer.initialize(gen);
    for (auto& w : layer.weight()) w *= 3.0f;  // larger pre-activations: saturating gates too
    const ds::matrix x = ds::testing::random_matrix(B, T * F, gen, -2, 2);
    ds::matrix y;
    layer.forward(x, y, true);
    const ds::matrix expect = reference_lstm(x, layer.weight(), layer.bias());
    REQUIRE(y.shape(0) == B);
    REQUIRE(y.shape(1) == T * H);
    for (std::size_t k = 0; k < y.size(); ++k)
        CHECK(y.data()[k] == doctest::Approx(expect.data()[k]).epsilon(1e-5).scale(1e-6));
}

TEST_CASE("lstm initialisation follows nn.LSTM: U(-1/sqrt(H), 1/sqrt(H)), bias b_ih + b_hh") {
    ds::rng gen(5);
    ds::lstm_layer<2, 7, 16> layer;
    layer.initialize(gen);
    float lo = 1, hi = -1;
    for (float w : layer.weight()) lo = std::min(lo, w), hi = std::max(hi, w);
    CHECK(lo >= -0.25f);
    CHECK(hi <= 0.25f);
    CHECK(lo < -0.2f);  // bound 1/sqrt(16), not 1/sqrt(fan_in = 23)
    CHECK(hi > 0.2f);
    float blo = 1, bhi = -1;
    for (float b : layer.bias()) blo = std::min(blo, b), bhi = std::max(bhi, b);
    CHECK(blo >= -0.5f);
    CHECK(bhi <= 0.5f);
}

TEST_CASE("lstm gradients through time match finite differences (inputs, weights, biases)") {
    ds::rng gen(7);
    ds::lstm_layer<T, F, H> layer;
    layer.initialize(gen);
    for (auto& w : layer.weight()) w *= 2.0f;
    ds::matrix y;
    const auto r = check_gradients(as_checkable(layer, y), ds::testing::random_matrix(B, T * F, gen), gen,
                                   {.epsilon = 1e-2f, .absolute_tolerance = 1e-3, .relative_tolerance = 1e-2});
    DYNSPARSE_CHECK_GRADIENTS(r);
    CHECK(r.checked == B * T * F + 4 * H * (F + H) + 4 * H);
}

TEST_CASE_TEMPLATE("masked_lstm gradients through time match finite differences of the smoothed forward",
                   C, DYNSPARSE_MATRIX_COMBOS) {
    using L = ds::masked_lstm_layer<T, F, H, typename C::surrogate, typename C::granularity>;
    static_assert(ds::MaskedLayer<L>);
    ds::rng gen(11);
    L layer;
    const auto r = ds::testing::check_masked_layer(layer, ds::testing::random_matrix(B, T * F, gen), gen,
                                                   {.epsilon = 5e-3f, .absolute_tolerance = 2e-3,
                                                    .relative_tolerance = 2e-2});
    DYNSPARSE_CHECK_GRADIENTS(r);
    // inputs + weights + biases + thresholds
    CHECK(r.checked == B * T * F + 4 * H * (F + H) + 4 * H + L::threshold_count);
}

TEST_CASE_TEMPLATE("masked_lstm gradients through time match finite differences with the kept-weight products",
                   C, DYNSPARSE_MATRIX_COMBOS) {
    using L = ds::masked_lstm_layer<T, F, H, typename C::surrogate, typename C::granularity>;
    ds::rng gen(12);
    L layer;
    layer.set_product_mode(ds::product_mode::kept_weights);
    const auto r = ds::testing::check_masked_layer(layer, ds::testing::random_matrix(B, T * F, gen), gen,
                                                   {.epsilon = 5e-3f, .absolute_tolerance = 2e-3,
                                                    .relative_tolerance = 2e-2});
    DYNSPARSE_CHECK_GRADIENTS(r);
    CHECK(layer.used_kept_weights());
}

TEST_CASE("masked_lstm kept-weight products equal the dense products; dL/dW within rounding") {
    // Batches of 3 and 40 (a 32-sample block plus a partial one); thresholds from all kept
    // to a few kept. dL/dW is dense GEMMs in both modes, of dz that went through the
    // recurrence: equal to rounding, not to the bit.
    using L = ds::masked_lstm_layer<5, 7, 6, ds::long_tailed, ds::per_neuron>;
    for (const float t : {0.0f, 0.2f, 0.35f})
        for (const std::size_t batch : {std::size_t{3}, std::size_t{40}}) {
            CAPTURE(t);
            ds::testing::check_kept_products_match_dense<L>(ds::testing::thresholds_at(t), batch,
                                                            ds::testing::weight_gradients::to_rounding);
        }
}

TEST_CASE("masked_lstm: each gate matrix has its own thresholds and mask; forward uses W * M") {
    using L = ds::masked_lstm_layer<T, F, H, ds::long_tailed, ds::per_neuron>;
    static_assert(L::threshold_count == 8 * H);
    ds::rng gen(13);
    L layer;
    layer.set_reset_rule(false);
    layer.initialize(gen);
    // Threshold k of W_ih is k, of W_hh 4H + k (row k of [W_ih | W_hh]).
    using TG = typename L::granularity;
    CHECK(TG::index(5, 0, F + H) == 5);
    CHECK(TG::index(5, F - 1, F + H) == 5);
    CHECK(TG::index(5, F, F + H) == 4 * H + 5);
    CHECK(TG::index(4 * H - 1, F + H - 1, F + H) == 8 * H - 1);
    // Prune the whole recurrent matrix of the forget gate and nothing else.
    auto& t = layer.threshold();
    for (std::size_t k = 0; k < H; ++k) t(4 * H + H + k) = 10.0f;
    layer.update_mask();
    const auto kept = layer.gate_matrix_kept();
    for (std::size_t m = 0; m < 8; ++m) CHECK(kept[m] == (m == 5 ? 0 : H * (m < 4 ? F : H)));
    CHECK(layer.statistics().kept == 4 * H * (F + H) - H * H);
    CHECK(layer.statistics().total == 4 * H * (F + H));

    // The forward pass is an LSTM on the masked weights.
    ds::lstm_layer<T, F, H> plain;
    plain.weight() = layer.masked_weight();
    plain.bias() = layer.bias();
    const ds::matrix x = ds::testing::random_matrix(B, T * F, gen);
    ds::matrix y_masked, y_plain;
    layer.forward(x, y_masked, true);
    plain.forward(x, y_plain, true);
    for (std::size_t k = 0; k < y_plain.size(); ++k) CHECK(y_masked.data()[k] == y_plain.data()[k]);

    // scalar: one threshold per gate matrix (8), laid out the same way.
    using LS = ds::masked_lstm_layer<T, F, H, ds::long_tailed, ds::scalar>::granularity;
    CHECK(LS::index(H + 1, 0, F + H) == 1);
    CHECK(LS::index(H + 1, F + 2, F + H) == 5);
}

TEST_CASE("masked_lstm exact backward: dL/dWm through time, then the DST weight and threshold gradients") {
    using L = ds::masked_lstm_layer<T, F, H, ds::long_tailed, ds::per_neuron>;
    ds::rng gen(17);
    L layer;
    layer.set_reset_rule(false);
    layer.initialize(gen);
    for (auto& t : layer.threshold()) t = gen.uniform(0.0f, 0.3f);
    const ds::matrix x = ds::testing::random_matrix(B, T * F, gen);
    const ds::matrix dy = ds::testing::random_matrix(B, T * H, gen);
    ds::matrix y, dx;
    layer.forward(x, y, true);
    layer.backward(x, y, dy, &dx);
    // dL/dWm from the plain LSTM on Wm.
    ds::lstm_layer<T, F, H> plain;
    plain.weight() = layer.masked_weight();
    plain.bias() = layer.bias();
    ds::matrix yp, dxp;
    plain.forward(x, yp, true);
    plain.backward(x, yp, dy, &dxp);
    for (std::size_t k = 0; k < dx.size(); ++k) CHECK(dx.data()[k] == doctest::Approx(dxp.data()[k]));
    std::vector<double> expect_t(L::threshold_count, 0.0);
    for (std::size_t i = 0; i < 4 * H; ++i)
        for (std::size_t j = 0; j < F + H; ++j) {
            const double g = plain.weight_gradient()(i, j);
            const float w = layer.weight()(i, j);
            const std::size_t k = L::granularity::index(i, j, F + H);
            const float q = std::fabs(w) - layer.threshold()(k);
            const double h = ds::long_tailed::derivative(q);
            const double expect_w = g * (q > 0 ? 1.0 : 0.0) + g * std::fabs(w) * h;
            CHECK(layer.weight_gradient()(i, j) == doctest::Approx(expect_w).epsilon(1e-4).scale(1e-5));
            expect_t[k] -= g * w * h;
        }
    for (std::size_t k = 0; k < L::threshold_count; ++k)
        CHECK(layer.threshold_gradient()(k) == doctest::Approx(expect_t[k]).epsilon(1e-4).scale(1e-5));
    for (std::size_t k = 0; k < 4 * H; ++k)
        CHECK(layer.bias_gradient()(k) == doctest::Approx(plain.bias_gradient()(k)));
}

TEST_CASE("last_step keeps the last time step; its gradient goes to that step only") {
    ds::last_step::bind<ds::sequence<3, 2>> layer;
    ds::matrix x({2, 6});
    for (std::size_t k = 0; k < x.size(); ++k) x.data()[k] = static_cast<float>(k);
    ds::matrix y, dx;
    layer.forward(x, y, true);
    REQUIRE(y.shape(1) == 2);
    CHECK(y(0, 0) == 4.0f);
    CHECK(y(0, 1) == 5.0f);
    CHECK(y(1, 0) == 10.0f);
    CHECK(y(1, 1) == 11.0f);
    ds::matrix dy({2, 2});
    dy.fill(1.0f);
    layer.backward(x, y, dy, &dx);
    for (std::size_t s = 0; s < 2; ++s)
        for (std::size_t j = 0; j < 6; ++j) CHECK(dx(s, j) == (j >= 4 ? 1.0f : 0.0f));
}

// ------------------------------------------------------------------ a stacked network
using stacked_net = ds::sequential<ds::sequence_input<T, F>, ds::masked_lstm<H, ds::straight_through>,
                                   ds::lstm<3>, ds::last_step, ds::masked_dense<2, ds::sigmoid_surrogate<>>>;
static_assert(std::is_same_v<stacked_net::layer_type<1>::output_shape, ds::sequence<T, 3>>);

TEST_CASE("masked_lstm -> lstm -> last_step -> masked_dense back-propagates (finite differences)") {
    ds::rng gen(19);
    stacked_net net;
    net.initialize(2);
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
        return ds::matrix{};
    };
    c.params = [&] {
        std::vector<ds::parameter> ps;
        net.for_each_parameter([&](const ds::parameter& p) { ps.push_back(p); });
        return ps;
    };
    const auto r = check_gradients(c, ds::testing::random_matrix(B, T * F, gen), gen,
                                   {.epsilon = 2e-3f, .absolute_tolerance = 1e-3, .relative_tolerance = 3e-2});
    DYNSPARSE_CHECK_GRADIENTS(r);
    // masked_lstm (8H thresholds + weights + biases), lstm, masked_dense (2 thresholds)
    CHECK(r.checked == (8 * H + 4 * H * (F + H) + 4 * H) + (12 * (H + 3) + 12) + (2 + 6 + 2));
}

TEST_CASE("a DST LSTM learns a sequence task with Adam") {
    // Class = which of three features carries a pulse, at a random time step; the network
    // has to remember it until the last step.
    constexpr std::size_t steps = 6, feats = 3;
    auto make = [](std::size_t n, std::uint64_t seed) {
        ds::rng gen(seed);
        ds::dataset d;
        d.classes = 3;
        d.images = ds::make_matrix(n, steps * feats);
        d.labels.resize(n);
        for (std::size_t i = 0; i < n; ++i) {
            const auto c = static_cast<std::uint8_t>(gen.below(3));
            d.labels[i] = c;
            for (std::size_t k = 0; k < steps * feats; ++k) d.images(i, k) = gen.uniform(-0.3f, 0.3f);
            d.images(i, gen.below(steps - 1) * feats + c) += 2.0f;
        }
        return d;
    };
    struct net_type : ds::sequential<ds::sequence_input<steps, feats>, ds::masked_lstm<12>, ds::last_step,
                                     ds::dense<3>> {};
    net_type net;
    net.initialize(1);
    ds::train_config cfg;
    cfg.epochs = 6;
    cfg.batch_size = 20;
    cfg.alpha = 1e-4f;
    cfg.schedule = ds::constant_lr(1e-2f);
    cfg.progress = false;
    ds::trainer<net_type, ds::softmax_cross_entropy, ds::adam> trainer(net, {}, ds::adam{}, cfg);
    const auto train = make(600, 1), test = make(300, 2);
    const auto history = trainer.fit(train, test);
    CHECK(history.front().eval.accuracy < 95.0);
    CHECK(history.back().eval.accuracy > 90.0);
    CHECK(history.back().remaining <= 1.0);
}
