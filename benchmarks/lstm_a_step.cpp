// Speed of one DST training step of LSTM-a (two stacked LSTMs of 128 units over the 28
// rows of a Fashion-MNIST image, dense head; Adam, batch 100), against the same network
// with plain LSTMs and against the GEMM floor: the matrix products of the step alone, on
// the same shapes and strides, and the step's FLOPs over the single-core sgemm rate of a
// large square product. DST and dense steps alternate on the same batches, so the
// machine's load falls on both alike. Reports median milliseconds per step, a per-phase
// breakdown and the peak RSS.
//
//   lstm_a_step [--steps 100] [--rounds 3] [--threads 1] [--net both|dst|dense]
//               [--data DIR] [--json PATH]
//
// Compare with PyTorch: benchmarks/pytorch/dst_lstm.py (same step, same recipe) and
// benchmarks/compare_pytorch_lstm.sh.
#include <dynsparse/dynsparse.hpp>

#include <sys/resource.h>

#include <cstdio>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "../examples/cli/cli.hpp"
#include "../examples/cli/machine.hpp"
#include "common/step_timing.hpp"

namespace ds = dynsparse;

constexpr std::size_t batch = 100, steps_t = 28, features = 28, hidden = 128, classes = 10;

struct dst_net : ds::sequential<ds::sequence_input<steps_t, features>, ds::masked_lstm<hidden>,
                                ds::masked_lstm<hidden>, ds::last_step, ds::dense<classes>> {};
struct dense_net : ds::sequential<ds::sequence_input<steps_t, features>, ds::lstm<hidden>,
                                  ds::lstm<hidden>, ds::last_step, ds::dense<classes>> {};

using bench::clock_type;
using bench::median;
using bench::since;

struct gemm_shape {
    std::size_t m, n, k;
    ds::transpose ta, tb;
    std::size_t lda, ldb, ldc, repeat;
};

/// The GEMMs of one training step, with the shapes and strides the layers use
/// (detail/lstm_kernels.hpp): per LSTM layer with F inputs, forward: the input projection
/// of the whole sequence and T-1 recurrent products; backward: T-1 recurrent products,
/// dW_ih, dW_hh and (second layer only: the first needs no input gradient) dx; and the
/// dense head's three products.
std::vector<gemm_shape> step_gemms() {
    const ds::transpose N = ds::transpose::no, T = ds::transpose::yes;
    constexpr std::size_t H = hidden, G = 4 * H, BT = batch * steps_t, S = steps_t;
    std::vector<gemm_shape> v;
    for (std::size_t F : {features, hidden}) {
        const std::size_t ld = F + H;
        v.push_back({BT, G, F, N, T, F, ld, G, 1});                      // input projection
        v.push_back({batch, G, H, N, T, S * H, ld, S * G, S - 1});       // recurrent forward
        v.push_back({batch, H, G, N, N, S * G, ld, H, S - 1});           // recurrent backward
        v.push_back({G, F, BT, T, N, G, F, ld, 1});                      // dW_ih
        v.push_back({G, H, BT, T, N, G, H, ld, 1});                      // dW_hh
        if (F == hidden) v.push_back({BT, F, G, N, N, G, ld, F, 1});     // dx
    }
    v.push_back({batch, classes, H, N, T, H, H, classes, 1});            // head forward
    v.push_back({classes, H, batch, T, N, classes, H, H, 1});            // head dW
    v.push_back({batch, H, classes, N, N, classes, H, H, 1});            // head dx
    return v;
}

double step_flops() {
    double f = 0;
    for (const auto& g : step_gemms()) f += 2.0 * g.m * g.n * g.k * g.repeat;
    return f;
}

