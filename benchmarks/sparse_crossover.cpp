// Where the kept-weight products of a masked fully connected layer (detail/sparse_linear.hpp)
// beat the dense GEMMs on W*M: forward y = x (W*M)^T + b and input gradient dx = dy (W*M),
// one thread, batch 64, at several kept fractions; the sparse side includes building the
// compressed rows and columns from W*M (done once per step in training).
//
//   build/bin/sparse_crossover [--batch N] [--repeats N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <dynsparse/core/parallel.hpp>
#include <dynsparse/core/rng.hpp>
#include <dynsparse/detail/linear_kernels.hpp>
#include <dynsparse/detail/sparse_linear.hpp>

namespace ds = dynsparse;
using clock_type = std::chrono::steady_clock;

template <class F>
double median_us(std::size_t repeats, F&& f) {
    std::vector<double> t;
    for (std::size_t i = 0; i < repeats; ++i) {
        const auto t0 = clock_type::now();
        f();
        t.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

int main(int argc, char** argv) {
    std::size_t batch = 64, repeats = 51;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help") {
            std::puts("sparse_crossover [--batch N] [--repeats N]: dense GEMM vs kept-weight products of a\n"
                      "masked fully connected layer (forward + input gradient), one thread");
            return 0;
        }
        if ((a == "--batch" || a == "--repeats") && i + 1 < argc) {
            const long v = std::strtol(argv[++i], nullptr, 10);
            if (v <= 0) { std::fprintf(stderr, "error: %s must be positive\n", a.c_str()); return 1; }
            (a == "--batch" ? batch : repeats) = static_cast<std::size_t>(v);
        } else {
            std::fprintf(stderr, "error: unknown option '%s' (see --help)\n", a.c_str());
            return 1;
        }
    }
    ds::set_threads(1);
    std::printf("batch %zu, one thread, median of %zu; times in microseconds\n", batch, repeats);
    std::printf("%-10s %8s %10s %10s %10s %10s %8s\n", "shape", "kept", "dense", "build", "sparse", "all", "ratio");
    for (const auto& [out, in] : {std::pair<std::size_t, std::size_t>{300, 784}, {100, 300}, {500, 800}}) {
        for (const double density : {0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5}) {
            ds::rng gen(7);
            std::vector<float> wm(out * in, 0.0f), bias(out, 0.1f), gw(out * in), gb(out);
            std::vector<std::uint32_t> row_kept(out, 0);
            for (std::size_t r = 0; r < out; ++r)
                for (std::size_t c = 0; c < in; ++c)
                    if (gen.uniform01() < density) {
                        wm[r * in + c] = gen.uniform(-1.0f, 1.0f);
                        ++row_kept[r];
                    }
            ds::matrix x = ds::make_matrix(batch, in), dy = ds::make_matrix(batch, out), y, dx;
            for (auto& v : x) v = gen.uniform(-1.0f, 1.0f);
            for (auto& v : dy) v = gen.uniform(-1.0f, 1.0f);
            ds::detail::kept_weights kw;
            std::vector<float> a, b;
            const double dense = median_us(repeats, [&] {
                ds::detail::linear_forward(x, wm.data(), bias.data(), out, in, y);
                ds::gemm(ds::transpose::no, ds::transpose::no, batch, in, out, 1.0f, dy.data(), out, wm.data(), in,
                         0.0f, (ds::ensure_shape(dx, batch, in), dx.data()), in);
            });
            const double build = median_us(repeats, [&] { kw.build(wm.data(), out, in, row_kept.data()); });
            const double sparse = median_us(repeats, [&] {
                ds::detail::sparse_linear_forward(x, kw, bias.data(), out, in, a, b, y);
                ds::detail::sparse_linear_input_gradient(dy, kw, out, in, a, b, dx);
            });
            char shape[32];
            std::snprintf(shape, sizeof shape, "%zux%zu", out, in);
            std::printf("%-10s %7.0f%% %10.1f %10.1f %10.1f %10.1f %8.3f\n", shape, 100 * density, dense, build,
                        sparse, build + sparse, (build + sparse) / dense);
        }
    }
}
