// Speed of one DST training step (batch 64 by default) of the CIFAR-10 models, VGG-16 and
// WideResNet-16-8, on random CIFAR-shaped inputs (the step's cost does not depend on the
// pixel values), with a per-phase breakdown and the compute floor: the step's GEMM work
// (forward, weight gradient, input gradient of every masked layer; 2*m*n*k FLOPs each)
// divided by the rate OpenBLAS reaches on one large square sgemm in the same run.
//
//   cifar_step --model vgg16|wrn16_8 [--steps 5] [--warmup 1] [--batch 64] [--threads 1]
//              [--group-columns N] [--large-kernel-columns N] [--keep-unfolded-mib M]
//              [--json PATH]
//
// Compare with PyTorch: benchmarks/pytorch/dst_cifar.py (same models, same step), or run
// benchmarks/compare_pytorch_cifar.sh for both at 1 and 2 threads.
#include <dynsparse/dynsparse.hpp>

#include <cstdio>
#include <string>

#include "../examples/cli/cli.hpp"
#include "../examples/cli/machine.hpp"
#include "common/step_timing.hpp"

namespace ds = dynsparse;
using bench::clock_type;
using bench::median;
using bench::since;

namespace {

/// Multiply-add FLOPs of one sample's forward pass through the masked layers (2 per MAC),
/// and of the first masked layer alone (its input gradient is never computed).
template <class Net>
std::pair<double, double> forward_flops(const Net& net) {
    double total = 0, first = -1;
    net.for_each_masked_layer([&](const auto& layer, std::size_t) {
        using L = std::remove_cvref_t<decltype(layer)>;
        const double w = static_cast<double>(layer.weight().size());
        const double positions = L::output_shape::rank == 3
                                     ? static_cast<double>(L::output_shape::dims[1] * L::output_shape::dims[2])
                                     : 1.0;
        const double f = 2.0 * w * positions;
        if (first < 0) first = f;
        total += f;
    });
    return {total, first};
}

/// GFLOP/s of a 2048^3 sgemm (best of three).
double sgemm_rate() {
    const std::size_t n = 2048;
    std::vector<float> a(n * n, 0.01f), b(n * n, 0.5f), c(n * n, 0.0f);
    double best = 1e30;
    for (int i = 0; i < 3; ++i) {
        const auto t0 = clock_type::now();
        ds::gemm(ds::transpose::no, ds::transpose::no, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
        best = std::min(best, since(t0));
    }
    return 2.0 * static_cast<double>(n * n * n) / best * 1e-9;
}

template <class Net>
int run(const char* name, const examples::arguments& args) {
    const std::size_t steps = args.count("--steps", 5), warmup = args.count("--warmup", 1);
    const std::size_t batch = args.count("--batch", 64);
    const int threads = static_cast<int>(args.count("--threads", 1));
    const ds::flush_denormals_scope ftz;  // as the trainer does
    auto dst = std::make_unique<bench::phased<Net>>(5e-6f);
    ds::rng gen(1);
    ds::matrix x = ds::make_matrix(batch, 3072);
    for (auto& v : x) v = gen.uniform(-2.0f, 2.0f);
    std::vector<std::uint8_t> y(batch);
    for (auto& l : y) l = static_cast<std::uint8_t>(gen.below(10));
    for (std::size_t i = 0; i < warmup; ++i) dst->step(x, y);
    std::fill(std::begin(dst->t), std::end(dst->t), 0.0);
    std::vector<double> ms;
    for (std::size_t i = 0; i < steps; ++i) ms.push_back(1e3 * dst->step(x, y));
    const double med = median(ms);
    const auto [fwd, first] = forward_flops(dst->net);
    const double step_gflop = static_cast<double>(batch) * (3.0 * fwd - first) * 1e-9;
    const double rate = sgemm_rate();
    const double floor_ms = step_gflop / rate * 1e3;
    std::printf("%s DST step, batch %zu, %d thread(s), BLAS %s: median %.1f ms over %zu steps "
                "(min %.1f, max %.1f)\n",
                name, batch, threads, ds::blas_core_name().c_str(), med, ms.size(),
                *std::min_element(ms.begin(), ms.end()), *std::max_element(ms.begin(), ms.end()));
    std::printf("GEMM work %.1f GFLOP per step (forward %.3f GFLOP per sample); sgemm 2048^3 %.1f "
                "GFLOP/s -> compute floor %.1f ms; step / floor %.2f\n",
                step_gflop, fwd * 1e-9, rate, floor_ms, med / floor_ms);
    dst->print("DST", steps);
    if (args.has("--json")) {
        ds::json_object j;
        j.add("model", std::string(name)).add("dst_ms_per_step", med).add("step_ms", ms)
            .add("floor_ms_per_step", floor_ms).add("step_gflop", step_gflop).add("sgemm_gflops", rate)
            .add("batch", batch).add("threads", threads).add("blas_core", ds::blas_core_name())
            .add("group_columns", ds::detail::conv_tuning().group_columns)
            .add("large_kernel_group_columns", ds::detail::conv_tuning().large_kernel_group_columns);
        ds::write_file_atomically(args.text("--json", ""), j.str() + "\n");
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    examples::restart_with_fast_blas_kernels(argv, /*prefer_avx512=*/true);
    try {
        const examples::arguments args(
            argc, argv, {"--model", "--steps", "--warmup", "--batch", "--threads", "--group-columns", "--large-kernel-columns", "--keep-unfolded-mib",
             "--json"}, {},
            "usage: cifar_step --model vgg16|wrn16_8 [--steps 5] [--warmup 1] [--batch 64] [--threads 1]\n"
            "                  [--group-columns N] [--large-kernel-columns N] [--keep-unfolded-mib M]\n"
            "                  [--json PATH]\n"
            "Speed of one DST training step of a CIFAR-10 model on random inputs.\n");
        ds::set_threads(static_cast<int>(args.count("--threads", 1)));
        if (args.has("--group-columns"))
            ds::detail::conv_tuning().group_columns = args.count("--group-columns", 64);
        if (args.has("--large-kernel-columns"))
            ds::detail::conv_tuning().large_kernel_group_columns = args.count("--large-kernel-columns", 256);
        if (args.has("--keep-unfolded-mib"))
            ds::detail::conv_tuning().keep_unfolded_bytes = args.count("--keep-unfolded-mib", 64) << 20;
        const std::string model = args.choice("--model", "vgg16", {"vgg16", "wrn16_8"});
        if (model == "wrn16_8") return run<ds::models::wrn16_8<>>("WRN-16-8", args);
        return run<ds::models::vgg16_cifar<>>("VGG-16", args);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
