// Convolutions and pooling: compile-time shapes, forward against a direct convolution,
// finite-difference gradient checks of conv2d, masked_conv2d (every surrogate x
// {per_filter, scalar}, with stride and padding), max/avg pooling, and a whole
// conv -> relu -> pool -> flatten -> masked_dense network.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "dynsparse/detail/reduce.hpp"
#include "dynsparse/layers/activations.hpp"
#include "dynsparse/layers/conv2d.hpp"
#include "dynsparse/layers/masked_conv2d.hpp"
#include "dynsparse/layers/masked_dense.hpp"
#include "dynsparse/layers/pooling.hpp"
#include "dynsparse/layers/product_mode.hpp"
#include "dynsparse/layers/reshape.hpp"
#include "dynsparse/network/sequential.hpp"
#include "dynsparse/optim/optimizer.hpp"
#include "dynsparse/optim/update.hpp"
#include "support/fixtures.hpp"
#include "support/gradient_check.hpp"
#include "support/kept_products.hpp"
#include "support/policy_lists.hpp"

namespace ds = dynsparse;
using ds::testing::as_checkable;
using ds::testing::check_gradients;

// ------------------------------------------------------------------ compile-time shapes
struct lenet5_caffe : ds::sequential<ds::input<1, 28, 28>, ds::masked_conv2d<20, 5>, ds::relu,
                                     ds::max_pool2d<2>, ds::masked_conv2d<50, 5>, ds::relu,
                                     ds::max_pool2d<2>, ds::flatten, ds::masked_dense<500>,
                                     ds::relu, ds::masked_dense<10>> {};
static_assert(ds::Network<lenet5_caffe>);
static_assert(lenet5_caffe::masked_layer_count() == 4);
static_assert(std::is_same_v<lenet5_caffe::layer_type<0>::output_shape, ds::shape<20, 24, 24>>);
static_assert(std::is_same_v<lenet5_caffe::layer_type<2>::output_shape, ds::shape<20, 12, 12>>);
static_assert(std::is_same_v<lenet5_caffe::layer_type<3>::output_shape, ds::shape<50, 8, 8>>);
static_assert(std::is_same_v<lenet5_caffe::layer_type<5>::output_shape, ds::shape<50, 4, 4>>);
static_assert(std::is_same_v<lenet5_caffe::layer_type<6>::output_shape, ds::shape<800>>);
static_assert(std::is_same_v<lenet5_caffe::layer_type<7>,
                             ds::masked_dense_layer<800, 500, ds::long_tailed, ds::per_neuron>>);
static_assert(std::is_same_v<lenet5_caffe::layer_type<0>::granularity, ds::per_filter>);
static_assert(lenet5_caffe::layer_type<3>::threshold_count == 50);
static_assert(lenet5_caffe::layer_type<3>::fan_in == 500);
static_assert(ds::MaskedLayer<lenet5_caffe::layer_type<0>>);

// Stride and padding: out = floor((n + 2p - k) / s) + 1.
static_assert(std::is_same_v<ds::conv2d<4, 3, 2, 1>::bind<ds::shape<2, 7, 7>>::output_shape,
                             ds::shape<4, 4, 4>>);
static_assert(std::is_same_v<ds::conv2d<4, 3, 1, 1>::bind<ds::shape<2, 7, 6>>::output_shape,
                             ds::shape<4, 7, 6>>);
static_assert(std::is_same_v<ds::conv2d<1, 7>::bind<ds::shape<1, 7, 7>>::output_shape, ds::shape<1, 1, 1>>);
static_assert(std::is_same_v<ds::conv2d<1, 3, 1, 1>::bind<ds::shape<1, 1, 1>>::output_shape,
                             ds::shape<1, 1, 1>>);
static_assert(std::is_same_v<ds::max_pool2d<3, 2>::bind<ds::shape<3, 7, 8>>::output_shape,
                             ds::shape<3, 3, 3>>);
static_assert(std::is_same_v<ds::avg_pool2d<2>::bind<ds::shape<3, 5, 5>>::output_shape,
                             ds::shape<3, 2, 2>>);
static_assert(std::is_same_v<ds::masked_conv2d<3, 3, 2, 1, ds::straight_through, ds::scalar>::bind<
                                 ds::shape<2, 5, 5>>::output_shape,
                             ds::shape<3, 3, 3>>);
static_assert(ds::masked_conv2d<3, 3, 1, 0, ds::long_tailed, ds::per_weight>::bind<
                  ds::shape<2, 5, 5>>::threshold_count == 54);

