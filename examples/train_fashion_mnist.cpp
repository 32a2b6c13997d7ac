// The whole loop in one file: a DST network type, Fashion-MNIST, the trainer with an
// epoch callback that saves a checkpoint, export to a sparse model, and inference with
// the exported model.
//
//   train_fashion_mnist [DATA_DIR] [EPOCHS]
//
// DATA_DIR holds the four Fashion-MNIST IDX files, plain or gzip (default: where Debian's
// dataset-fashion-mnist package puts them). EPOCHS defaults to 20, the paper's. Writes
// lenet_300_100.ckpt and lenet_300_100.dsm to the current directory. The command-line
// program `lenet_300_100` (examples/cli/) trains the same network with every option.
#include <dynsparse/dynsparse.hpp>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ds = dynsparse;

static std::size_t parse_epochs(const std::string& text) {
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos || text.size() > 7)
        throw std::invalid_argument("EPOCHS must be a whole number of epochs up to 1000000, got '" + text + "'");
    return std::stoul(text);
}

// --help, and arguments that are not a directory and a number of epochs.
static bool answered_help(int argc, char** argv) {
    if (argc > 1 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h")) {
        std::printf("usage: train_fashion_mnist [DATA_DIR] [EPOCHS]\n"
                    "Trains LeNet-300-100 with DST on Fashion-MNIST, writes lenet_300_100.ckpt and .dsm.\n");
        return true;
    }
    if (argc > 3 || (argc > 1 && argv[1][0] == '-'))
        throw std::invalid_argument(std::string("unknown argument '") + argv[argc > 3 ? 3 : 1] +
                                    "' (usage: train_fashion_mnist [DATA_DIR] [EPOCHS])");
    return false;
}

// [whole-loop]
// LeNet-300-100 with DST's masked layers: DST's long-tailed surrogate, one threshold per
// neuron (template arguments of masked_dense choose others).
struct lenet_300_100 : ds::sequential<ds::input<784>,
                                      ds::masked_dense<300>, ds::relu,
                                      ds::masked_dense<100>, ds::relu,
                                      ds::masked_dense<10>> {};

int main(int argc, char** argv) try {
    if (answered_help(argc, argv)) return 0;
    const std::string data_dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
    const std::size_t epochs = argc > 2 ? parse_epochs(argv[2]) : 20;

    // Data: standardised with the training set's mean and standard deviation.
    ds::train_test data = ds::load_mnist_directory(data_dir);
    ds::standardize(data);

    // Network and trainer: batch 64, learning rate 0.01, alpha 5e-4 (train_config's
    // defaults), SGD with momentum 0.9.
    lenet_300_100 net;
    net.initialize(/*seed=*/1);
    ds::train_config cfg;
    cfg.epochs = epochs;
    ds::trainer<lenet_300_100> trainer(net, {}, ds::sgd({.momentum = 0.9f}), cfg);

    // After each epoch: report, and save a checkpoint (ds::load_checkpoint resumes from it).
    trainer.fit(data.train, data.test, [&](const ds::epoch_report& e) {
        std::printf("epoch %2zu: loss %.4f, test accuracy %.2f%%, %.2f%% of the weights kept\n",
                    e.epoch, e.train_loss, e.eval.accuracy, 100 * e.remaining);
        ds::save_checkpoint(trainer, "lenet_300_100.ckpt");
    });

    // Export: masks applied, thresholds and dead units dropped; the file has no types.
    ds::save_sparse_model(ds::export_sparse(net), "lenet_300_100.dsm");

    // Sparse inference: load the model and classify the test set with it.
    ds::sparse_model model = ds::load_sparse_model("lenet_300_100.dsm");
    const ds::matrix& scores = model.run(data.test.images);
    const std::size_t classes = model.output_size();
    std::size_t correct = 0;
    for (std::size_t i = 0; i < data.test.size(); ++i) {
        const float* row = scores.data() + i * classes;
        correct += std::max_element(row, row + classes) - row == data.test.labels[i];
    }
    std::printf("sparse model: %zu non-zero weights, test accuracy %.2f%%\n", model.nonzeros(),
                100.0 * static_cast<double>(correct) / static_cast<double>(data.test.size()));
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
}
// [whole-loop]
