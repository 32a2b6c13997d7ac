// Sparse inference against the dense BLAS path, measured in the same run (thread CPU time,
// medians).
//
//   sparse_inference_bench density [--reps N]
//       the sparse and the dense (BLAS) kernel of one 300 x 784 dense layer, of LeNet-5's two
//       convolutions (1 -> 20 on 28 x 28, 20 -> 50 on 12 x 12, 5 x 5) and of one LSTM
//       128 -> 128 over 28 steps, at densities from 1% to 100%, batch 1 and 64: where the
//       sparse kernel stops winning (sparse_density_threshold).
//   sparse_inference_bench lenet300 CHECKPOINT [--data DIR]
//   sparse_inference_bench lenet5 CHECKPOINT [--data DIR]
//       loads a checkpoint written by examples/lenet_300_100 or lenet5_caffe --save (default
//       policies), exports it, and compares on the whole test set the predictions of the
//       masked network and of the exported model; then batch-1 latency and batch-64
//       throughput of the sparse engine against two dense BLAS paths with the same weights
//       at full shape: the library's dense network (dense / conv2d layers, GEMM at every
//       batch size) and the engine's dense kernels (export_sparse with remove_dead_units
//       off, kernel_choice::dense: GEMV at batch 1, GEMM otherwise); and file sizes.
//   sparse_inference_bench lstm_a CHECKPOINT [--data DIR]
//       the same for LSTM-a (examples/lstm_mnist --save, default policies, dense head,
//       Adam), with batch-100 throughput (the paper's batch) instead of batch 64.
#include <dynsparse/dynsparse.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "../examples/cli/cli.hpp"
#include "../examples/cli/machine.hpp"
#include "common/step_timing.hpp"

namespace ds = dynsparse;
using bench::median;