// Explicit instantiations compile every member.
template class ds::conv2d_layer<ds::shape<2, 6, 6>, 3, 3, 2, 1>;
template class ds::masked_conv2d_layer<ds::shape<2, 6, 6>, 3, 3, 2, 1, ds::long_tailed, ds::per_filter>;
template class ds::detail::pool2d_layer<ds::shape<2, 6, 6>, 2, 2, true>;
template class ds::detail::pool2d_layer<ds::shape<2, 6, 6>, 3, 1, false>;

namespace {

using ds::testing::conv_combo;

/// Input values that are distinct by at least 0.05 (so max pooling has no near-ties).
ds::matrix distinct_inputs(std::size_t rows, std::size_t cols, ds::rng& gen) {
    std::vector<float> v(rows * cols);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = -1.0f + 0.05f * static_cast<float>(i);
    gen.shuffle(std::span<float>(v));
    ds::matrix m({rows, cols});
    std::copy(v.begin(), v.end(), m.begin());
    return m;
}

/// A direct convolution of the (C, H, W) samples in x with filters w (c_out x c*k*k).
ds::matrix direct_conv(const ds::matrix& x, const ds::matrix& w, const ds::vector& b, std::size_t c,
                       std::size_t h, std::size_t wd, std::size_t k, std::size_t s, std::size_t p) {
    const std::size_t out = w.shape(0), oh = (h + 2 * p - k) / s + 1, ow = (wd + 2 * p - k) / s + 1;
    ds::matrix y({x.shape(0), out * oh * ow});
    for (std::size_t r = 0; r < x.shape(0); ++r)
        for (std::size_t o = 0; o < out; ++o)
            for (std::size_t oy = 0; oy < oh; ++oy)
                for (std::size_t ox = 0; ox < ow; ++ox) {
                    double acc = b(o);
                    for (std::size_t ci = 0; ci < c; ++ci)
                        for (std::size_t i = 0; i < k; ++i)
                            for (std::size_t j = 0; j < k; ++j) {
                                const long iy = static_cast<long>(oy * s + i) - static_cast<long>(p);
                                const long ix = static_cast<long>(ox * s + j) - static_cast<long>(p);
                                if (iy < 0 || ix < 0 || iy >= static_cast<long>(h) || ix >= static_cast<long>(wd))
                                    continue;
                                acc += w(o, (ci * k + i) * k + j) *
                                       x(r, (ci * h + static_cast<std::size_t>(iy)) * wd + static_cast<std::size_t>(ix));
                            }
                    y(r, (o * oh + oy) * ow + ox) = static_cast<float>(acc);
                }
    return y;
}

}  // namespace

// ------------------------------------------------------------------ conv2d
TEST_CASE_TEMPLATE("conv2d forward equals a direct convolution", C, conv_combo<void, void, 1, 0>,
                   conv_combo<void, void, 2, 1>, conv_combo<void, void, 1, 2>, conv_combo<void, void, 3, 1>) {
    using L = ds::conv2d_layer<ds::shape<2, 7, 6>, 3, 3, C::stride, C::padding>;
    ds::rng gen(3);
    L layer;
    layer.initialize(gen);
    const ds::matrix x = ds::testing::random_matrix(3, 2 * 7 * 6, gen);
    ds::matrix y;
    layer.forward(x, y, true);
    const ds::matrix expect = direct_conv(x, layer.weight(), layer.bias(), 2, 7, 6, 3, C::stride, C::padding);
    REQUIRE(y.shape(1) == L::output_shape::size);
    REQUIRE(expect.shape(1) == y.shape(1));
    for (std::size_t i = 0; i < y.size(); ++i)
        CHECK(y.data()[i] == doctest::Approx(expect.data()[i]).epsilon(1e-5).scale(1.0));
}

TEST_CASE_TEMPLATE("conv2d gradients match finite differences", C, conv_combo<void, void, 1, 0>,
                   conv_combo<void, void, 2, 1>, conv_combo<void, void, 1, 2>) {
    using L = ds::conv2d_layer<ds::shape<2, 5, 5>, 3, 3, C::stride, C::padding>;
    ds::rng gen(5);
    L layer;
    layer.initialize(gen);
    ds::matrix y;
    const auto r = check_gradients(as_checkable(layer, y), ds::testing::random_matrix(2, 50, gen), gen);
    DYNSPARSE_CHECK_GRADIENTS(r);
    CHECK(r.checked == 100 + 54 + 3);  // inputs + weights + biases
}

