// The sparse engine's direct convolution (sparse/direct_conv.hpp) and its tiled 2x2 max
// pooling, against plain reference loops: odd sizes, padding, 1x1 and whole-input kernels,
// filters and channels without non-zeros, several channel blocks, batch 1 and more, with
// and without the 2x2 max pooling fused into the convolution.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "dynsparse/core/rng.hpp"
#include "dynsparse/sparse/direct_conv.hpp"
#include "dynsparse/sparse/model.hpp"

namespace ds = dynsparse;

namespace {

struct conv_case {
    std::size_t c_in, h, w, c_out, k, pad;
    double density;
};

/// Weights c_out x (c_in k k) with about `density` non-zeros; filter 1 (if any) has none,
/// and channel 0 of every filter none when there are several channels.
std::vector<float> sparse_weights(const conv_case& cc, ds::rng& gen) {
    const std::size_t cols = cc.c_in * cc.k * cc.k;
    std::vector<float> w(cc.c_out * cols, 0.0f);
    for (std::size_t o = 0; o < cc.c_out; ++o)
        for (std::size_t j = 0; j < cols; ++j) {
            const bool empty = (o == 1 && cc.c_out > 2) || (cc.c_in > 1 && j < cc.k * cc.k);
            if (!empty && gen.uniform01() < cc.density) w[o * cols + j] = gen.uniform(-1.0f, 1.0f);
        }
    return w;
}

/// Plain stride-1 convolution in double precision, then max(0, .) if relu.
std::vector<double> reference_conv(const conv_case& cc, const std::vector<float>& w, const std::vector<float>& b,
                                   const float* x, bool relu) {
    const std::size_t oh = cc.h + 2 * cc.pad - cc.k + 1, ow = cc.w + 2 * cc.pad - cc.k + 1;
    std::vector<double> y(cc.c_out * oh * ow);
    for (std::size_t o = 0; o < cc.c_out; ++o)
        for (std::size_t oy = 0; oy < oh; ++oy)
            for (std::size_t ox = 0; ox < ow; ++ox) {
                double s = b[o];
                for (std::size_t c = 0; c < cc.c_in; ++c)
                    for (std::size_t i = 0; i < cc.k; ++i)
                        for (std::size_t j = 0; j < cc.k; ++j) {
                            const long yy = static_cast<long>(oy + i) - static_cast<long>(cc.pad);
                            const long xx = static_cast<long>(ox + j) - static_cast<long>(cc.pad);
                            if (yy < 0 || xx < 0 || yy >= static_cast<long>(cc.h) || xx >= static_cast<long>(cc.w)) continue;
                            s += static_cast<double>(w[o * cc.c_in * cc.k * cc.k + (c * cc.k + i) * cc.k + j]) *
                                 x[(c * cc.h + static_cast<std::size_t>(yy)) * cc.w + static_cast<std::size_t>(xx)];
                        }
                y[(o * oh + oy) * ow + ox] = relu ? std::max(0.0, s) : s;
            }
    return y;
}

std::vector<float> random_values(std::size_t n, ds::rng& gen) {
    std::vector<float> v(n);
    for (auto& e : v) e = gen.uniform(-1.0f, 1.0f);
    return v;
}

ds::detail::conv_geometry geometry(const conv_case& cc) {
    return {cc.c_in, cc.h, cc.w, cc.k, 1, cc.pad, cc.h + 2 * cc.pad - cc.k + 1, cc.w + 2 * cc.pad - cc.k + 1};
}

const conv_case cases[] = {
    {1, 28, 28, 4, 5, 0, 0.5},   // LeNet-5's first layer, smaller
    {3, 7, 9, 5, 3, 0, 0.4},     // odd sizes, 5 x 7 outputs (35: a partial last vector)
    {3, 7, 9, 5, 3, 1, 0.4},     // padding
    {2, 5, 6, 3, 5, 2, 0.6},     // padding 2, kernel larger than the output
    {4, 6, 5, 3, 1, 0, 0.7},     // 1x1 kernel
    {2, 5, 5, 3, 5, 0, 0.5},     // the kernel covers the input: 1x1 output
    {3, 40, 40, 3, 3, 1, 0.3},   // planes of 40 KiB per channel: 3 channel blocks
    {20, 12, 12, 6, 5, 0, 0.3},  // LeNet-5's second layer, fewer filters
    {2, 14, 14, 5, 3, 0, 0.5},   // 12x12 outputs (pooled rows not a multiple of 8), an odd filter count
    {2, 4, 4, 3, 3, 0, 0.0},     // no non-zero at all: the bias
};

}  // namespace