/// Seconds per step of the step's GEMMs alone (median over `reps` steps).
double gemm_floor(std::size_t reps) {
    const auto shapes = step_gemms();
    std::vector<std::vector<float>> a, b, c;
    for (const auto& s : shapes) {
        const std::size_t rows_a = s.ta == ds::transpose::no ? s.m : s.k;
        const std::size_t rows_b = s.tb == ds::transpose::no ? s.k : s.n;
        a.emplace_back(rows_a * s.lda + s.lda, 0.01f);
        b.emplace_back(rows_b * s.ldb + s.ldb, 0.5f);
        c.emplace_back(s.m * s.ldc + s.ldc, 0.0f);
    }
    std::vector<double> t;
    for (std::size_t r = 0; r < reps; ++r) {
        const auto t0 = clock_type::now();
        for (std::size_t i = 0; i < shapes.size(); ++i) {
            const auto& s = shapes[i];
            for (std::size_t k = 0; k < s.repeat; ++k)
                ds::gemm(s.ta, s.tb, s.m, s.n, s.k, 1.0f, a[i].data(), s.lda, b[i].data(), s.ldb, 1.0f,
                         c[i].data(), s.ldc);
        }
        t.push_back(since(t0));
    }
    return median(t);
}

/// Single-core sgemm rate (FLOP/s) of a 1024^3 product, median of `reps`.
double sgemm_rate(std::size_t reps) {
    constexpr std::size_t n = 1024;
    std::vector<float> a(n * n, 0.01f), b(n * n, 0.5f), c(n * n, 0.0f);
    std::vector<double> t;
    for (std::size_t r = 0; r < reps; ++r) {
        const auto t0 = clock_type::now();
        ds::gemm(ds::transpose::no, ds::transpose::no, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f,
                 c.data(), n);
        t.push_back(since(t0));
    }
    return 2.0 * n * n * n / median(t);
}

double peak_rss_mib() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / 1024.0;
}

