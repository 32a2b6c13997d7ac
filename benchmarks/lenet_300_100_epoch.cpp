// End-to-end speed of LeNet-300-100 on Fashion-MNIST, batch 64: seconds per training
// epoch of DST (kept-weight products below the crossover, the default), of DST with dense
// products only, and of the same network with dense layers, measured alternately in one
// run so the ratios are not skewed by the machine's load; the GEMM floor of the same work
// (the matrix products alone, on the same shapes); and a per-phase breakdown of a DST
// step, started from the trained DST network's parameters (so at its sparsity).
//
//   lenet_300_100_epoch [--epochs 3] [--threads 1] [--data DIR] [--json PATH]
#include <dynsparse/dynsparse.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <numeric>

#include "../examples/cli/cli.hpp"
#include "../examples/cli/machine.hpp"
#include "common/step_timing.hpp"

namespace ds = dynsparse;

struct dst_net : ds::sequential<ds::input<784>, ds::masked_dense<300>, ds::relu,
                                ds::masked_dense<100>, ds::relu, ds::masked_dense<10>> {};
struct dense_net : ds::sequential<ds::input<784>, ds::dense<300>, ds::relu, ds::dense<100>,
                                  ds::relu, ds::dense<10>> {};

using bench::clock_type;
using bench::median;
using bench::since;

template <class Net>
struct runner {
    Net net;
    ds::trainer<Net, ds::softmax_cross_entropy, ds::sgd> tr;
    explicit runner(float alpha)
        : tr(net, {}, ds::sgd({.momentum = 0.9f}), [&] {
              ds::train_config c;
              c.alpha = alpha;
              c.progress = false;
              return c;
          }()) {
        net.initialize(1);
    }
};

/// The matrix products of one epoch: forward of 3 layers, weight gradients of 3 layers,
/// input gradients of the last 2 (the first layer needs none).
static double gemm_floor(std::size_t samples, std::size_t batch) {
    const std::size_t sizes[4] = {784, 300, 100, 10};
    std::vector<std::vector<float>> w(3), g(3), a(4), d(4);
    for (int l = 0; l < 3; ++l) {
        w[l].assign(sizes[l] * sizes[l + 1], 0.01f);
        g[l].assign(sizes[l] * sizes[l + 1], 0.0f);
    }
    for (int l = 0; l < 4; ++l) {
        a[l].assign(batch * sizes[l], 0.5f);
        d[l].assign(batch * sizes[l], 0.1f);
    }
    const auto t0 = clock_type::now();
    for (std::size_t first = 0; first < samples; first += batch) {
        const std::size_t b = std::min(batch, samples - first);
        for (int l = 0; l < 3; ++l)
            ds::gemm(ds::transpose::no, ds::transpose::yes, b, sizes[l + 1], sizes[l], 1.0f,
                     a[l].data(), sizes[l], w[l].data(), sizes[l], 0.0f, a[l + 1].data(), sizes[l + 1]);
        for (int l = 2; l >= 0; --l) {
            ds::gemm(ds::transpose::yes, ds::transpose::no, sizes[l + 1], sizes[l], b, 1.0f,
                     d[l + 1].data(), sizes[l + 1], a[l].data(), sizes[l], 0.0f, g[l].data(), sizes[l]);
            if (l > 0)
                ds::gemm(ds::transpose::no, ds::transpose::no, b, sizes[l], sizes[l + 1], 1.0f,
                         d[l + 1].data(), sizes[l + 1], w[l].data(), sizes[l], 0.0f, d[l].data(), sizes[l]);
        }
    }
    return since(t0);
}

using bench::phased;