TEST_CASE("direct sparse convolution equals a plain convolution") {
    ds::rng gen(7);
    for (const conv_case& cc : cases) {
        CAPTURE(cc.c_in);
        CAPTURE(cc.h);
        CAPTURE(cc.w);
        CAPTURE(cc.k);
        CAPTURE(cc.pad);
        const std::vector<float> w = sparse_weights(cc, gen), b = random_values(cc.c_out, gen);
        const ds::csr_matrix csr = ds::csr_matrix::from_dense(w.data(), cc.c_out, cc.c_in * cc.k * cc.k);
        const ds::conv_taps taps = ds::conv_taps::from_csr(csr, geometry(cc));
        if (cc.h == 40) CHECK(taps.channel_blocks() == 3);
        const std::vector<float> x = random_values(cc.c_in * cc.h * cc.w, gen);
        // Planes 64-byte aligned, as the engine keeps them; garbage where they will be written.
        std::vector<float> storage(taps.shifted_size() + 16, 1e30f);
        float* xs = storage.data() + (16 - reinterpret_cast<std::uintptr_t>(storage.data()) / sizeof(float) % 16) % 16;
        taps.shift_sample(x.data(), xs);
        for (bool relu : {false, true}) {
            CAPTURE(relu);
            const std::vector<double> ref = reference_conv(cc, w, b, x.data(), relu);
            std::vector<float> y(ref.size() + 1, 7.0f);  // one float more: must stay untouched
            ds::direct_sparse_conv(taps, b.data(), xs, y.data(), relu);
            std::size_t wrong = 0;
            for (std::size_t i = 0; i < ref.size(); ++i)
                wrong += std::fabs(y[i] - ref[i]) > 1e-5 * (1.0 + std::fabs(ref[i]));
            CHECK(wrong == 0);
            CHECK(y.back() == 7.0f);
            // With a 2x2 max pooling fused into the stores, where the output allows it.
            const auto g = geometry(cc);
            if (ds::pooled_block_vectors(g.out_height, g.out_width) == 0) continue;
            const std::size_t ph = g.out_height / 2, pw = g.out_width / 2;
            std::vector<float> partial(ref.size(), 1e30f), pooled(cc.c_out * ph * pw + 1, 7.0f);
            ds::direct_sparse_conv(taps, b.data(), xs, partial.data(), relu, pooled.data());
            std::size_t pooled_wrong = 0;
            for (std::size_t o = 0; o < cc.c_out; ++o)
                for (std::size_t py = 0; py < ph; ++py)
                    for (std::size_t px = 0; px < pw; ++px) {
                        double best = -1e300;
                        for (std::size_t i = 0; i < 2; ++i)
                            for (std::size_t j = 0; j < 2; ++j)
                                best = std::max(best, ref[(o * g.out_height + 2 * py + i) * g.out_width + 2 * px + j]);
                        const float got = pooled[(o * ph + py) * pw + px];
                        pooled_wrong += std::fabs(got - best) > 1e-5 * (1.0 + std::fabs(best));
                    }
            CHECK(pooled_wrong == 0);
            CHECK(pooled.back() == 7.0f);
        }
    }
}