// ------------------------------------------------------------------ masked_conv2d
TEST_CASE_TEMPLATE("masked_conv2d gradients match finite differences of the smoothed forward", C,
                   DYNSPARSE_CONV_COMBOS) {
    using L = ds::masked_conv2d_layer<ds::shape<2, 5, 5>, 3, 3, C::stride, C::padding,
                                      typename C::surrogate, typename C::granularity>;
    static_assert(ds::MaskedLayer<L>);
    ds::rng gen(42);
    L layer;
    const auto r = ds::testing::check_masked_layer(layer, ds::testing::random_matrix(2, 50, gen), gen);
    DYNSPARSE_CHECK_GRADIENTS(r);
    // inputs + weights + biases + thresholds
    CHECK(r.checked == 100 + 54 + 3 + L::threshold_count);
}

TEST_CASE_TEMPLATE("masked_conv2d gradients match finite differences with the kept-weight products", C,
                   DYNSPARSE_CONV_COMBOS) {
    using L = ds::masked_conv2d_layer<ds::shape<2, 5, 5>, 3, 3, C::stride, C::padding,
                                      typename C::surrogate, typename C::granularity>;
    ds::rng gen(43);
    L layer;
    layer.set_product_mode(ds::product_mode::kept_weights);
    const auto r = ds::testing::check_masked_layer(layer, ds::testing::random_matrix(2, 50, gen), gen);
    DYNSPARSE_CHECK_GRADIENTS(r);
    CHECK(layer.used_kept_weights());
}

TEST_CASE("masked_conv2d kept-weight products equal the dense products in every geometry") {
    using ds::long_tailed, ds::per_filter, ds::testing::check_kept_products_match_dense, ds::testing::thresholds_at;
    constexpr auto bitwise = ds::testing::weight_gradients::bitwise;
    for (const float t : {0.0f, 0.1f, 0.2f, 10.0f}) {  // all kept .. none kept
        CAPTURE(t);
        // one GEMM per sample (24x24 output), grouped samples (small maps), padding 1
        // (whose dense input gradient is a convolution), stride 2
        check_kept_products_match_dense<ds::masked_conv2d_layer<ds::shape<1, 28, 28>, 4, 5, 1, 0, long_tailed, per_filter>>(
            thresholds_at(t), 3, bitwise);
        check_kept_products_match_dense<ds::masked_conv2d_layer<ds::shape<6, 6, 6>, 5, 3, 1, 0, long_tailed, per_filter>>(
            thresholds_at(t), 9, bitwise);
        check_kept_products_match_dense<ds::masked_conv2d_layer<ds::shape<4, 6, 6>, 7, 3, 1, 1, long_tailed, per_filter>>(
            thresholds_at(t), 5, bitwise);
        check_kept_products_match_dense<ds::masked_conv2d_layer<ds::shape<3, 7, 7>, 6, 3, 2, 1, long_tailed, per_filter>>(
            thresholds_at(t), 2, bitwise);
    }
}

TEST_CASE_TEMPLATE("masked_conv2d exact forward convolves with the strictly masked filters", C,
                   conv_combo<ds::long_tailed, ds::per_filter, 2, 1>,
                   conv_combo<ds::straight_through, ds::scalar, 1, 0>) {
    using L = ds::masked_conv2d_layer<ds::shape<2, 5, 5>, 3, 3, C::stride, C::padding,
                                      typename C::surrogate, typename C::granularity>;
    ds::rng gen(8);
    L layer;
    layer.initialize(gen);
    for (auto& t : layer.threshold()) t = 0.1f;
    layer.weight()(0, 0) = 0.1f;    // |W| == t: the strict step drops it
    layer.weight()(1, 3) = -0.3f;   // kept
    const ds::matrix x = ds::testing::random_matrix(2, 50, gen);
    ds::matrix y;
    layer.forward(x, y, true);
    std::size_t kept = 0;
    ds::matrix wm = layer.weight();
    for (auto& v : wm) {
        const bool keep = std::fabs(v) > 0.1f;
        kept += keep;
        v = keep ? v : 0.0f;
    }
    CHECK(layer.masked_weight()(0, 0) == 0.0f);
    CHECK(layer.masked_weight()(1, 3) == -0.3f);
    CHECK(layer.statistics().kept == kept);
    CHECK(layer.statistics().total == 3 * 18);
    const ds::matrix expect = direct_conv(x, wm, layer.bias(), 2, 5, 5, 3, C::stride, C::padding);
    for (std::size_t i = 0; i < y.size(); ++i)
        CHECK(y.data()[i] == doctest::Approx(expect.data()[i]).epsilon(1e-5).scale(1.0));
}

