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

#include "cli/cli.hpp"
#include "cli/machine.hpp"

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
    bool accept_recipe_change = false;  ///< --accept-recipe-change
    std::size_t stop_after = 0;  ///< --stop-after: last epoch of this process (0 = --epochs)
    std::string products = "auto";  ///< --products: masked layers' forward / input-gradient products
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
    bool prefer_avx512_blas = false;  ///< see restart_with_fast_blas_kernels (cli/machine.hpp)
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
    std::string regulariser = "exp_decay", reset_policy = "one_percent";  ///< --regulariser, --reset-rule
    bool dense;
    bool decay_thresholds = false;
    bool force = false;  ///< --force: replace output files that are not ours
    std::size_t eval_batch = 1000;
    bool accept_recipe_change = false;  ///< --accept-recipe-change
    std::size_t stop_after = 0;  ///< --stop-after: last epoch of this process (0 = --epochs)
    std::string products = "auto";  ///< --products: masked layers' forward / input-gradient products
    std::function<void(ds::matrix&, ds::rng&)> augment;  ///< training batches; empty = none
};

/// Most threads --threads accepts.
inline constexpr std::size_t max_threads = 256;

/// "80,120" -> {80, 120}; anything else (not digits, empty items, not strictly
/// increasing) is an error naming --milestones.
std::vector<std::size_t> parse_milestones(const std::string& text);

/// The flag values checked against their ranges (names the flag) and the output paths
/// checked (ds::check_output_path), before any data is loaded or any epoch trained.
void validate_options(const run_options& o);

/// The learning-rate schedule named by --schedule / --milestones.
ds::lr_schedule make_schedule(const run_options& o);

struct run_result {
    std::vector<ds::epoch_report> history;  ///< this process's epochs (after a --resume: the rest)
    std::size_t resumed_after_epoch = 0;    ///< the checkpoint's epoch, 0 without --resume
    std::vector<ds::epoch_summary> run;     ///< every epoch of the run, those before --resume too
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

/// The trainer's configuration from the flags.
ds::train_config make_config(const run_options& o);

/// What the training run needs from the network type, as plain functions over the
/// trainer's and network's addresses, so that the run itself (run_training, in the
/// support library) is compiled once for all examples.
struct network_session {
    void* net;
    std::string description;      ///< Net::describe()
    ds::checkpoint_view checkpoint;  ///< for --save and --resume
    /// The network exported for the sparse inference engine; null when the engine cannot
    /// run this network.
    ds::sparse_model (*export_model)(void* net) = nullptr;
};

/// Target mode, CSV log, resume, the epochs with a checkpoint after each, the test-set
/// evaluation, the sparsity report and the export (support library; for SGD and Adam).
template <class Opt>
run_result run_training(const run_options& o, ds::training_loop<ds::softmax_cross_entropy, Opt>& trainer,
                        const network_session& session, const ds::dataset& train_set,
                        const ds::dataset& eval_set, const ds::dataset& test_set, bool eval_is_test);
extern template run_result run_training<ds::sgd>(const run_options&,
                                                 ds::training_loop<ds::softmax_cross_entropy, ds::sgd>&,
                                                 const network_session&, const ds::dataset&,
                                                 const ds::dataset&, const ds::dataset&, bool);
extern template run_result run_training<ds::adam>(const run_options&,
                                                  ds::training_loop<ds::softmax_cross_entropy, ds::adam>&,
                                                  const network_session&, const ds::dataset&,
                                                  const ds::dataset&, const ds::dataset&, bool);

/// The only code instantiated per network type: build the network and its trainer, and
/// hand them to run_training.
template <class Net, class Opt = ds::sgd>
run_result train(const run_options& o, const ds::dataset& train_set, const ds::dataset& eval_set,
                 const ds::dataset& test_set, bool eval_is_test) {
    if (!o.export_path.empty() && !ds::ExportableNetwork<Net>)
        throw std::invalid_argument("--export: the sparse inference engine has no kernels for a "
                                    "layer of this network yet (residual blocks, or a batch norm "
                                    "that does not directly follow a convolution or dense layer)");
    // Images declared with another shape than the network's input are an error, not a
    // silent reinterpretation of the same pixels.
    using in_shape = typename Net::input_shape;
    if constexpr (in_shape::rank == 3)
        ds::check_image_shape(train_set, in_shape::dims[1], in_shape::dims[2], "the network");
    else if constexpr (in_shape::rank == 2)
        ds::check_image_shape(train_set, in_shape::dims[0], in_shape::dims[1], "the network");
    // --regulariser and --reset-rule name compile-time policies: one trainer type each.
    auto with = [&]<class R, class Rule>() {
        // [train]
        Net net;
        net.initialize(o.seed);
        ds::trainer<Net, ds::softmax_cross_entropy, Opt, R, Rule> trainer(net, {}, make_optimizer<Opt>(o),
                                                                         make_config(o));
        // [train]
        ds::set_product_mode(net, ds::parse_product_mode(o.products));
        network_session s{&net, Net::describe(), ds::checkpoint_view_of(trainer)};
        if constexpr (ds::ExportableNetwork<Net>)
            s.export_model = [](void* n) { return ds::export_sparse(*static_cast<Net*>(n)); };
        return run_training<Opt>(o, trainer, s, train_set, eval_set, test_set, eval_is_test);
    };
    auto with_rule = [&]<class R>() {
        if (o.reset_policy == "never") return with.template operator()<R, ds::never_reset>();
        if (o.reset_policy == "no_late_reset") return with.template operator()<R, ds::no_late_reset>();
        return with.template operator()<R, ds::one_percent>();
    };
    if (o.regulariser == "layer_mean_exp_decay") return with_rule.template operator()<ds::layer_mean_exp_decay>();
    if (o.regulariser == "linear_pull") return with_rule.template operator()<ds::linear_pull>();
    return with_rule.template operator()<ds::exp_decay>();
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
