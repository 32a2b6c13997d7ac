// Speed of one DST training step of LeNet-5-Caffe on Fashion-MNIST, batch 64, against
// the same network with plain (unmasked) layers and against the GEMM floor (the matrix
// products of the step alone, on the same shapes, with the same im2col layout). DST and
// dense steps alternate on the same batches, so the machine's load falls on both alike.
// Reports the median milliseconds per step and a per-phase breakdown.
//
//   lenet5_caffe_step [--steps 400] [--rounds 5] [--threads 1] [--data DIR] [--json PATH]
//
// Compare with PyTorch: benchmarks/pytorch/dst_lenet5.py (same step, same recipe).
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

struct dst_net : ds::sequential<ds::input<1, 28, 28>, ds::masked_conv2d<20, 5>, ds::relu,
                                ds::max_pool2d<2>, ds::masked_conv2d<50, 5>, ds::relu,
                                ds::max_pool2d<2>, ds::flatten, ds::masked_dense<500>, ds::relu,
                                ds::masked_dense<10>> {};
struct dense_net : ds::sequential<ds::input<1, 28, 28>, ds::conv2d<20, 5>, ds::relu, ds::max_pool2d<2>,
                                  ds::conv2d<50, 5>, ds::relu, ds::max_pool2d<2>, ds::flatten,
                                  ds::dense<500>, ds::relu, ds::dense<10>> {};

using bench::clock_type;
using bench::median;
using bench::since;

using bench::phased;

/// The GEMMs of one step, with the shapes the layers use: per convolution one product
/// forward, one for the weight gradient and (second convolution only) one for the input
/// gradient; per dense layer the same three (the first layer of the network needs no
/// input gradient). Returns seconds for `steps` steps.
static double gemm_floor(std::size_t steps, std::size_t batch) {
    struct g { std::size_t m, n, k; ds::transpose ta, tb; };
    const std::size_t w1 = batch * 576, w2 = batch * 64;
    const ds::transpose N = ds::transpose::no, T = ds::transpose::yes;
    const std::vector<g> shapes = {
        {20, w1, 25, N, N}, {50, w2, 500, N, N}, {batch, 500, 800, N, T}, {batch, 10, 500, N, T},  // forward
        {10, 500, batch, T, N}, {batch, 500, 10, N, N},                                              // fc2
        {500, 800, batch, T, N}, {batch, 800, 500, N, N},                                            // fc1
        {50, 500, w2, N, T}, {500, w2, 50, T, N},                                                    // conv2
        {20, 25, w1, N, T}};                                                                          // conv1
    std::vector<std::vector<float>> a, b, c;
    for (const auto& s : shapes) {
        a.emplace_back(s.m * s.k, 0.01f);
        b.emplace_back(s.k * s.n, 0.5f);
        c.emplace_back(s.m * s.n, 0.0f);
    }
    const auto t0 = clock_type::now();
    for (std::size_t step = 0; step < steps; ++step)
        for (std::size_t i = 0; i < shapes.size(); ++i) {
            const auto& s = shapes[i];
            ds::gemm(s.ta, s.tb, s.m, s.n, s.k, 1.0f, a[i].data(), s.ta == N ? s.k : s.m, b[i].data(),
                     s.tb == N ? s.n : s.k, 0.0f, c[i].data(), s.n);
        }
    return since(t0);
}

constexpr std::string_view usage =
    "Median time of one LeNet-5-Caffe training step (batch 64): DST, dense and GEMM floor.\n\n"
    "  --steps N      steps per round and network (400)\n"
    "  --rounds N     rounds; the GEMM floor is timed between rounds (5)\n"
    "  --threads N    threads for BLAS and the library's loops (1)\n"
    "  --data DIR     MNIST-format directory (default /usr/share/datasets/fashion-mnist)\n"
    "  --json PATH    also write the figures as JSON\n";

