// Where the kept-weight products of a masked fully connected layer (detail/sparse_linear.hpp)
// beat the dense GEMMs on W*M, per product, at several kept fractions: forward
// y = x (W*M)^T + b, input gradient dx = dy (W*M) and the weight gradient dy^T x (a dense
// GEMM in both modes). The sparse side includes building the compressed rows from W*M
// (done once per forward in training). "layer" is the ratio of a whole training step of
// the layer (build + forward + input gradient + weight gradient) to the dense one; "bound"
// is (1 + 2d)/3, the fraction of the multiply-adds left at kept fraction d, and "of bound"
// how close the layer ratio comes to it (1 = all of the possible saving).
//
//   build/bin/sparse_crossover [--batch N] [--repeats N] [--threads N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <dynsparse/core/blas.hpp>
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
    std::size_t batch = 64, repeats = 51, threads = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help") {
            std::puts("sparse_crossover [--batch N] [--repeats N] [--threads N]: dense GEMMs vs kept-weight\n"
                      "products of a masked fully connected layer (forward, input gradient, weight gradient)");
            return 0;
        }
        if ((a == "--batch" || a == "--repeats" || a == "--threads") && i + 1 < argc) {
            char* end = nullptr;
            const long v = std::strtol(argv[++i], &end, 10);
            if (v <= 0 || v > 100000 || *end != '\0') {
                std::fprintf(stderr, "error: %s expects a positive integer, not '%s'\n", a.c_str(), argv[i]);
                return 1;
            }
            (a == "--batch" ? batch : a == "--repeats" ? repeats : threads) = static_cast<std::size_t>(v);
        } else {
            std::fprintf(stderr, "error: unknown option '%s' (see --help)\n", a.c_str());
            return 1;
        }
    }
    ds::set_threads(threads);
    std::printf("batch %zu, %zu thread(s), BLAS %s, median of %zu; times in microseconds\n", batch, threads,
                ds::blas_core_name().c_str(), repeats);
    std::printf("%-8s %5s | %7s %7s %7s | %7s %7s %7s | %6s %6s %6s %6s %6s\n", "shape", "kept", "fwd", "dx",
                "wgrad", "build", "fwd", "dx", "fwd", "dx", "layer", "bound", "of bd");
    std::printf("%-8s %5s | %23s | %23s | %s\n", "", "", "dense GEMMs", "kept weights", "ratios kept/dense");
    for (const auto& [out, in] : {std::pair<std::size_t, std::size_t>{300, 784}, {100, 300}, {500, 800}}) {
        for (const double density : {0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3}) {
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
            ds::detail::kept_rows kw;
            const double fwd = median_us(repeats, [&] { ds::detail::linear_forward(x, wm.data(), bias.data(), out, in, y); });
            const double dxd = median_us(repeats, [&] {
                ds::gemm(ds::transpose::no, ds::transpose::no, batch, in, out, 1.0f, dy.data(), out, wm.data(), in,
                         0.0f, (ds::ensure_shape(dx, batch, in), dx.data()), in);
            });
            const double wgrad = median_us(repeats, [&] {
                ds::detail::linear_backward(x, wm.data(), dy, out, in, gw.data(), gb.data(), nullptr);
            });
            const double build = median_us(repeats, [&] { kw.build(wm.data(), out, in, row_kept.data()); });
            const double sfwd = median_us(repeats, [&] { ds::detail::sparse_linear_forward(x, kw, bias.data(), out, in, y); });
            const double sdx = median_us(repeats, [&] { ds::detail::sparse_linear_input_gradient(dy, kw, out, in, dx); });
            const double layer = (build + sfwd + sdx + wgrad) / (fwd + dxd + wgrad);
            const double bound = (1 + 2 * density) / 3;
            char shape[32];
            std::snprintf(shape, sizeof shape, "%zux%zu", out, in);
            std::printf("%-8s %4.0f%% | %7.1f %7.1f %7.1f | %7.1f %7.1f %7.1f | %6.3f %6.3f %6.3f %6.3f %6.2f\n", shape,
                        100 * density, fwd, dxd, wgrad, build, sfwd, sdx, sfwd / fwd, sdx / dxd, layer, bound,
                        (1 - layer) / (1 - bound));
        }
    }
}