static int run(int argc, char** argv) {
    const examples::arguments args(argc, argv,
                                   {"--steps", "--rounds", "--threads", "--data", "--json", "--net", "--kept",
                                    "--products"},
                                   {},
                                   "usage: lstm_a_step [--steps 100] [--rounds 3] [--threads 1] [--net both|dst|dense]\n"
                                   "                   [--kept F] [--products auto|dense|kept] [--data DIR] [--json PATH]\n"
                                   "Speed of one DST training step of LSTM-a on Fashion-MNIST. --kept F starts DST\n"
                                   "with thresholds that keep a fraction F of each masked layer (e.g. 0.08, the\n"
                                   "trained model's); --products chooses the masked layers' products.\n");
    const std::size_t steps = args.count("--steps", 100), rounds = args.count("--rounds", 3);
    const int threads = static_cast<int>(args.count("--threads", 1));
    const std::string which = args.choice("--net", "both", {"both", "dst", "dense"});
    const bool run_dst = which != "dense", run_dense = which != "dst";
    ds::set_blas_threads(threads);
    ds::train_test data =
        ds::load_mnist_directory(args.text("--data", examples::default_fashion_mnist_directory.string()));
    ds::standardize(data);
    std::printf("BLAS kernels %s, %d thread(s), LSTM-a, batch %zu, Adam, %zu rounds of %zu steps (%s)\n",
                ds::blas_core_name().c_str(), threads, batch, rounds, steps, which.c_str());

    const ds::flush_denormals_scope ftz;  // as the trainer does
    auto dst = std::make_unique<bench::phased<dst_net, ds::adam>>(1e-4f);
    auto dense = std::make_unique<bench::phased<dense_net, ds::adam>>(0.0f);
    ds::set_product_mode(dst->net, ds::parse_product_mode(args.choice("--products", "auto", {"auto", "dense", "kept"})));
    if (args.has("--kept")) {
        const double kept = args.real("--kept", 1.0);
        if (!(kept > 0 && kept <= 1)) throw std::invalid_argument("--kept expects a fraction in (0, 1]");
        dst->net.for_each_masked_layer([&](auto& l, std::size_t) {
            std::vector<float> a;
            for (float w : l.weight()) a.push_back(std::fabs(w));
            std::sort(a.begin(), a.end());
            const float t = a[static_cast<std::size_t>((1.0 - kept) * static_cast<double>(a.size() - 1))];
            for (auto& v : l.threshold()) v = t;
        });
    }
    ds::rng gen(1);
    std::vector<std::size_t> order(data.train.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    gen.shuffle(std::span<std::size_t>(order));
    ds::matrix x;
    std::vector<std::uint8_t> y;
    std::vector<double> ms_dst, ms_dense, ms_floor;
    std::size_t s = 0;
    for (int i = 0; i < 3; ++i) {  // warm-up: allocate buffers, fault pages in
        ds::gather_batch(data.train, std::span<const std::size_t>(order.data(), batch), x, y);
        if (run_dst) dst->step(x, y);
        if (run_dense) dense->step(x, y);
    }
    std::fill(std::begin(dst->t), std::end(dst->t), 0.0);
    std::fill(std::begin(dense->t), std::end(dense->t), 0.0);
    for (std::size_t r = 0; r < rounds; ++r) {
        for (std::size_t i = 0; i < steps; ++i, ++s) {
            const std::size_t first = (s * batch) % (data.train.size() - batch);
            ds::gather_batch(data.train, std::span<const std::size_t>(order.data() + first, batch), x, y);
            if (run_dst) ms_dst.push_back(1e3 * dst->step(x, y));
            if (run_dense) ms_dense.push_back(1e3 * dense->step(x, y));
        }
        ms_floor.push_back(1e3 * gemm_floor(std::max<std::size_t>(steps / 10, 3)));
    }
    const double rate = sgemm_rate(5);
    const double flops = step_flops();
    const double md = run_dst ? median(ms_dst) : 0, mn = run_dense ? median(ms_dense) : 0;
    const double mf = median(ms_floor), mr = 1e3 * flops / rate;
    std::printf("step GEMMs: %.2f GFLOP; sgemm 1024^3 rate %.1f GFLOP/s\n", flops * 1e-9, rate * 1e-9);
    std::printf("median ms/step: DST %.2f  dense %.2f  GEMM floor %.2f (same shapes)  %.2f (FLOPs / sgemm rate)\n",
                md, mn, mf, mr);
    if (run_dst && run_dense)
        std::printf("ratios: DST/dense %.3f  DST/floor %.3f  dense/floor %.3f\n", md / mn, md / mf, mn / mf);
    if (run_dst) dst->print("DST", s);
    if (run_dense) dense->print("dense", s);
    if (run_dst) {
        double kept = 0, total = 0;
        dst->net.for_each_masked_layer([&](const auto& l, std::size_t) {
            kept += static_cast<double>(l.statistics().kept);
            total += static_cast<double>(l.statistics().total);
        });
        std::printf("DST model remaining after %zu steps: %.2f%%\n", s, 100.0 * kept / total);
    }
    const double rss = peak_rss_mib();
    std::printf("peak RSS %.1f MiB\n", rss);
    if (args.has("--json")) {
        ds::json_object j;
        j.add("model", "lstm_a").add("net", which).add("dst_ms_per_step", md).add("dense_ms_per_step", mn)
            .add("gemm_floor_ms_per_step", mf).add("flops_floor_ms_per_step", mr)
            .add("step_gflop", flops * 1e-9).add("sgemm_gflops", rate * 1e-9).add("batch", batch)
            .add("threads", threads).add("blas_core", ds::blas_core_name()).add("peak_rss_mib", rss);
        ds::write_file_atomically(args.text("--json", ""), j.str() + "\n");
    }
    return 0;
}

int main(int argc, char** argv) {
    examples::restart_with_fast_blas_kernels(argv);
    int status = 1;
    const int caught = examples::exit_status_of([&] { status = run(argc, argv); });
    return caught != 0 ? caught : status;
}