TEST_CASE("masked_conv2d: the mask made in the optimizer step equals a recomputed one") {
    using L = ds::masked_conv2d_layer<ds::shape<2, 6, 6>, 4, 3, 1, 1, ds::long_tailed, ds::per_filter>;
    ds::rng gen(12);
    L a;
    a.initialize(gen);
    for (auto& t : a.threshold()) t = 0.15f;
    L b = a;
    const ds::matrix x = ds::testing::random_matrix(3, 72, gen);
    const ds::matrix dy = ds::testing::random_matrix(3, L::output_shape::size, gen);
    ds::matrix ya, yb, dxa, dxb;
    ds::sgd opt_a({.momentum = 0.9f}), opt_b({.momentum = 0.9f});
    for (int step = 0; step < 3; ++step) {
        a.forward(x, ya, true);
        a.backward(x, ya, dy, &dxa);
        b.forward(x, yb, true);
        b.backward(x, yb, dy, &dxb);
        std::vector<ds::parameter> pb;
        b.for_each_parameter([&](const ds::parameter& p) { pb.push_back(p); });
        ds::update_pass(a).run(opt_a, 0.005f, 0.0f);  // a's next mask is made in the pass
        ds::optimizer_step(opt_b, pb, 0.005f);       // b recomputes its mask in forward
    }
    a.forward(x, ya, true);
    b.forward(x, yb, true);
    CHECK(a.statistics().kept == b.statistics().kept);
    CHECK(a.statistics().kept < a.statistics().total);
    for (std::size_t i = 0; i < ya.size(); ++i) CHECK(ya.data()[i] == yb.data()[i]);
}

TEST_CASE("masked_conv2d reset rule: a layer keeping <= 1% gets its thresholds reset") {
    using L = ds::masked_conv2d_layer<ds::shape<1, 4, 4>, 2, 3, 1, 0, ds::long_tailed, ds::per_filter>;
    ds::rng gen(2);
    L layer;
    layer.initialize(gen);
    ds::sgd opt;
    ds::update_pass pass(layer);  // a training step with learning rate 0 applies the rule
    for (auto& t : layer.threshold()) t = 10.0f;
    layer.update_mask();          // a forward's mask: never resets
    CHECK(layer.statistics().resets == 0);
    pass.run(opt, 0.0f, 0.0f);
    CHECK(layer.statistics().resets == 1);
    CHECK(layer.statistics().kept == layer.statistics().total);
    CHECK(layer.threshold()(0) == 0.0f);
    layer.set_reset_rule(false);
    for (auto& t : layer.threshold()) t = 10.0f;
    pass.run(opt, 0.0f, 0.0f);
    CHECK(layer.statistics().kept == 0);
    CHECK(layer.statistics().resets == 1);
}

// ------------------------------------------------------------------ float sums
TEST_CASE("sum_floats matches a double-precision sum at every remainder length") {
    // The 16 partial sums and the tail: lengths around the lane count and a long run.
    ds::rng gen(3);
    for (std::size_t n : {0u, 1u, 15u, 16u, 17u, 31u, 33u, 576u, 1001u}) {
        std::vector<float> v(n);
        double want = 0.0;
        for (auto& x : v) {
            x = gen.uniform(-1.0f, 1.0f);
            want += x;
        }
        CAPTURE(n);
        CHECK(ds::detail::sum_floats(v.data(), n) == doctest::Approx(want).epsilon(1e-5));
    }
    const std::vector<float> ones(40, 1.0f);  // exact: every element counted once
    CHECK(ds::detail::sum_floats(ones.data(), ones.size()) == 40.0f);
}

// ------------------------------------------------------------------ pooling
TEST_CASE_TEMPLATE("pooling gradients match finite differences", P,
                   ds::max_pool2d<2>::bind<ds::shape<2, 5, 5>>, ds::max_pool2d<2>::bind<ds::shape<2, 4, 6>>,
                   ds::max_pool2d<3, 2>::bind<ds::shape<2, 7, 6>>,
                   ds::avg_pool2d<2>::bind<ds::shape<2, 5, 5>>,
                   ds::avg_pool2d<3, 1>::bind<ds::shape<2, 5, 4>>) {
    ds::rng gen(17);
    P layer;
    ds::matrix y;
    const auto r = check_gradients(as_checkable(layer, y),
                                   distinct_inputs(2, P::input_shape::size, gen), gen);
    DYNSPARSE_CHECK_GRADIENTS(r);
    CHECK(r.checked == 2 * P::input_shape::size);
}

