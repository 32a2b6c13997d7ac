// Google Benchmark micro-benchmarks of the fully connected layers, one thread:
// dense vs masked forward+backward at several sizes and sparsities, and the two DST
// passes alone (mask, surrogate backward) for each surrogate.
//
//   build/bin/micro_masked_dense [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <dynsparse/dynsparse.hpp>

#include <cmath>

#include "../examples/cli/machine.hpp"

namespace ds = dynsparse;

namespace {

constexpr std::size_t batch = 64;

ds::matrix random_batch(std::size_t rows, std::size_t cols, std::uint64_t seed) {
    ds::rng gen(seed);
    ds::matrix m = ds::make_matrix(rows, cols);
    for (auto& v : m) v = gen.uniform(-1.0f, 1.0f);
    return m;
}

template <class L>
void forward_backward(benchmark::State& state, L& layer, std::size_t in, std::size_t out) {
    const ds::flush_denormals_scope ftz;
    const ds::matrix x = random_batch(batch, in, 1), dy = random_batch(batch, out, 2);
    ds::matrix y, dx;
    for (auto _ : state) {
        layer.forward(x, y, true);
        layer.backward(x, y, dy, &dx);
        benchmark::DoNotOptimize(dx.data());
    }
    // 2 flops per multiply-add: forward, weight gradient, input gradient.
    state.counters["GFLOP/s"] = benchmark::Counter(
        6.0 * batch * in * out, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

template <std::size_t In, std::size_t Out>
void bm_dense(benchmark::State& state) {
    ds::rng gen(3);
    ds::dense_layer<In, Out> layer;
    layer.initialize(gen);
    forward_backward(state, layer, In, Out);
}

/// state.range(0): the threshold in percent of the initial weight bound 1/sqrt(In), so
/// 0 keeps every weight, 90 keeps about 10% of them.
template <std::size_t In, std::size_t Out>
void bm_masked(benchmark::State& state) {
    ds::rng gen(3);
    ds::masked_dense_layer<In, Out, ds::long_tailed, ds::per_neuron> layer;
    layer.initialize(gen);
    layer.set_reset_rule(false);
    const float bound = 1.0f / std::sqrt(static_cast<float>(In));
    for (auto& t : layer.threshold()) t = static_cast<float>(state.range(0)) * 0.01f * bound;
    forward_backward(state, layer, In, Out);
    state.counters["kept_percent"] = 100.0 * layer.statistics().remaining();
}

template <class S>
void bm_mask_pass(benchmark::State& state) {
    const std::size_t rows = 300, cols = 784;
    const ds::matrix w = random_batch(rows, cols, 4);
    std::vector<float> t(rows, 0.3f), masked(rows * cols);
    for (auto _ : state)
        benchmark::DoNotOptimize(
            ds::detail::apply_mask<S, ds::per_neuron, false>(w.data(), t.data(), 0, rows, cols, masked.data()));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * rows * cols));
}

template <class S>
void bm_surrogate_backward(benchmark::State& state) {
    const std::size_t rows = 300, cols = 784;
    const ds::matrix w = random_batch(rows, cols, 5), g0 = random_batch(rows, cols, 6);
    std::vector<float> t(rows, 0.3f), gt(rows), shares(rows);
    ds::matrix g = g0;
    const ds::flush_denormals_scope ftz;
    for (auto _ : state) {
        state.PauseTiming();
        g = g0;  // fresh gradients each time, as in training
        state.ResumeTiming();
        // What a per-neuron masked layer runs: the rows (shared out between threads in
        // training), then the threshold shares in row order.
        ds::detail::mask_backward_rows<S, ds::per_neuron, false>(w.data(), t.data(), 0, rows, cols, g.data(),
                                                                 shares.data());
        ds::detail::subtract_row_shares<ds::per_neuron>(shares.data(), rows, cols, gt.data());
        benchmark::DoNotOptimize(gt.data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * rows * cols));
}

}  // namespace

BENCHMARK(bm_dense<784, 300>);
BENCHMARK(bm_masked<784, 300>)->Arg(0)->Arg(50)->Arg(90);
BENCHMARK(bm_dense<300, 100>);
BENCHMARK(bm_masked<300, 100>)->Arg(0)->Arg(90);
BENCHMARK(bm_dense<1024, 1024>);
BENCHMARK(bm_masked<1024, 1024>)->Arg(0)->Arg(90);
BENCHMARK(bm_mask_pass<ds::long_tailed>);
BENCHMARK(bm_surrogate_backward<ds::long_tailed>);
BENCHMARK(bm_surrogate_backward<ds::straight_through>);
BENCHMARK(bm_surrogate_backward<ds::sigmoid_surrogate<>>);

int main(int argc, char** argv) {
    examples::restart_with_fast_blas_kernels(argv);
    ds::set_threads(1);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