TEST_CASE("2x2 max pooling can be fused into the direct convolution's stores when row pairs fill whole vectors") {
    CHECK(ds::pooled_block_vectors(24, 24) == 12);  // LeNet-5's first layer: 3 vectors hold 2 rows
    CHECK(ds::pooled_block_vectors(8, 8) == 12);    // its second: 1 vector
    CHECK(ds::pooled_block_vectors(12, 6) == 12);   // 3 vectors hold 4 rows
    CHECK(ds::pooled_block_vectors(40, 40) == 10);  // 5 vectors hold 2 rows
    CHECK(ds::pooled_block_vectors(7, 8) == 0);     // odd height
    CHECK(ds::pooled_block_vectors(8, 5) == 0);     // odd width
    CHECK(ds::pooled_block_vectors(8, 26) == 0);    // 13 vectors for a whole number of row pairs
}

TEST_CASE("the engine's convolutions and 2x2 max pooling equal plain loops at batch 1 and 5") {
    ds::rng gen(11);
    for (const conv_case& cc : {conv_case{3, 10, 8, 4, 3, 1, 0.4}, conv_case{2, 9, 7, 3, 2, 0, 0.5},
                               conv_case{2, 8, 6, 3, 2, 0, 0.5}, conv_case{3, 40, 40, 3, 3, 1, 0.3},
                               conv_case{2, 14, 14, 5, 3, 0, 0.5}})
      for (bool with_relu : {true, false}) {
        CAPTURE(cc.h);
        CAPTURE(with_relu);
        // conv (stride 1) -> relu (or not) -> 2x2 max pool -> flatten; the pooling is fused
        // into the direct convolution for 10x8, 8x6, 40x40 and 12x12 outputs
        const auto g = geometry(cc);
        ds::sparse_op conv;
        conv.kind = ds::op_kind::conv;
        conv.in = {cc.c_in, cc.h, cc.w};
        conv.out = {cc.c_out, g.out_height, g.out_width};
        conv.kernel = cc.k;
        conv.stride = 1;
        conv.padding = cc.pad;
        const std::vector<float> w = sparse_weights(cc, gen);
        conv.dense = w;
        conv.bias = random_values(cc.c_out, gen);
        conv.csr.rows = cc.c_out;
        conv.csr.cols = cc.c_in * cc.k * cc.k;
        ds::sparse_op relu;
        relu.kind = ds::op_kind::relu;
        relu.in = relu.out = conv.out;
        ds::sparse_op pool;
        pool.kind = ds::op_kind::max_pool;
        pool.in = conv.out;
        pool.kernel = pool.stride = 2;
        pool.out = {cc.c_out, g.out_height / 2, g.out_width / 2};  // 10x8 and 8x6: tiled; 7x5: not
        ds::sparse_model m;
        m.input = conv.in;
        m.ops = {conv, relu, pool};
        if (!with_relu) m.ops = {conv, pool};
        ds::compress(m);
        for (std::size_t batch : {1, 5}) {
            CAPTURE(batch);
            ds::matrix x = ds::make_matrix(batch, m.input_size());
            for (auto& v : x) v = gen.uniform(-1.0f, 1.0f);
            for (auto choice : {ds::kernel_choice::sparse, ds::kernel_choice::dense}) {
                const ds::matrix& y = m.run(x, choice);
                REQUIRE(y.shape(1) == pool.out.size());
                std::size_t wrong = 0;
                for (std::size_t s = 0; s < batch; ++s) {
                    const std::vector<double> c = reference_conv(cc, w, conv.bias, x.data() + s * m.input_size(), with_relu);
                    for (std::size_t o = 0; o < cc.c_out; ++o)
                        for (std::size_t py = 0; py < pool.out.h; ++py)
                            for (std::size_t px = 0; px < pool.out.w; ++px) {
                                double best = -1e300;
                                for (std::size_t i = 0; i < 2; ++i)
                                    for (std::size_t j = 0; j < 2; ++j)
                                        best = std::max(best, c[(o * conv.out.h + 2 * py + i) * conv.out.w + 2 * px + j]);
                                const float got = y(s, (o * pool.out.h + py) * pool.out.w + px);
                                wrong += std::fabs(got - best) > 1e-5 * (1.0 + std::fabs(best));
                            }
                }
                CHECK(wrong == 0);
            }
        }
    }
}
