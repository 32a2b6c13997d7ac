// The non-template part of the examples' command-line program (cli/run.hpp), compiled
// once into the examples' support library instead of into every example.
#include "cli/run.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef DYNSPARSE_WITH_MPI
#include <dynsparse/distributed/mpi.hpp>
#endif

namespace examples {

// Data-parallel runs (built with -DDYNSPARSE_WITH_MPI=ON, started by mpirun or with
// --distributed): every rank trains its share of each global batch; rank 0 alone prints,
// writes files and reads --resume. See "Distributed training" in docs/user-guide.md.
namespace {
#ifdef DYNSPARSE_WITH_MPI
struct distributed_run {
    std::unique_ptr<ds::distributed::mpi_environment> env;
    std::unique_ptr<ds::distributed::mpi_communicator> world;
};
distributed_run& distributed() {
    static distributed_run d;
    return d;
}
bool started_by_mpirun() {
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
        if (std::getenv(v) != nullptr) return true;
    return false;
}
#endif
/// The number of processes of the run (1 without MPI).
std::size_t world_size() {
#ifdef DYNSPARSE_WITH_MPI
    if (distributed().world) return distributed().world->size();
#endif
    return 1;
}
/// This process's rank (0 without MPI).
std::size_t process_rank() {
#ifdef DYNSPARSE_WITH_MPI
    if (distributed().world) return distributed().world->rank();
#endif
    return 0;
}
}  // namespace

static std::string number_text(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", v);
    return b;
}

/// The --help text; the model's name, data, recipe and granularity choices are filled in.
std::string usage_text(const model_info& m, const recipe& d) {
    const std::string optimizer = std::string(d.optimizer) == "adam" ? "Adam" : "SGD";
    const bool cifar = m.data == data_kind::cifar10;
    std::string u = std::string("Train ") + m.title + " with Dynamic Sparse Training on " +
                    (cifar ? "CIFAR-10" : "(Fashion-)MNIST") + ".\n" +
                    (cifar ? "\n  --data DIR           CIFAR-10 binary directory (data_batch_1.bin ... "
                             "test_batch.bin;\n                       default ./cifar-10-batches-bin)\n"
                           : "\n  --data DIR           MNIST-format directory (default "
                             "/usr/share/datasets/fashion-mnist)\n") +
                    "  --epochs N           training epochs (" + std::to_string(d.epochs) + ")\n" +
                    "  --batch N            batch size (" + std::to_string(d.batch) + ")\n" +
                    "  --lr X               " + optimizer + " learning rate (" + number_text(d.lr) + ")\n" + R"(  --momentum X         SGD momentum (0.9)
  --nesterov           Nesterov momentum
)" + "  --weight-decay X     weight decay on weights, biases and batch-norm parameters (" +
                    number_text(d.weight_decay) + ")\n" +
                    "  --schedule S         constant|cosine|multistep (" + d.schedule + ")\n" +
                    "  --milestones A,B     epochs at which multistep multiplies the rate by 0.1" +
                    (*d.milestones ? std::string(" (") + d.milestones + ")" : std::string()) + "\n" +
                    "  --alpha X            sparse regulariser alpha * sum exp(-t) (" + number_text(d.alpha) +
                    ")\n" +
                    (d.decay_thresholds ? "  --no-threshold-decay do not apply weight decay to the thresholds "
                                          "(applied by default, as in the reference CIFAR setup)\n"
                                        : "  --threshold-decay    apply weight decay to the thresholds too\n") +
                    (cifar ? "  --no-augment         no random crop / flip of training images\n" : "") +
                    "  --eval-batch N       evaluation batch size (" + std::to_string(d.eval_batch) + ")" + R"(
  --seed N             seed of initialisation and shuffling (1)
  --dense              train the same network with plain dense layers (the baseline)
  --surrogate S        long_tailed|ste|sigmoid (long_tailed)
  --granularity G      )" + m.granularity_help + R"(
  --regulariser R      exp_decay|layer_mean_exp_decay|linear_pull (exp_decay, the paper's)
  --reset-rule R       one_percent|never|no_late_reset (one_percent, the paper's; no_late_reset:
                       none in the last 10% of the steps)
  --no-reset           switch off the threshold reset rule (as --reset-rule never)
  --val-fraction F     hold out this fraction of the training set for per-epoch
                       evaluation; the test set is then used once, at the end (0)
  --train-limit N      use only the first N training samples (0 = all)
  --threads N          threads for BLAS and the library's own loops (1)
  --products P         auto|dense|kept: masked layers multiply by their kept weights
                       only (kept), by W*M with BLAS (dense), or kept below 25% kept
                       (dense layers), 15% (convolutions), 30% (LSTMs) (auto)
  --json PATH          write a summary of the run as JSON
  --target-remaining R adapt alpha during training so that the model ends with this
                       remaining ratio, R in (0, 1), e.g. 0.05; --alpha is the start
  --csv PATH           write a training log (per epoch, and per --log-every steps)
  --log-every N        also log every N steps to the CSV (0 = epoch rows only)
  --quiet              no per-layer lines, no progress bar
  --save PATH          write a checkpoint after every epoch (atomically: a crash keeps
                       the previous one)
  --resume PATH        continue from a checkpoint up to --epochs epochs in all (same
                       flags as the run that wrote it)
  --accept-recipe-change  let --resume go on with another --batch, --lr, schedule
                       or training-set size (refused otherwise)
  --stop-after N       stop after epoch N of --epochs, as an interruption would (with
                       --save, --resume then continues the same run)
  --force              replace --save/--export/--json/--csv files that do not look like
                       ours (by default such a file is refused)
  --export PATH        write the trained network as a compact sparse inference model
                       (see examples/sparse_inference.cpp)
  --distributed        data-parallel over MPI (builds with -DDYNSPARSE_WITH_MPI=ON; implied
                       under mpirun): --batch is the global batch, split over the processes
)" + d.extra_help;
    return u;
}

std::vector<std::size_t> parse_milestones(const std::string& text) {
    std::vector<std::size_t> ms;
    std::size_t start = 0;
    while (start <= text.size() && !text.empty()) {
        const std::size_t comma = std::min(text.find(',', start), text.size());
        const std::string item = text.substr(start, comma - start);
        if (item.empty() || item.find_first_not_of("0123456789") != std::string::npos)
            throw std::invalid_argument("--milestones: '" + text + "' is not a list of epochs (e.g. 80,120)");
        ms.push_back(arguments::parse_count("--milestones", item));
        start = comma + 1;
    }
    try {
        ds::validate_milestones(ms);
    } catch (const std::exception& e) {
        throw std::invalid_argument(std::string("--milestones: ") + e.what());
    }
    return ms;
}

static void check_flag_path(const std::string& flag, const std::string& path, bool force) {
    if (path.empty()) return;
    try {
        const bool save = flag == "--save", model = flag == "--export", json = flag == "--json";
        const std::string_view sig = save    ? ds::checkpoint_kind.magic
                                     : model ? ds::exported_model_kind.magic
                                     : json  ? std::string_view("{")
                                             : ds::csv_log::header_start;
        const char* what = save ? "checkpoint" : model ? "exported model" : json ? "JSON summary" : "CSV log";
        ds::check_output_path(path, what, sig, force);
    } catch (const std::exception& e) {
        throw std::invalid_argument(flag + ": " + e.what());
    }
}

ds::lr_schedule make_schedule(const run_options& o) {
    if (o.schedule == "cosine") return ds::cosine_lr(o.lr);
    if (o.schedule == "multistep") {
        return ds::multi_step_lr(o.lr, parse_milestones(o.milestones), 0.1f);
    }
    return ds::constant_lr(o.lr);
}

ds::train_config make_config(const run_options& o) {
    ds::train_config cfg;
    cfg.eval_batch_size = o.eval_batch;
    cfg.augment = o.augment;
    cfg.epochs = o.epochs;
    cfg.batch_size = o.batch;
    cfg.alpha = o.dense ? 0.0f : o.alpha;
    cfg.schedule = make_schedule(o);
    cfg.seed = o.seed;
    const bool lead = process_rank() == 0;
    cfg.progress = !o.quiet && lead;
    cfg.log = &std::cout;
    cfg.accept_recipe_change = o.accept_recipe_change;
    if (!lead) cfg.warnings = nullptr;
    return cfg;
}

template <class Opt>
run_result run_training(const run_options& o, ds::training_loop<ds::softmax_cross_entropy, Opt>& trainer,
                        const network_session& session, const ds::dataset& train_set,
                        const ds::dataset& eval_set, const ds::dataset& test_set, bool eval_is_test) {
    for (const auto& layer : trainer.masked_layers()) layer.set_reset_rule(o.reset_rule);
    std::cout << "network:\n" << session.description;

    if (o.target_remaining > 0) {
        if (o.dense) throw std::invalid_argument("--target-remaining needs DST (not --dense)");
        ds::target_remaining_options t;
        t.target = o.target_remaining;
        ds::attach_target_remaining(trainer, t, train_set.size());
        std::cout << "target-sparsity mode: remaining ratio " << o.target_remaining
                  << ", alpha adapted from " << trainer.alpha() << "\n";
    }
    std::unique_ptr<ds::csv_log> csv;
    const bool lead = process_rank() == 0;  // the one rank that writes files
    if (!o.csv.empty() && lead) {
        ds::csv_log::mode mode = o.resume.empty() ? ds::csv_log::mode::create : ds::csv_log::mode::append;
        csv = std::make_unique<ds::csv_log>(o.csv, eval_is_test ? "test" : "validation", o.log_every, mode,
                                            o.force);
        csv->attach(trainer);
    }
    if (!o.resume.empty() && lead) ds::load_checkpoint(session.checkpoint, o.resume);
#ifdef DYNSPARSE_WITH_MPI
    if (distributed().world) ds::distributed::attach(trainer, session.checkpoint, *distributed().world);
#endif
    if (!o.resume.empty()) {
        std::cout << "resumed from " << o.resume << " after epoch " << trainer.epoch() << "\n";
        if (trainer.epoch() >= o.epochs)
            throw std::invalid_argument(o.resume + " has already trained " +
                                        std::to_string(trainer.epoch()) +
                                        " epochs: ask for more with --epochs");
    }
    const std::size_t steps_per_epoch = (train_set.size() + o.batch - 1) / o.batch;

    run_result r;
    r.resumed_after_epoch = trainer.epoch();
    const auto start = std::chrono::steady_clock::now();
    r.history = trainer.fit(train_set, eval_set, [&](const ds::epoch_report& e) {
        if (csv) csv->record_epoch(trainer.masked_layers(), e, steps_per_epoch);
        if (!o.save.empty() && lead) ds::save_checkpoint(session.checkpoint, o.save, o.force);
    }, o.stop_after);
    r.run.assign(trainer.history().begin(), trainer.history().end());
    r.final_alpha = trainer.alpha();
    r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    r.test = eval_is_test ? r.history.back().eval : trainer.evaluate(test_set);
    r.layers = ds::layer_reports(trainer.masked_layers());
    if (!o.export_path.empty() && session.export_model != nullptr && lead) {
        const ds::sparse_model model = session.export_model(session.net);
        ds::save_sparse_model(model, o.export_path, o.force);
        std::cout << "exported " << o.export_path << ": " << model.summary();
    }
    return r;
}

template run_result run_training<ds::sgd>(const run_options&,
                                          ds::training_loop<ds::softmax_cross_entropy, ds::sgd>&,
                                          const network_session&, const ds::dataset&,
                                          const ds::dataset&, const ds::dataset&, bool);
template run_result run_training<ds::adam>(const run_options&,
                                           ds::training_loop<ds::softmax_cross_entropy, ds::adam>&,
                                           const network_session&, const ds::dataset&,
                                           const ds::dataset&, const ds::dataset&, bool);

void validate_options(const run_options& o) {
    // Every value the library checks, checked before any data is loaded; the messages
    // name the flag.
    auto flagged = [](const char* flag, auto&& check) {
        try {
            check();
        } catch (const std::exception& e) {
            throw std::invalid_argument(std::string(flag) + ": " + e.what());
        }
    };
    if (!o.milestones.empty()) parse_milestones(o.milestones);
    if (o.epochs > ds::train_config::max_epochs)
        throw std::invalid_argument("--epochs " + std::to_string(o.epochs) + " is out of range (at most " +
                                    std::to_string(ds::train_config::max_epochs) + ")");
    if (!std::isfinite(o.lr) || !(o.lr > 0))
        throw std::invalid_argument("--lr must be a finite number > 0, got " + number_text(o.lr));
    if (!std::isfinite(o.alpha) || o.alpha < 0)
        throw std::invalid_argument("--alpha must be a finite number >= 0, got " + number_text(o.alpha));
    if (!std::isfinite(o.weight_decay) || o.weight_decay < 0)
        throw std::invalid_argument("--weight-decay must be a finite number >= 0, got " + number_text(o.weight_decay));
    if (!(o.momentum >= 0 && o.momentum < 1))
        throw std::invalid_argument("--momentum must be in [0, 1), got " + number_text(o.momentum));
    if (!(o.val_fraction >= 0 && o.val_fraction < 1))
        throw std::invalid_argument("--val-fraction must be in [0, 1), got " + number_text(o.val_fraction));
    flagged("configuration", [&] { make_config(o).validate(); });
    if (o.optimizer == "adam") {
        ds::adam::options a;
        a.weight_decay = o.weight_decay;
        flagged("--weight-decay", [&] { ds::validate(a); });
    }
    // Output paths before the (long) training: a missing directory or a foreign file is
    // an error now, not after the last epoch.
    check_flag_path("--save", o.save, o.force);
    check_flag_path("--export", o.export_path, o.force);
    check_flag_path("--json", o.json, o.force);
    if (o.resume.empty()) check_flag_path("--csv", o.csv, o.force);
}

static double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// Prints the final report and writes the JSON summary.
void report(const model_info& m, const run_options& o, const run_result& r, bool eval_is_test) {
    const double remaining = ds::model_remaining(r.layers);
    std::vector<double> epoch_seconds, layer_remaining, epoch_acc, epoch_remaining;
    std::vector<std::string> layer_names, thrashing;  // thrashing: layers the reset rule thrashed
    std::size_t resets = 0;
    for (const auto& e : r.run) {  // the whole run: the epochs before a --resume come from the checkpoint
        epoch_acc.push_back(e.eval_accuracy);
        epoch_remaining.push_back(e.remaining);
        resets += e.resets;
    }
    for (const auto& e : r.history) {  // this process's epochs
        epoch_seconds.push_back(e.train_seconds);
        for (const auto& l : e.layers) {
            if (!l.thrashing) continue;
            char index[32];
            std::snprintf(index, sizeof index, "[%zu] ", l.index);
            const std::string name = index + l.name;
            if (std::find(thrashing.begin(), thrashing.end(), name) == thrashing.end()) thrashing.push_back(name);
        }
    }
    for (const auto& l : r.layers) {
        layer_remaining.push_back(l.stats.remaining());
        layer_names.push_back(l.name);
    }
    const double per_epoch = median(epoch_seconds);
    const std::string model = o.dense ? std::string(m.title) + ", dense baseline"
                                      : std::string(m.title) + ", DST, " + o.surrogate + ", " + o.granularity;

    std::printf("\n== final report ==\n");
    std::printf("model            %s\n", model.c_str());
    std::printf("test accuracy    %.2f%%  (test loss %.4f, %zu samples)\n", r.test.accuracy,
                r.test.loss, r.test.samples);
    std::printf("remaining ratio  %.2f%% of the masked weights\n", 100.0 * remaining);
    if (o.target_remaining > 0)
        std::printf("target           %.2f%% (off by %+.2f points), final alpha %.4g\n",
                    100.0 * o.target_remaining, 100.0 * (remaining - o.target_remaining),
                    static_cast<double>(r.final_alpha));
    for (const auto& l : r.layers)
        std::printf("   [%zu] %-40s %6.2f%% of %zu (resets %zu)\n", l.index, l.name.c_str(),
                    100.0 * l.stats.remaining(), l.stats.total, l.stats.resets);
    for (const auto& name : thrashing)
        std::printf("warning          the reset rule thrashed layer %s (more than %zu resets in an epoch)\n",
                    name.c_str(), ds::train_config{}.thrash_resets_per_epoch);
    std::printf("time             %.2f s per training epoch (median of %zu), %.1f s in all\n",
                per_epoch, r.history.size(), r.wall_seconds);

    if (o.json.empty() || process_rank() != 0) return;
    ds::json_object j;
    j.add("model", m.json_name)
        .add("dense", o.dense)
        .add("surrogate", o.dense ? std::string("none") : o.surrogate)
        .add("granularity", o.dense ? std::string("none") : o.granularity)
        .add("test_accuracy", r.test.accuracy)
        .add("test_loss", r.test.loss)
        .add("remaining_ratio", remaining)
        .add("layer_remaining", layer_remaining)
        .add("layer_names", layer_names)
        .add("epochs", r.run.size())
        .add("resumed_after_epoch", r.resumed_after_epoch)  // epoch_seconds starts after it
        .add("seconds_per_epoch", per_epoch)
        .add("epoch_seconds", epoch_seconds)
        .add("epoch_eval_accuracy", epoch_acc)
        .add("epoch_remaining", epoch_remaining)
        .add("evaluated_on", eval_is_test ? "test" : "validation")
        .add("resets", resets)
        .add("regulariser", o.regulariser)
        .add("reset_rule", o.reset_policy)
        .add("thrashing_layers", thrashing)
        .add("optimizer", o.optimizer)
        .add("batch", o.batch)
        .add("lr", static_cast<double>(o.lr))
        .add("momentum", static_cast<double>(o.momentum))
        .add("alpha", static_cast<double>(o.dense ? 0.0f : o.alpha))
        .add("final_alpha", static_cast<double>(r.final_alpha))
        .add("target_remaining", o.target_remaining)
        .add("val_fraction", static_cast<double>(o.val_fraction))
        .add("final_eval_accuracy", r.history.back().eval.accuracy)
        .add("csv", o.csv)
        .add("seed", static_cast<std::size_t>(o.seed))
        .add("threads", o.threads)
        .add("products", o.products)
        .add("processes", world_size())
        .add("blas_core", ds::blas_core_name())
        .add("wall_seconds", r.wall_seconds);
    ds::write_file_atomically(o.json, j.str() + "\n", "JSON summary", "{", o.force);
    std::printf("summary          %s\n", o.json.c_str());
}

/// The whole program: parse the flags, load the data, train the network chosen by
/// `dispatch(options, train, eval, test, eval_is_test)`, report. Returns the exit code.
int run_main(int argc, char** argv, const model_info& m, dispatch_fn dispatch, const recipe& d) {
    examples::restart_with_fast_blas_kernels(argv, m.prefer_avx512_blas);
    bool distributed_flag = false;
    for (int i = 1; i < argc; ++i) distributed_flag = distributed_flag || std::string(argv[i]) == "--distributed";
#ifdef DYNSPARSE_WITH_MPI
    if (distributed_flag || started_by_mpirun()) {
        distributed().env = std::make_unique<ds::distributed::mpi_environment>(argc, argv);
        distributed().world = std::make_unique<ds::distributed::mpi_communicator>();
        if (distributed().world->rank() != 0) {  // rank 0 alone prints
            std::cout.setstate(std::ios::badbit);
            if (std::freopen("/dev/null", "w", stdout) == nullptr) std::cout.clear();
        }
    }
    // An error on one rank would leave the others waiting in a collective: end them all.
    const auto fail = [](int code) {
        if (distributed().world && distributed().world->size() > 1) ds::distributed::mpi_environment::abort(code);
        return code;
    };
#else
    const auto fail = [](int code) { return code; };
    if (distributed_flag) {
        std::cerr << "error: --distributed: this program was built without MPI (configure with "
                     "-DDYNSPARSE_WITH_MPI=ON)\n";
        return 1;
    }
#endif
    try {
        const examples::arguments args(
            argc, argv,
            {"--data", "--epochs", "--batch", "--lr", "--momentum", "--weight-decay", "--schedule",
             "--milestones", "--alpha", "--seed", "--surrogate", "--granularity", "--val-fraction",
             "--train-limit", "--threads", "--json", "--target-remaining", "--csv", "--log-every",
             "--eval-batch", "--save", "--resume", "--export", "--regulariser", "--reset-rule", "--stop-after",
             "--products"},
            {"--help", "--dense", "--nesterov", "--no-reset", "--quiet", "--no-augment",
             "--threshold-decay", "--no-threshold-decay", "--accept-recipe-change", "--distributed", "--force"});
        if (args.has("--help")) {
            std::cout << usage_text(m, d);
            return 0;
        }
        run_options o;
        o.optimizer = d.optimizer;
        o.epochs = args.count("--epochs", d.epochs);
        o.batch = args.count("--batch", d.batch);
        o.lr = static_cast<float>(args.real("--lr", d.lr));
        o.momentum = static_cast<float>(args.real("--momentum", 0.9));
        o.nesterov = args.has("--nesterov");
        o.weight_decay = static_cast<float>(args.real("--weight-decay", d.weight_decay));
        o.schedule = args.choice("--schedule", d.schedule, {"constant", "cosine", "multistep"});
        o.milestones = args.text("--milestones", d.milestones);
        o.alpha = static_cast<float>(args.real("--alpha", d.alpha));
        o.decay_thresholds = (d.decay_thresholds || args.has("--threshold-decay")) &&
                             !args.has("--no-threshold-decay");
        o.eval_batch = args.count("--eval-batch", d.eval_batch);
        o.seed = args.count("--seed", 1);
        o.dense = args.has("--dense");
        o.surrogate = args.choice("--surrogate", "long_tailed", {"long_tailed", "ste", "sigmoid"});
        o.granularity = args.choice("--granularity", m.granularities.front(), m.granularities);
        o.reset_rule = !args.has("--no-reset");
        o.regulariser = args.choice("--regulariser", "exp_decay", {"exp_decay", "layer_mean_exp_decay", "linear_pull"});
        o.reset_policy = args.choice("--reset-rule", "one_percent", {"one_percent", "never", "no_late_reset"});
        o.val_fraction = static_cast<float>(args.real("--val-fraction", 0.0));
        o.train_limit = args.count("--train-limit", 0);
        o.threads = args.count("--threads", 1);
        o.products = args.choice("--products", "auto", {"auto", "dense", "kept"});
        o.json = args.text("--json", "");
        o.quiet = args.has("--quiet");
        o.target_remaining = args.real("--target-remaining", 0.0);
        if (args.has("--target-remaining") && !(o.target_remaining > 0 && o.target_remaining < 1))
            throw std::invalid_argument("--target-remaining expects a ratio in (0, 1), e.g. 0.05");
        o.csv = args.text("--csv", "");
        o.log_every = args.count("--log-every", 0);
        o.save = args.text("--save", "");
        o.resume = args.text("--resume", "");
        o.export_path = args.text("--export", "");
        o.stop_after = args.count("--stop-after", 0);
        o.accept_recipe_change = args.has("--accept-recipe-change");
        if (o.epochs == 0 || o.batch == 0 || o.threads == 0 || o.eval_batch == 0)
            throw std::invalid_argument("--epochs, --batch, --eval-batch and --threads must be positive");
        if (o.schedule == "multistep" && o.milestones.empty())
            throw std::invalid_argument("--schedule multistep needs --milestones, e.g. 10,15");
        if (o.threads > max_threads)
            throw std::invalid_argument("--threads " + std::to_string(o.threads) + " is more than the supported " +
                                        std::to_string(max_threads));
        o.force = args.has("--force");
        validate_options(o);
        ds::set_threads(o.threads);
        std::cout << "BLAS kernels: " << ds::blas_core_name() << ", " << o.threads << " thread(s)\n";
        if (world_size() > 1)
            std::cout << "data-parallel: " << world_size() << " processes, global batch " << o.batch << " ("
                      << o.batch / std::max<std::size_t>(1, world_size()) << " per process)\n";

        const bool cifar = m.data == data_kind::cifar10;
        const std::string dir = args.text(
            "--data", cifar ? std::string("cifar-10-batches-bin") : examples::default_fashion_mnist_directory.string());
        std::cout << "loading " << dir << "\n";
        ds::train_test data;
        if (cifar) {
            // Per-channel normalisation with the training set's statistics; pad 4 + random
            // crop + random flip of every training batch.
            data = ds::load_cifar10_directory(dir);
            const auto stats = ds::compute_channel_statistics(data.train, ds::cifar10_channels);
            ds::normalize_channels(data.train, stats);
            ds::normalize_channels(data.test, stats);
            if (!args.has("--no-augment")) o.augment = ds::cifar10_augmentation(stats);
        } else {
            data = ds::load_mnist_directory(dir);
            ds::standardize(data);
        }
        if (o.train_limit > 0 && o.train_limit < data.train.size())
            data.train = ds::take(data.train, 0, o.train_limit);
        if (o.val_fraction > 0) {
            auto [train_part, val_part] = ds::split_validation(data.train, o.val_fraction, o.seed);
            std::cout << "training on " << train_part.size() << ", validating on "
                      << val_part.size() << ", testing once on " << data.test.size() << "\n";
            report(m, o, dispatch(o, train_part, val_part, data.test, false), false);
            return 0;
        }
        std::cout << "training on " << data.train.size() << ", evaluating on the "
                  << data.test.size() << " test samples each epoch\n";
        report(m, o, dispatch(o, data.train, data.test, data.test, true), true);
        return 0;
    } catch (const ds::training_diverged& e) {
        std::cerr << "error: " << e.what() << "\n";
        return fail(2);
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return fail(1);
    }
}

}  // namespace examples
