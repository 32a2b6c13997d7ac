// Sparse inference: load a model exported by `lenet_300_100 --export PATH` (or
// lenet5_caffe, or lstm_mnist, whose model reads each image as a sequence of its 28
// rows), classify the Fashion-MNIST test set with it and time it (wall clock),
// next to the dense path: the same exported model (dead units already removed) with every
// layer on BLAS. benchmarks/sparse_inference_bench.cpp compares against the full-shape
// dense network instead.
//
// Shows: sparse_model (sparse/engine.hpp), the runtime counterpart of a trained network:
// no template parameters, loaded from a file; the engine picks a sparse or a dense kernel
// per layer by its density. ds::evaluate(model, dataset) (sparse/evaluate.hpp) gives its
// loss and accuracy; ds::predict / ds::predict_proba its classes and probabilities. A new
// layer kind joins by exporting itself (export_inference, see sparse/export.hpp) and adding
// its kernel to sparse_model::run (sparse/engine.hpp).
//
//   sparse_inference --model PATH [--data DIR] [--batch 64] [--reps 200]
#include <dynsparse/dynsparse.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <vector>

#include "cli/cli.hpp"
#include "cli/machine.hpp"

namespace ds = dynsparse;

namespace {

double seconds_per_run(ds::sparse_model& m, const ds::matrix& data, std::size_t batch, std::size_t reps,
                       ds::kernel_choice choice) {
    ds::matrix x = ds::make_matrix(batch, data.shape(1));
    const std::size_t n = data.shape(0), f = data.shape(1);
    std::vector<double> t;
    for (std::size_t r = 0; r < reps; ++r) {
        const std::size_t first = (r * batch) % (n - batch + 1);
        std::copy(data.data() + first * f, data.data() + (first + batch) * f, x.data());
        const auto t0 = std::chrono::steady_clock::now();
        m.run(x, choice);
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    examples::restart_with_fast_blas_kernels(argv);
    try {
        const examples::arguments args(argc, argv, {"--model", "--data", "--batch", "--reps"}, {"--help"});
        if (args.has("--help") || !args.has("--model")) {
            std::cout << "usage: sparse_inference --model PATH [--data DIR] [--batch 64] [--reps 200]\n"
                         "  PATH: a model written by lenet_300_100, lenet5_caffe or lstm_mnist --export PATH\n";
            return args.has("--help") ? 0 : 2;
        }
        ds::set_blas_threads(1);
        const std::size_t batch = args.count("--batch", 64);
        const std::size_t reps = args.count("--reps", 200);
        if (batch == 0) throw std::invalid_argument("--batch must be positive, got 0");
        if (reps == 0) throw std::invalid_argument("--reps must be positive, got 0");
        ds::sparse_model model = ds::load_sparse_model(args.text("--model", ""));
        std::cout << "model: " << model.summary();

        ds::train_test data = ds::load_mnist_directory(args.text("--data", examples::default_fashion_mnist_directory.string()));
        ds::standardize(data);  // the statistics the training run used
        if (data.test.features() != model.input_size())
            throw std::invalid_argument("the model takes " + std::to_string(model.input_size()) +
                                        " inputs, the data has " + std::to_string(data.test.features()));
        const ds::matrix& x = data.test.images;

        std::printf("\n%-22s %10s %16s   batch-%zu throughput\n", "path", "accuracy", "batch-1 latency", batch);
        double t1[2], tb[2];
        int i = 0;
        for (auto choice : {ds::kernel_choice::automatic, ds::kernel_choice::dense}) {
            const double acc = ds::evaluate(model, data.test, 1000, choice).accuracy;
            t1[i] = seconds_per_run(model, x, 1, reps * 10, choice);
            tb[i] = seconds_per_run(model, x, batch, reps, choice);
            std::printf("%-22s %9.2f%% %13.1f us %17.0f /s\n",
                        choice == ds::kernel_choice::dense ? "dense (BLAS)" : "sparse (by density)", acc, t1[i] * 1e6,
                        static_cast<double>(batch) / tb[i]);
            ++i;
        }
        std::printf("sparse speed-up: %.2fx at batch 1, %.2fx at batch %zu\n", t1[1] / t1[0], tb[1] / tb[0], batch);
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}