TEST_CASE("pooling values") {
    ds::matrix x({1, 16});
    std::iota(x.begin(), x.end(), 0.0f);  // one 4x4 channel, 0..15 row by row
    x(0, 5) = 100.0f;
    ds::max_pool2d<2>::bind<ds::shape<1, 4, 4>> mp;
    ds::avg_pool2d<2>::bind<ds::shape<1, 4, 4>> ap;
    ds::matrix y;
    mp.forward(x, y, true);
    CHECK(y(0, 0) == 100.0f);
    CHECK(y(0, 1) == 7.0f);
    CHECK(y(0, 2) == 13.0f);
    CHECK(y(0, 3) == 15.0f);
    ap.forward(x, y, true);
    CHECK(y(0, 0) == doctest::Approx((0 + 1 + 4 + 100) / 4.0));
    CHECK(y(0, 3) == doctest::Approx((10 + 11 + 14 + 15) / 4.0));
}

TEST_CASE("2x2 max pooling picks the first maximum in row-major order, forward and backward") {
    // The tiled 2x2 path against a plain reference, on values with many ties (small
    // integers, zeros as after a ReLU) so every tie order is exercised.
    constexpr std::size_t C = 3, H = 8, W = 12, OH = 4, OW = 6, batch = 3;
    ds::max_pool2d<2>::bind<ds::shape<C, H, W>> mp;
    ds::rng gen(5);
    ds::matrix x({batch, C * H * W}), dy({batch, C * OH * OW});
    for (auto& v : x) v = std::max(0.0f, std::floor(gen.uniform(-2.0f, 3.0f)));
    for (auto& v : dy) v = gen.uniform(-1.0f, 1.0f);
    ds::matrix y, dx;
    mp.forward(x, y, true);
    mp.backward(x, y, dy, &dx);
    ds::matrix want_dx({batch, C * H * W});
    want_dx.fill(0.0f);
    std::size_t ties = 0;
    for (std::size_t b = 0; b < batch; ++b)
        for (std::size_t c = 0; c < C; ++c)
            for (std::size_t oy = 0; oy < OH; ++oy)
                for (std::size_t ox = 0; ox < OW; ++ox) {
                    std::size_t best = c * H * W + 2 * oy * W + 2 * ox;
                    std::size_t equal = 0;
                    for (std::size_t i = 0; i < 2; ++i)
                        for (std::size_t j = 0; j < 2; ++j) {
                            const std::size_t at = c * H * W + (2 * oy + i) * W + 2 * ox + j;
                            if (x(b, at) > x(b, best)) best = at;
                            equal += x(b, at) == x(b, c * H * W + 2 * oy * W + 2 * ox) ? 1 : 0;
                        }
                    ties += equal > 1 ? 1 : 0;
                    const std::size_t q = (c * OH + oy) * OW + ox;
                    CHECK(y(b, q) == x(b, best));
                    want_dx(b, best) = dy(b, q);
                }
    CHECK(ties > 10);  // the data does exercise ties
    for (std::size_t i = 0; i < dx.size(); ++i) CHECK(dx.data()[i] == want_dx.data()[i]);
}

// ------------------------------------------------------------------ a whole network
using small_conv_net =
    ds::sequential<ds::input<2, 6, 6>, ds::masked_conv2d<3, 3, 1, 1, ds::long_tailed, ds::per_filter>,
                   ds::relu, ds::max_pool2d<2>, ds::masked_conv2d<2, 2, 1, 0, ds::straight_through, ds::scalar>,
                   ds::relu, ds::avg_pool2d<2>, ds::flatten, ds::masked_dense<3>>;
static_assert(std::is_same_v<small_conv_net::layer_type<2>::output_shape, ds::shape<3, 3, 3>>);
static_assert(std::is_same_v<small_conv_net::layer_type<6>::output_shape, ds::shape<2>>);

TEST_CASE("conv -> relu -> pool -> flatten -> masked_dense back-propagates (finite differences)") {
    ds::rng gen(23);
    small_conv_net net;
    net.initialize(4);
    net.for_each_masked_layer([&](auto& layer, std::size_t) {
        layer.set_reset_rule(false);
        layer.set_smooth_forward(true);
        for (auto& t : layer.thresholds()) t = 0.05f;
    });
    // Keep the first convolution's outputs positive: relu zeros would tie in max pooling,
    // where finite differences are one-sided.
    for (auto& b : net.get<0>().bias()) b = 3.0f;
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
    const auto r = check_gradients(c, ds::testing::random_matrix(2, 72, gen), gen,
                                   {.epsilon = 2e-3f, .absolute_tolerance = 1e-3, .relative_tolerance = 3e-2});
    DYNSPARSE_CHECK_GRADIENTS(r);
    // (3 + 54 + 3) + (1 + 24 + 2) + (3 + 6 + 3)
    CHECK(r.checked == 60 + 27 + 12);
}
