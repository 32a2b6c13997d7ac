// The kept-weight products of a masked fully connected layer against the dense products
// of W*M: random masks at several densities and shapes, with empty and all-kept rows and
// columns, batches of 1, of a block plus one and of odd sizes, and 1 vs 2 threads.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "dynsparse/core/parallel.hpp"
#include "dynsparse/core/rng.hpp"
#include "dynsparse/detail/linear_kernels.hpp"
#include "dynsparse/detail/sparse_linear.hpp"

namespace ds = dynsparse;

namespace {

struct masked_case {
    std::size_t out, in;
    std::vector<float> wm;
    std::vector<std::uint32_t> row_kept;
};

// W*M with the given kept fraction; row 0 empty, row 1 all kept, column 0 empty.
masked_case random_masked(std::size_t out, std::size_t in, double density, std::uint64_t seed) {
    ds::rng gen(seed);
    masked_case m{out, in, std::vector<float>(out * in, 0.0f), std::vector<std::uint32_t>(out, 0)};
    for (std::size_t r = 0; r < out; ++r)
        for (std::size_t c = 0; c < in; ++c) {
            const bool keep = r == 1 || (r != 0 && c != 0 && gen.uniform01() < density);
            if (keep) {
                m.wm[r * in + c] = gen.uniform(-1.0f, 1.0f);
                ++m.row_kept[r];
            }
        }
    return m;
}

ds::matrix random_matrix(std::size_t rows, std::size_t cols, std::uint64_t seed) {
    ds::rng gen(seed);
    ds::matrix a = ds::make_matrix(rows, cols);
    for (std::size_t i = 0; i < a.size(); ++i) a.data()[i] = gen.uniform(-1.0f, 1.0f);
    return a;
}

double max_difference(const ds::matrix& a, const ds::matrix& b) {
    REQUIRE(a.size() == b.size());
    double d = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        d = std::max(d, std::abs(static_cast<double>(a.data()[i]) - static_cast<double>(b.data()[i])));
    return d;
}

}  // namespace

TEST_CASE("kept-weight products equal the dense products of W*M") {
    for (const auto& [out, in] : {std::pair<std::size_t, std::size_t>{7, 5}, {30, 64}, {300, 784}, {10, 100}})
        for (const double density : {0.0, 0.01, 0.05, 0.3, 1.0})
            for (const std::size_t batch : {std::size_t{1}, std::size_t{17}, std::size_t{33}, std::size_t{64}}) {
                CAPTURE(out);
                CAPTURE(in);
                CAPTURE(density);
                CAPTURE(batch);
                const masked_case m = random_masked(out, in, density, out * 31 + in);
                std::vector<float> bias(out);
                for (std::size_t r = 0; r < out; ++r) bias[r] = 0.1f * static_cast<float>(r % 7);
                const ds::matrix x = random_matrix(batch, in, 5), dy = random_matrix(batch, out, 6);

                ds::detail::kept_rows kw;
                kw.build(m.wm.data(), out, in, m.row_kept.data());
                std::size_t nonzeros = 0;
                for (float v : m.wm) nonzeros += v != 0.0f;
                CHECK(kw.kept == nonzeros);

                ds::matrix y_dense, y_sparse, dx_sparse;
                ds::detail::linear_forward(x, m.wm.data(), bias.data(), out, in, y_dense);
                ds::detail::sparse_linear_forward(x, kw, bias.data(), out, in, y_sparse);
                CHECK(max_difference(y_dense, y_sparse) < 1e-4);

                ds::matrix dx_dense;
                std::vector<float> gw(out * in), gb(out);
                ds::detail::linear_backward(x, m.wm.data(), dy, out, in, gw.data(), gb.data(), &dx_dense);
                ds::detail::sparse_linear_input_gradient(dy, kw, out, in, dx_sparse);
                CHECK(max_difference(dx_dense, dx_sparse) < 1e-4);
            }
}

TEST_CASE("a kept weight that is exactly zero is left out of the compressed rows") {
    masked_case m{2, 3, {0.0f, 2.0f, 0.0f, 1.0f, 0.0f, 3.0f}, {2, 2}};  // row 0 counts a kept 0
    ds::detail::kept_rows kw;
    kw.build(m.wm.data(), 2, 3, m.row_kept.data());
    CHECK(kw.kept == 3);
    CHECK(kw.start == std::vector<std::uint32_t>{0, 2});
    CHECK(kw.end == std::vector<std::uint32_t>{1, 4});
    CHECK(kw.index[0] == 1);
    CHECK(kw.value[0] == 2.0f);
    CHECK(kw.index[2] == 0);
    CHECK(kw.index[3] == 2);
    CHECK(kw.value[3] == 3.0f);
}

TEST_CASE("kept-weight products give the same bits on one and on two threads") {
    const std::size_t out = 100, in = 300, batch = 100;
    const masked_case m = random_masked(out, in, 0.05, 9);
    const ds::matrix x = random_matrix(batch, in, 10), dy = random_matrix(batch, out, 11);
    std::vector<float> bias(out, 0.25f);
    ds::matrix y[2], dx[2];
    for (std::size_t t = 0; t < 2; ++t) {
        ds::set_threads(t + 1);
        ds::detail::kept_rows kw;
        kw.build(m.wm.data(), out, in, m.row_kept.data());
        ds::detail::sparse_linear_forward(x, kw, bias.data(), out, in, y[t]);
        ds::detail::sparse_linear_input_gradient(dy, kw, out, in, dx[t]);
    }
    ds::set_threads(1);
    CHECK(max_difference(y[0], y[1]) == 0.0);
    CHECK(max_difference(dx[0], dx[1]) == 0.0);
}
