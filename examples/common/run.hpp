#pragma once
// The command-line program shared by the examples that train one model on (Fashion-)MNIST
// (lenet_300_100, lenet5_caffe) or CIFAR-10 (vgg16_cifar, wrn16_8_cifar): flags, data
// loading, the training run instantiated per network type, the final report and the JSON
// summary. An example provides its network types and a `dispatch` that maps the runtime
// policy choice to one of them.
#include <dynsparse/dynsparse.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "common/cli.hpp"

namespace examples {

namespace ds = dynsparse;

/// A model's training recipe: the defaults of its flags and its optimizer (the paper's
/// recipe for that model family), and help lines for flags the example handles itself.
struct recipe {
    const char* optimizer = "sgd";  ///< "sgd" (--momentum, --nesterov apply) or "adam"
    std::size_t epochs = 20;
    double lr = 0.01;
    std::size_t batch = 64;
    double alpha = 5e-4, weight_decay = 0;
    const char* schedule = "constant";
    const char* milestones = "";
    bool decay_thresholds = false;  ///< weight decay on DST thresholds (the CIFAR recipe)
    std::size_t eval_batch = 1000;
    std::string extra_help;
};

/// The paper's CIFAR-10 recipe (VGG-16 and WRN-16-8): SGD lr 0.1, x0.1 at epochs 80 and
/// 120, weight decay 1e-4 also on the thresholds, alpha 5e-6, 160 epochs.
inline recipe cifar10_recipe() {
    recipe r;
    r.epochs = 160;
    r.lr = 0.1;
    r.alpha = 5e-6;
    r.weight_decay = 1e-4;
    r.schedule = "multistep";
    r.milestones = "80,120";
    r.decay_thresholds = true;
    r.eval_batch = 100;
    return r;
}

enum class data_kind { mnist, cifar10 };

/// What differs between the examples' command lines.
struct model_info {
    const char* title;       ///< "LeNet-300-100"
    const char* json_name;   ///< "lenet_300_100"
    std::vector<std::string> granularities;  ///< --granularity choices, the default first
    const char* granularity_help;
    data_kind data = data_kind::mnist;
    bool prefer_avx512_blas = false;  ///< see ds::restart_with_fast_blas_kernels
};

struct run_options {
    std::size_t epochs, batch, threads, train_limit;
    float lr, momentum, alpha, weight_decay, val_fraction;
    double target_remaining;
    std::size_t log_every;
    std::string csv, save, resume, export_path;
    bool nesterov, reset_rule, quiet;
    std::uint64_t seed;
    std::string schedule, milestones, json, surrogate, granularity, optimizer;
    bool dense;
    bool decay_thresholds = false;
    std::size_t eval_batch = 1000;
    std::function<void(ds::matrix&, ds::rng&)> augment;  ///< training batches; empty = none
};

/// The learning-rate schedule named by --schedule / --milestones.
ds::lr_schedule make_schedule(const run_options& o);

struct run_result {
    std::vector<ds::epoch_report> history;
    ds::evaluation test;
    std::vector<ds::layer_report> layers;
    double wall_seconds = 0;
    float final_alpha = 0;
};

/// The optimizer of the recipe, from the flags (Adam takes only --weight-decay).
template <class Opt>
Opt make_optimizer(const run_options& o) {
    if constexpr (std::is_same_v<Opt, ds::adam>) {
        ds::adam::options a;
        a.weight_decay = o.weight_decay;
        return ds::adam(a);
    } else {
        ds::sgd::options sgd_opts;
        sgd_opts.momentum = o.momentum;
        sgd_opts.nesterov = o.nesterov;
        sgd_opts.weight_decay = o.weight_decay;
        sgd_opts.decay_thresholds = o.decay_thresholds;
        return ds::sgd(sgd_opts);
    }
}

/// The only code instantiated per network type: build, train, evaluate.
template <class Net, class Opt = ds::sgd>
run_result train(const run_options& o, const ds::dataset& train_set, const ds::dataset& eval_set,
                 const ds::dataset& test_set, bool eval_is_test) {
    if (!o.export_path.empty() && !ds::ExportableNetwork<Net>)
        throw std::invalid_argument("--export: the sparse inference engine has no kernels for a "
                                    "layer of this network yet (residual blocks, or a batch norm "
                                    "that does not directly follow a convolution or dense layer)");
    // [train]
    Net net;
    net.initialize(o.seed);
    for (const auto& layer : ds::masked_layers(net)) layer.set_reset_rule(o.reset_rule);

    ds::train_config cfg;
    cfg.eval_batch_size = o.eval_batch;
    cfg.augment = o.augment;
    cfg.epochs = o.epochs;
    cfg.batch_size = o.batch;
    cfg.alpha = o.dense ? 0.0f : o.alpha;
    cfg.schedule = make_schedule(o);
    cfg.seed = o.seed;
    cfg.progress = !o.quiet;
    cfg.log = &std::cout;
    ds::trainer<Net, ds::softmax_cross_entropy, Opt> trainer(net, {}, make_optimizer<Opt>(o), cfg);
    // [train]
    std::cout << "network:\n" << Net::describe();

    if (o.target_remaining > 0) {
        if (o.dense) throw std::invalid_argument("--target-remaining needs DST (not --dense)");
        ds::target_remaining_options t;
        t.target = o.target_remaining;
        ds::attach_target_remaining(trainer, t, train_set.size());
        std::cout << "target-sparsity mode: remaining ratio " << o.target_remaining
                  << ", alpha adapted from " << trainer.alpha() << "\n";
    }
    std::unique_ptr<ds::csv_log> csv;
    if (!o.csv.empty()) {
        csv = std::make_unique<ds::csv_log>(o.csv, eval_is_test ? "test" : "validation",
                                            o.log_every);
        csv->attach(trainer);
    }
    if (!o.resume.empty()) {
        ds::load_checkpoint(trainer, o.resume);
        std::cout << "resumed from " << o.resume << " after epoch " << trainer.epoch() << "\n";
        if (trainer.epoch() >= o.epochs)
            throw std::invalid_argument(o.resume + " has already trained " +
                                        std::to_string(trainer.epoch()) +
                                        " epochs: ask for more with --epochs");
    }
    const std::size_t steps_per_epoch = (train_set.size() + o.batch - 1) / o.batch;

    run_result r;
    const auto start = std::chrono::steady_clock::now();
    r.history = trainer.fit(train_set, eval_set, [&](const ds::epoch_report& e) {
        if (csv) csv->record_epoch(trainer.masked_layers(), e, steps_per_epoch);
        if (!o.save.empty()) ds::save_checkpoint(trainer, o.save);
    });
    r.final_alpha = trainer.alpha();
    r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    r.test = eval_is_test ? r.history.back().eval : trainer.evaluate(test_set);
    r.layers = ds::layer_reports(trainer.masked_layers());
    if (!o.export_path.empty()) {
        if constexpr (ds::ExportableNetwork<Net>) {
            const ds::sparse_model model = ds::export_sparse(net);
            ds::save_sparse_model(model, o.export_path);
            std::cout << "exported " << o.export_path << ": " << model.summary();
        }
    }
    return r;
}

/// The --help text; the model's name, data, recipe and granularity choices are filled in.
std::string usage_text(const model_info& m, const recipe& d = {});

/// Prints the final report and writes the JSON summary.
void report(const model_info& m, const run_options& o, const run_result& r, bool eval_is_test);

/// An example's choice of network: trains the network type that the options name.
using dispatch_fn = run_result (*)(const run_options& o, const ds::dataset& train_set,
                                   const ds::dataset& eval_set, const ds::dataset& test_set,
                                   bool eval_is_test);

/// The whole program: parse the flags, load the data, train the network chosen by
/// `dispatch(options, train, eval, test, eval_is_test)`, report. Returns the exit code.
int run_main(int argc, char** argv, const model_info& m, dispatch_fn dispatch, const recipe& d = {});

}  // namespace examples