static void run(int argc, char** argv) {
    const examples::arguments args(argc, argv, {"--steps", "--rounds", "--threads", "--data", "--json"}, {}, usage);
    const std::size_t steps = args.count("--steps", 400), rounds = args.count("--rounds", 5);
    const int threads = static_cast<int>(args.count("--threads", 1));
    ds::set_threads(static_cast<std::size_t>(threads));
    ds::train_test data = ds::load_mnist_directory(
        args.text("--data", examples::default_fashion_mnist_directory.string()));
    ds::standardize(data);
    std::printf("BLAS kernels %s, %d thread(s), batch 64, %zu rounds of %zu steps\n",
                ds::blas_core_name().c_str(), threads, rounds, steps);

    const ds::flush_denormals_scope ftz;  // as the trainer does
    phased<dst_net> dst(5e-4f);
    phased<dense_net> dense(0.0f);
    ds::rng gen(1);
    std::vector<std::size_t> order(data.train.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    gen.shuffle(std::span<std::size_t>(order));
    ds::matrix x;
    std::vector<std::uint8_t> y;
    std::vector<double> ms_dst, ms_dense, ms_floor, cpu_dst, cpu_dense;
    std::size_t s = 0;
    // Warm-up: allocate buffers, fault pages in.
    for (int i = 0; i < 5; ++i) {
        ds::gather_batch(data.train, std::span<const std::size_t>(order.data(), 64), x, y);
        dst.step(x, y);
        dense.step(x, y);
    }
    std::fill(std::begin(dst.t), std::end(dst.t), 0.0);
    std::fill(std::begin(dense.t), std::end(dense.t), 0.0);
    for (std::size_t r = 0; r < rounds; ++r) {
        for (std::size_t i = 0; i < steps; ++i, ++s) {
            const std::size_t first = (s * 64) % (data.train.size() - 64);
            ds::gather_batch(data.train, std::span<const std::size_t>(order.data() + first, 64), x, y);
            ms_dst.push_back(1e3 * dst.step(x, y));
            cpu_dst.push_back(1e3 * dst.last_cpu);
            ms_dense.push_back(1e3 * dense.step(x, y));
            cpu_dense.push_back(1e3 * dense.last_cpu);
        }
        ms_floor.push_back(1e3 * gemm_floor(steps / 4, 64) / static_cast<double>(steps / 4));
    }
    const double md = median(ms_dst), mn = median(ms_dense), mf = median(ms_floor);
    std::printf("median ms/step: DST %.3f  dense %.3f  GEMM floor %.3f\n", md, mn, mf);
    std::printf("ratios: DST/dense %.3f  DST/floor %.3f  dense/floor %.3f\n", md / mn, md / mf, mn / mf);
    const double cd = median(cpu_dst), cn = median(cpu_dense);
    std::printf("median CPU ms/step (process CPU time, robust to other jobs): DST %.3f  dense %.3f\n", cd, cn);
    dst.print("DST", s);
    dense.print("dense", s);
    double kept = 0, total = 0;
    dst.net.for_each_masked_layer([&](const auto& l, std::size_t) {
        kept += static_cast<double>(l.statistics().kept);
        total += static_cast<double>(l.statistics().total);
    });
    std::printf("DST model remaining after %zu steps: %.2f%%\n", s, 100.0 * kept / total);
    if (args.has("--json")) {
        ds::json_object j;
        j.add("dst_ms_per_step", md).add("dense_ms_per_step", mn).add("gemm_floor_ms_per_step", mf)
            .add("dst_cpu_ms_per_step", cd).add("dense_cpu_ms_per_step", cn)
            .add("batch", std::size_t{64}).add("threads", threads).add("blas_core", ds::blas_core_name());
        ds::write_file_atomically(args.text("--json", ""), j.str() + "\n");
    }
}

int main(int argc, char** argv) {
    examples::restart_with_fast_blas_kernels(argv, /*prefer_avx512=*/true);  // see docs/benchmarks.md
    return examples::exit_status_of([&] { run(argc, argv); });
}