/// Times the phases of DST and dense steps, alternating step by step on the same shuffled
/// batches so that the machine's load falls on both alike.
static void breakdown(const ds::dataset& train, std::size_t steps, dst_net& trained) {
    const ds::flush_denormals_scope ftz;  // as the trainer does
    phased<dst_net> dst(5e-4f);
    std::vector<ds::parameter> from;
    trained.for_each_parameter([&](const ds::parameter& p) { from.push_back(p); });
    for (std::size_t i = 0; i < from.size(); ++i)
        std::copy(from[i].value.begin(), from[i].value.end(), dst.params[i].value.begin());
    phased<dense_net> dense(0.0f);
    ds::rng gen(1);
    std::vector<std::size_t> order(train.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    gen.shuffle(std::span<std::size_t>(order));
    ds::matrix x;
    std::vector<std::uint8_t> y;
    for (std::size_t s = 0; s < steps; ++s) {
        const std::size_t first = (s * 64) % (train.size() - 64);
        ds::gather_batch(train, std::span<const std::size_t>(order.data() + first, 64), x, y);
        dst.step(x, y);
        dense.step(x, y);
    }
    const ds::mask_totals kept = ds::totals(ds::masked_layers(dst.net));
    std::printf("step breakdown over %zu alternating steps (DST from the trained network, %.2f%% kept):\n", steps,
                100.0 * kept.remaining());
    dst.print("DST", steps);
    dense.print("dense", steps);
    std::printf("step ratio DST/dense %.3f\n", dst.total() / dense.total());
}

constexpr std::string_view usage =
    "Seconds per LeNet-300-100 training epoch (batch 64): DST and dense alternating, the\n"
    "GEMM floor of the same work, and a per-phase split of a step.\n\n"
    "  --epochs N     epochs per network (3)\n"
    "  --threads N    threads for BLAS and the library's loops (1)\n"
    "  --data DIR     MNIST-format directory (default /usr/share/datasets/fashion-mnist)\n"
    "  --json PATH    also write the figures as JSON\n";

static void run(int argc, char** argv) {
    const examples::arguments args(argc, argv, {"--epochs", "--threads", "--data", "--json"}, {}, usage);
    const std::size_t epochs = args.count("--epochs", 3);
    const int threads = static_cast<int>(args.count("--threads", 1));
    ds::set_threads(static_cast<std::size_t>(threads));
    ds::train_test data = ds::load_mnist_directory(
        args.text("--data", examples::default_fashion_mnist_directory.string()));
    ds::standardize(data);
    std::printf("BLAS kernels %s, %d thread(s), %zu samples, batch 64\n", ds::blas_core_name().c_str(),
                threads, data.train.size());

    runner<dst_net> dst(5e-4f), dst_dense_products(5e-4f);
    ds::set_product_mode(dst_dense_products.net, ds::product_mode::dense);
    runner<dense_net> dense(0.0f);
    std::vector<double> t_dst, t_dstd, t_dense, t_floor, c_dst, c_dstd, c_dense, c_floor;
    // Process CPU seconds of f(): with one thread, the time it ran on its core.
    auto cpu_of = [](auto&& f) {
        const double c0 = bench::process_cpu_seconds();
        f();
        return bench::process_cpu_seconds() - c0;
    };
    for (std::size_t e = 0; e < epochs; ++e) {
        c_dst.push_back(cpu_of([&] { t_dst.push_back(dst.tr.train_epoch(data.train).train_seconds); }));
        c_dstd.push_back(cpu_of([&] {
            t_dstd.push_back(dst_dense_products.tr.train_epoch(data.train).train_seconds);
        }));
        c_dense.push_back(cpu_of([&] { t_dense.push_back(dense.tr.train_epoch(data.train).train_seconds); }));
        c_floor.push_back(cpu_of([&] { t_floor.push_back(gemm_floor(data.train.size(), 64)); }));
        std::printf("epoch %zu: DST %.3f s (%.2f%% kept)  DST dense products %.3f s  dense %.3f s  GEMM floor %.3f s"
                    "   (CPU s: %.3f %.3f %.3f %.3f)\n",
                    e + 1, t_dst.back(), 100.0 * ds::totals(ds::masked_layers(dst.net)).remaining(), t_dstd.back(), t_dense.back(),
                    t_floor.back(), c_dst.back(), c_dstd.back(), c_dense.back(), c_floor.back());
    }
    const double md = median(t_dst), mdd = median(t_dstd), mn = median(t_dense), mf = median(t_floor);
    std::printf("median s/epoch: DST %.3f  DST dense products %.3f  dense %.3f  GEMM floor %.3f\n", md, mdd, mn, mf);
    std::printf("ratios: DST/dense %.3f  DST dense products/dense %.3f  DST/floor %.3f  dense/floor %.3f\n", md / mn,
                mdd / mn, md / mf, mn / mf);
    const double cd = median(c_dst), cdd = median(c_dstd), cn = median(c_dense), cf = median(c_floor);
    std::printf("median CPU s/epoch (process CPU time, robust to other jobs): DST %.3f  DST dense products %.3f"
                "  dense %.3f  GEMM floor %.3f\n",
                cd, cdd, cn, cf);
    std::printf("CPU-time ratios: DST/dense %.3f  DST dense products/dense %.3f  DST/floor %.3f  dense/floor %.3f\n",
                cd / cn, cdd / cn, cd / cf, cn / cf);
    breakdown(data.train, 2000, dst.net);
    if (args.has("--json")) {
        ds::json_object j;
        j.add("dst_seconds_per_epoch", md).add("dst_dense_products_seconds_per_epoch", mdd)
            .add("dense_seconds_per_epoch", mn).add("gemm_floor_seconds", mf)
            .add("dst_cpu_seconds_per_epoch", cd).add("dense_cpu_seconds_per_epoch", cn).add("gemm_floor_cpu_seconds", cf)
            .add("threads", threads).add("blas_core", ds::blas_core_name());
        ds::write_file_atomically(args.text("--json", ""), j.str() + "\n");
    }
}

int main(int argc, char** argv) {
    examples::restart_with_fast_blas_kernels(argv);
    return examples::exit_status_of([&] { run(argc, argv); });
}