namespace {

struct lenet_300_100 : ds::sequential<ds::input<784>, ds::masked_dense<300>, ds::relu, ds::masked_dense<100>, ds::relu,
                                      ds::masked_dense<10>> {};
struct lenet_300_100_dense : ds::sequential<ds::input<784>, ds::dense<300>, ds::relu, ds::dense<100>, ds::relu,
                                            ds::dense<10>> {};
struct lenet5_caffe_dense : ds::sequential<ds::input<1, 28, 28>, ds::conv2d<20, 5>, ds::relu, ds::max_pool2d<2>,
                                           ds::conv2d<50, 5>, ds::relu, ds::max_pool2d<2>, ds::flatten, ds::dense<500>,
                                           ds::relu, ds::dense<10>> {};
struct lstm_a : ds::sequential<ds::sequence_input<28, 28>, ds::masked_lstm<128>, ds::masked_lstm<128>, ds::last_step,
                               ds::dense<10>> {};
struct lstm_a_dense : ds::sequential<ds::sequence_input<28, 28>, ds::lstm<128>, ds::lstm<128>, ds::last_step,
                                     ds::dense<10>> {};
struct lenet5_caffe : ds::sequential<ds::input<1, 28, 28>, ds::masked_conv2d<20, 5>, ds::relu, ds::max_pool2d<2>,
                                     ds::masked_conv2d<50, 5>, ds::relu, ds::max_pool2d<2>, ds::flatten,
                                     ds::masked_dense<500>, ds::relu, ds::masked_dense<10>> {};

/// CPU seconds of this thread: on the shared machine (load average near 10 on 2 cores
/// while these figures were taken) wall-clock times of runs longer than a scheduler slice
/// were inflated up to 10x by preemption; the thread's CPU time is not.
double thread_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

/// Median thread CPU seconds of f() over `reps` timings of `calls` calls each (per call),
/// after a warm-up. Reading the thread CPU clock is a system call on the development VM
/// (~1.2 us, measured by clock_read_seconds), so microsecond-long calls are timed in groups.
template <class F>
double time_median(F&& f, std::size_t reps, std::size_t calls = 1) {
    f();
    std::vector<double> t;
    for (std::size_t i = 0; i < reps; ++i) {
        const double t0 = thread_seconds();
        for (std::size_t c = 0; c < calls; ++c) f();
        t.push_back((thread_seconds() - t0) / static_cast<double>(calls));
    }
    return median(t);
}

/// Median of an empty interval of the thread CPU clock: what one timing adds.
double clock_read_seconds() {
    std::vector<double> t;
    for (int i = 0; i < 1001; ++i) {
        const double t0 = thread_seconds();
        t.push_back(thread_seconds() - t0);
    }
    return median(t);
}

/// One layer: dense 784-300, LeNet-5's second convolution (20->50 5x5 on 12x12), its first
/// (`first_conv`: 1->20 5x5 on 28x28), or an LSTM 128 -> 128 over 28 steps.
ds::sparse_model one_layer(ds::op_kind kind, double density, ds::rng& gen, bool first_conv = false) {
    ds::sparse_op op;
    op.kind = kind;
    std::size_t rows = 0, cols = 0;
    if (kind == ds::op_kind::dense) {
        op.in = {784, 1, 1};
        op.out = {300, 1, 1};
        rows = 300, cols = 784;
    } else if (kind == ds::op_kind::lstm) {  // LSTM-a's second layer
        op.in = {28, 128, 1};
        op.out = {28, 128, 1};
        rows = 512, cols = 256;
    } else if (first_conv) {
        op.in = {1, 28, 28};
        op.out = {20, 24, 24};
        op.kernel = 5;
        op.stride = 1;
        rows = 20, cols = 25;
    } else {
        op.in = {20, 12, 12};
        op.out = {50, 8, 8};
        op.kernel = 5;
        op.stride = 1;
        rows = 50, cols = 500;
    }
    op.csr.rows = rows;
    op.csr.cols = cols;
    op.dense.resize(rows * cols);
    for (auto& v : op.dense) v = gen.uniform01() < density ? gen.uniform(-1.0f, 1.0f) : 0.0f;
    op.bias.assign(rows, 0.1f);
    ds::sparse_model m;
    m.input = op.in;
    m.ops.push_back(std::move(op));
    ds::compress(m);
    m.prepare(true);
    return m;
}

int density_sweep(std::size_t reps) {
    std::printf("| layer | batch | density | sparse (us) | dense BLAS (us) | dense / sparse |\n|---|---|---|---|---|---|\n");
    ds::rng gen(1);
    for (int layer = 0; layer < 4; ++layer) {
        const ds::op_kind kind = layer == 0 ? ds::op_kind::dense : layer == 3 ? ds::op_kind::lstm : ds::op_kind::conv;
        const bool first_conv = layer == 1;
        const char* name = layer == 0   ? "dense 784-300"
                           : layer == 1 ? "conv 1->20 5x5 on 28x28"
                           : layer == 2 ? "conv 20->50 5x5 on 12x12"
                                        : "lstm 128->128, 28 steps";
        for (std::size_t batch : {1, 64}) {
            double crossover = -1;
            for (double d : {0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9, 1.0}) {
                ds::sparse_model m = one_layer(kind, d, gen, first_conv);
                ds::matrix x = ds::make_matrix(batch, m.input_size());
                for (auto& v : x) v = gen.uniform(-1.0f, 1.0f);
                const double ts = time_median([&] { m.run(x, ds::kernel_choice::sparse); }, reps);
                const double td = time_median([&] { m.run(x, ds::kernel_choice::dense); }, reps);
                std::printf("| %s | %zu | %.2f | %.1f | %.1f | %.2f |\n", name, batch, d, ts * 1e6, td * 1e6, td / ts);
                if (crossover < 0 && ts > td) crossover = d;
            }
            if (crossover < 0)
                std::printf("|  | %zu | sparse faster at every density | | | |\n", batch);
            else
                std::printf("|  | %zu | sparse slower from density %.2f on | | | |\n", batch, crossover);
        }
    }
    return 0;
}

/// Copies the exported (unpruned) weights into the plain dense network of the same shape.
template <class Dense>
void copy_weights(const ds::sparse_model& full, Dense& dense) {
    std::vector<const std::vector<float>*> sources;
    for (const auto& op : full.ops)
        if (op.has_weights()) {
            sources.push_back(&op.dense);
            sources.push_back(&op.bias);
        }
    std::size_t i = 0;
    dense.for_each_parameter([&](const ds::parameter& p) {
        if (i >= sources.size() || sources[i]->size() != p.value.size())
            throw std::logic_error("copy_weights: the dense network does not match the model");
        std::copy(sources[i]->begin(), sources[i]->end(), p.value.begin());
        ++i;
    });
}

template <class Net, class DenseNet, class Opt = ds::sgd>
int compare(const char* title, const std::string& checkpoint, const std::string& data_dir, std::size_t reps,
            std::size_t nb = 64) {
    Net net;
    ds::trainer<Net, ds::softmax_cross_entropy, Opt> tr(net, {}, Opt(), {});
    ds::load_checkpoint(tr, checkpoint);
    ds::sparse_model model = ds::export_sparse(net);
    ds::sparse_model dense = ds::export_sparse(net, {.remove_dead_units = false});
    dense.prepare(true);
    DenseNet dense_net;  // the library's dense layers: GEMM at every batch size
    copy_weights(dense, dense_net);
    const std::string model_bytes = ds::sparse_model_bytes(model);
    const auto ckpt_bytes = std::filesystem::file_size(checkpoint);
    std::size_t dense_params = 0;
    net.for_each_parameter([&](const ds::parameter& p) {
        if (p.kind != ds::parameter_kind::threshold) dense_params += p.value.size();
    });

    ds::train_test data = ds::load_mnist_directory(data_dir);
    ds::standardize(data);
    const ds::matrix& x = data.test.images;
    const std::size_t n = x.shape(0), classes = Net::output_shape::size;

    // Predictions on the whole test set, 1000 at a time.
    std::size_t same_argmax = 0, correct_net = 0, correct_model = 0;
    double max_diff = 0;
    ds::matrix xb;
    for (std::size_t first = 0; first < n; first += 1000) {
        const std::size_t count = std::min<std::size_t>(1000, n - first);
        ds::ensure_shape(xb, count, x.shape(1));
        std::copy(x.data() + first * x.shape(1), x.data() + (first + count) * x.shape(1), xb.data());
        const ds::matrix a = net.forward(xb, false);
        const ds::matrix& b = model.run(xb);
        for (std::size_t r = 0; r < count; ++r) {
            std::size_t ia = 0, ib = 0;
            for (std::size_t c = 0; c < classes; ++c) {
                if (a(r, c) > a(r, ia)) ia = c;
                if (b(r, c) > b(r, ib)) ib = c;
                max_diff = std::max(max_diff, static_cast<double>(std::fabs(a(r, c) - b(r, c))));
            }
            same_argmax += ia == ib;
            correct_net += ia == data.test.labels[first + r];
            correct_model += ib == data.test.labels[first + r];
        }
    }

    // Batch 1: one test sample after another; batch nb: consecutive batches.
    ds::matrix x1 = ds::make_matrix(1, x.shape(1)), x64 = ds::make_matrix(nb, x.shape(1));
    std::size_t next1 = 0, next64 = 0;
    auto fill1 = [&] {
        std::copy(x.data() + next1 * x.shape(1), x.data() + (next1 + 1) * x.shape(1), x1.data());
        next1 = (next1 + 1) % n;
    };
    auto fill64 = [&] {
        std::copy(x.data() + next64 * x.shape(1), x.data() + (next64 + nb) * x.shape(1), x64.data());
        next64 = (next64 + nb + nb <= n) ? next64 + nb : 0;
    };
    // Interleave the paths so load changes on the shared machine hit all of them. Batch 1:
    // each timing covers batch1_calls runs on the same sample (one clock read per group).
    constexpr std::size_t batch1_calls = 10;
    std::vector<double> s1, d1, n1, g1, s64, d64, n64, g64;
    for (std::size_t rep = 0; rep < reps; ++rep) {
        fill1();
        s1.push_back(time_median([&] { model.run(x1); }, 5, batch1_calls));
        d1.push_back(time_median([&] { dense.run(x1, ds::kernel_choice::dense); }, 5, batch1_calls));
        n1.push_back(time_median([&] { net.forward(x1, false); }, 5, batch1_calls));
        g1.push_back(time_median([&] { dense_net.forward(x1, false); }, 5, batch1_calls));
        if (rep % 4 == 0) {
            fill64();
            s64.push_back(time_median([&] { model.run(x64); }, 3));
            d64.push_back(time_median([&] { dense.run(x64, ds::kernel_choice::dense); }, 3));
            n64.push_back(time_median([&] { net.forward(x64, false); }, 3));
            g64.push_back(time_median([&] { dense_net.forward(x64, false); }, 3));
        }
    }
    const double ts1 = median(s1), td1 = median(d1), tn1 = median(n1);
    const double ts64 = median(s64), td64 = median(d64), tn64 = median(n64);
    const double tg1 = median(g1), tg64 = median(g64);
    // Back to back: one path many times in a row (caches hold only its data), as a server
    // answering single requests would run.
    fill1();
    const double bs1 = time_median([&] { model.run(x1); }, reps, batch1_calls),
                 bg1 = time_median([&] { dense_net.forward(x1, false); }, reps, batch1_calls);

    std::printf("## %s (%s)\n\n", title, checkpoint.c_str());
    std::printf("exported model: %s", model.summary().c_str());
    std::printf("BLAS kernels: %s\n", ds::blas_core_name().c_str());
    std::printf("thread CPU time, medians; batch-1 timings cover %zu runs each (one clock read: %.2f us)\n\n",
                batch1_calls, clock_read_seconds() * 1e6);
    std::printf("| | value |\n|---|---|\n");
    std::printf("| test accuracy, masked network | %.2f%% |\n", 100.0 * static_cast<double>(correct_net) / n);
    std::printf("| test accuracy, exported model | %.2f%% |\n", 100.0 * static_cast<double>(correct_model) / n);
    std::printf("| same argmax | %zu of %zu |\n", same_argmax, n);
    std::printf("| largest logit difference | %.3g |\n", max_diff);
    std::printf("| batch-1 latency (us): sparse engine / dense network (dense layers, GEMM) / "
                "engine's dense path (GEMV) / masked network forward | %.1f / %.1f / %.1f / %.1f |\n",
                ts1 * 1e6, tg1 * 1e6, td1 * 1e6, tn1 * 1e6);
    std::printf("| **batch-1 speed-up** over the dense network (GEMM) / over GEMV | **%.2fx** / %.2fx |\n",
                tg1 / ts1, td1 / ts1);
    std::printf("| batch-1 latency back to back (us): sparse engine / dense network; speed-up | %.1f / %.1f; %.2fx |\n",
                bs1 * 1e6, bg1 * 1e6, bg1 / bs1);
    const double b = static_cast<double>(nb);
    std::printf("| batch-%zu throughput (samples/s): sparse engine / dense network (GEMM) / engine's dense "
                "path (GEMM) / masked network forward | %.0f / %.0f / %.0f / %.0f |\n",
                nb, b / ts64, b / tg64, b / td64, b / tn64);
    std::printf("| **batch-%zu throughput gain** over the dense network / over the engine's dense path | "
                "**%.2fx** / %.2fx |\n", nb, tg64 / ts64, td64 / ts64);
    std::printf("| exported file / checkpoint (bytes) | %zu / %zu = **%.3fx** |\n", model_bytes.size(),
                static_cast<std::size_t>(ckpt_bytes), static_cast<double>(model_bytes.size()) / ckpt_bytes);
    std::printf("| exported file / dense float32 weights and biases (bytes) | %zu / %zu = **%.3fx** |\n\n",
                model_bytes.size(), dense_params * 4, static_cast<double>(model_bytes.size()) / (dense_params * 4.0));
    return same_argmax == n ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
    examples::restart_with_fast_blas_kernels(argv);
    ds::set_blas_threads(1);
    try {
        const bool help = argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0);
        if (argc < 2 || help) {
            std::fprintf(help ? stdout : stderr,
                         "usage: %s density [--reps N] | lenet300 CKPT | lenet5 CKPT | lstm_a CKPT [--data DIR] [--reps N]\n",
                         argv[0]);
            return help ? 0 : 2;
        }
        const std::string mode = argv[1];
        std::string data = examples::default_fashion_mnist_directory.string();
        std::size_t reps = 0;
        for (int i = mode == "density" ? 2 : 3; i < argc; ++i) {
            const std::string a = argv[i];
            if ((a == "--data" || a == "--reps") && i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
            if (a == "--data") data = argv[++i];
            else if (a == "--reps") reps = examples::arguments::parse_count("--reps", argv[++i]);
            else throw std::invalid_argument("unknown option '" + a + "' (see --help)");
        }
        if (mode == "density") return density_sweep(reps ? reps : 51);
        if (argc < 3) throw std::invalid_argument(mode + " needs a checkpoint path");
        if (mode == "lenet300") return compare<lenet_300_100, lenet_300_100_dense>("LeNet-300-100", argv[2], data, reps ? reps : 2001);
        if (mode == "lenet5") return compare<lenet5_caffe, lenet5_caffe_dense>("LeNet-5-Caffe", argv[2], data, reps ? reps : 401);
        if (mode == "lstm_a")
            return compare<lstm_a, lstm_a_dense, ds::adam>("LSTM-a", argv[2], data, reps ? reps : 201, 100);
        throw std::invalid_argument("unknown mode '" + mode + "'");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
