#pragma once
// trainer<Net, Loss, Optimizer>: the generic training loop, instantiated for one network
// type. Each step: gather a shuffled batch, forward, loss and its gradient, backward,
// add the sparse regulariser's gradient to the thresholds, optimizer step. After each
// epoch: evaluation and a report with the sparsity of every masked layer. Step callbacks
// (add_step_callback) observe every step and may change alpha (set_alpha): train/csv_log.hpp
// and train/target_sparsity.hpp are built on them.
//
// Only the network's forward and backward are compiled per network type: the loop, the
// evaluation and the reports live in training_loop<Loss, Optimizer>, which reaches
// the network through two virtual calls per step and its masked layers through
// masked_layer_view (network/masked_layer_view.hpp). A program training several network
// types compiles the loop once.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <functional>
#include <numeric>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "dynsparse/core/attributes.hpp"
#include "dynsparse/core/denormals.hpp"
#include "dynsparse/core/error.hpp"
#include "dynsparse/core/rng.hpp"
#include "dynsparse/data/dataset.hpp"
#include "dynsparse/loss/softmax_cross_entropy.hpp"
#include "dynsparse/network/masked_layer_view.hpp"
#include "dynsparse/network/sequential.hpp"
#include "dynsparse/optim/optimizer.hpp"
#include "dynsparse/optim/schedule.hpp"
#include "dynsparse/train/progress.hpp"
#include "dynsparse/train/regulariser.hpp"

namespace dynsparse {

struct train_config {
    std::size_t epochs = 20;
    std::size_t batch_size = 64;
    std::size_t eval_batch_size = 1000;
    float alpha = 5e-4f;                     ///< weight of alpha * sum exp(-t)
    lr_schedule schedule = constant_lr(0.01f);
    std::uint64_t seed = 1;                  ///< shuffling (initialisation is the network's)
    bool progress = true;                    ///< progress bar when stderr is a terminal
    bool flush_denormals = true;             ///< FTZ/DAZ while training (see core/denormals.hpp)
    std::ostream* log = nullptr;             ///< per-epoch report lines; null = silent
    /// Applied to each training batch (batch x features) after it is gathered, e.g.
    /// crop_flip_augmentation (data/cifar10.hpp); draws from the trainer's own generator,
    /// seeded from `seed`. Empty = no augmentation. Evaluation batches are never augmented.
    std::function<void(matrix& batch, rng& gen)> augment;
};

struct layer_report {
    std::size_t index = 0;
    std::string name;
    mask_statistics stats;
};

struct evaluation {
    double loss = 0;
    double accuracy = 0;  ///< percent
    std::size_t samples = 0;
};

struct epoch_report {
    std::size_t epoch = 0;          ///< 1-based
    float learning_rate = 0;
    double train_loss = 0;          ///< mean cross-entropy over the epoch's steps
    double regulariser = 0;         ///< alpha * sum exp(-t) at the end of the epoch
    evaluation eval;                ///< on the evaluation set given to fit()
    double remaining = 1;           ///< model remaining ratio (masked layers' weights)
    std::size_t resets = 0;         ///< reset-rule firings during this epoch, all layers
    std::vector<layer_report> layers;
    double train_seconds = 0;       ///< training steps only, evaluation excluded
    double eval_seconds = 0;
    float alpha = 0;                ///< regulariser weight at the end of the epoch
};

/// What a step callback sees after each optimisation step (see trainer::add_step_callback).
struct step_report {
    std::size_t epoch = 0;            ///< 1-based
    std::size_t step_in_epoch = 0;    ///< 1-based
    std::size_t steps_per_epoch = 0;
    std::size_t global_step = 0;      ///< steps done since construction, this one included
    std::size_t total_steps = 0;      ///< steps_per_epoch * config.epochs
    double loss = 0;                  ///< this batch's mean cross-entropy
    float learning_rate = 0;
    float alpha = 0;                  ///< the alpha this step used
};

/// Sparsity of every masked layer, from views of them (masked_layers(net)).
inline std::vector<layer_report> layer_reports(std::span<const masked_layer_view> layers) {
    std::vector<layer_report> out;
    out.reserve(layers.size());
    for (const auto& l : layers) out.push_back({l.index(), l.name(), l.statistics()});
    return out;
}

/// Sparsity of every masked layer of a network, and of the whole model.
template <class Net>
std::vector<layer_report> sparsity_report(const Net& net) {
    return layer_reports(dynsparse::masked_layers(net));
}

inline double model_remaining(const std::vector<layer_report>& layers) {
    std::size_t kept = 0, total = 0;
    for (const auto& l : layers) {
        kept += l.stats.kept;
        total += l.stats.total;
    }
    return total ? static_cast<double>(kept) / static_cast<double>(total) : 1.0;
}

/// Prints one epoch's report: a summary line, then one line per masked layer.
inline void print_epoch_report(std::ostream& os, const epoch_report& r, std::size_t epochs) {
    char line[256];
    std::snprintf(line, sizeof line,
                  "epoch %2zu/%zu  lr %.4g  train loss %.4f  reg %.4f  eval loss %.4f  acc %6.2f%%"
                  "  remaining %6.2f%%  resets %zu  (%.2fs train, %.2fs eval)\n",
                  r.epoch, epochs, static_cast<double>(r.learning_rate), r.train_loss,
                  r.regulariser, r.eval.loss, r.eval.accuracy, 100.0 * r.remaining, r.resets,
                  r.train_seconds, r.eval_seconds);
    os << line;
    for (const auto& l : r.layers) {
        std::snprintf(line, sizeof line,
                      "    [%zu] %-40s kept %6.2f%% of %7zu  t mean %+.4f min %+.4f max %+.4f"
                      "  resets %zu\n",
                      l.index, l.name.c_str(), 100.0 * l.stats.remaining(), l.stats.total,
                      static_cast<double>(l.stats.threshold_mean),
                      static_cast<double>(l.stats.threshold_min),
                      static_cast<double>(l.stats.threshold_max), l.stats.resets);
        os << line;
    }
    os.flush();
}

/// Call right before net.backward when an optimizer of type O will step next: if O
/// completes gradients (layers/layer.hpp, parameter), the masked layers leave their
/// surrogate pass to that step, which does it row block by row block while it updates
/// the rows (one pass over W per step instead of two). Otherwise does nothing.
template <Optimizer O, class Net>
void defer_surrogate_backward(Net& net) {
    if constexpr (requires { O::completes_gradients; }) {
        if constexpr (O::completes_gradients)
            net.for_each_masked_layer([](auto& l, std::size_t) {
                if constexpr (requires { l.defer_surrogate_backward(); }) l.defer_surrogate_backward();
            });
    }
}

/// Everything of trainer<Net, L, O> that does not depend on the network type (a trainer is
/// one): code that works with the trainer of any network, such as step callbacks
/// (csv_log::attach, attach_target_remaining), takes a training_loop<L, O>&. The network
/// is reached through run_forward / run_backward (one virtual call each per batch) and
/// its masked layers through views. The loops are kept out of line (DYNSPARSE_COMPILE_ONCE): inlined
/// into each caller, they would again be compiled once per network type.
template <Loss L, Optimizer O>
class training_loop {
public:
    training_loop(const training_loop&) = delete;
    training_loop& operator=(const training_loop&) = delete;

    /// Trains for config.epochs epochs, evaluating on `eval` after each; calls
    /// on_epoch(report) after each epoch's report is printed.
    DYNSPARSE_COMPILE_ONCE std::vector<epoch_report> fit(
        const dataset& train, const dataset& eval,
        const std::function<void(const epoch_report&)>& on_epoch = {}) {
        check_dataset(train, "training set");
        check_dataset(eval, "evaluation set");
        std::vector<epoch_report> history;
        for (std::size_t e = epoch_; e < cfg_.epochs; ++e) {
            epoch_report r = train_epoch(train);
            const auto t0 = std::chrono::steady_clock::now();
            r.eval = evaluate(eval);
            r.eval_seconds = seconds_since(t0);
            r.layers = layer_reports(masked_);
            r.remaining = model_remaining(r.layers);
            if (cfg_.log) print_epoch_report(*cfg_.log, r, cfg_.epochs);
            if (on_epoch) on_epoch(r);
            history.push_back(std::move(r));
        }
        return history;
    }

    /// One pass over the shuffled training set; returns its report without evaluation.
    DYNSPARSE_COMPILE_ONCE epoch_report train_epoch(const dataset& train) {
        check_dataset(train, "training set");
        const flush_denormals_scope ftz(cfg_.flush_denormals);
        epoch_report r;
        r.epoch = ++epoch_;
        r.learning_rate = cfg_.schedule(epoch_ - 1, cfg_.epochs);
        const std::size_t resets_before = total_resets();
        const auto t0 = std::chrono::steady_clock::now();

        order_.resize(train.size());
        std::iota(order_.begin(), order_.end(), std::size_t{0});
        shuffle_rng_.shuffle(std::span<std::size_t>(order_));

        const std::size_t steps = (train.size() + cfg_.batch_size - 1) / cfg_.batch_size;
        progress_.start(epoch_, cfg_.epochs, steps);
        double loss_sum = 0;
        for (std::size_t s = 0; s < steps; ++s) {
            const std::size_t first = s * cfg_.batch_size;
            const std::size_t count = std::min(cfg_.batch_size, train.size() - first);
            gather_batch(train, std::span<const std::size_t>(order_.data() + first, count), x_, y_);
            if (cfg_.augment) cfg_.augment(x_, augment_rng_);
            const double loss = step(x_, y_, r.learning_rate);
            if (!std::isfinite(loss)) {
                progress_.finish();
                std::ostringstream msg;
                msg << "training diverged: the loss is " << loss << " at epoch " << epoch_
                    << ", step " << s + 1 << " of " << steps << " (global step " << global_step_ + 1
                    << ", learning rate " << r.learning_rate
                    << "); try a smaller learning rate or alpha";
                throw training_diverged(msg.str());
            }
            loss_sum += loss;
            if (!step_callbacks_.empty()) {
                const step_report sr{epoch_, s + 1, steps, global_step_, steps * cfg_.epochs,
                                     loss, r.learning_rate, cfg_.alpha};
                for (const auto& f : step_callbacks_) f(sr);
            }
            progress_.update(s, loss_sum / static_cast<double>(s + 1), first + count);
        }
        progress_.finish();
        // A mask made during the last optimizer step must not outlive the epoch (users may
        // write parameters before the next forward).
        for (const auto& l : masked_) l.invalidate_mask();
        r.train_seconds = seconds_since(t0);
        r.train_loss = loss_sum / static_cast<double>(steps);
        r.regulariser = regulariser_value();
        r.resets = total_resets() - resets_before;
        r.alpha = cfg_.alpha;
        return r;
    }

    /// One optimisation step on a batch; returns the mean cross-entropy (without the
    /// regulariser).
    double step(const matrix& x, std::span<const std::uint8_t> y, float lr) {
        const matrix& out = run_forward(x, true);
        const double loss = loss_.value_and_gradient(out, y, grad_out_);
        if (!std::isfinite(loss)) return loss;
        run_backward(grad_out_);
        apply_sparse_regulariser(params_, cfg_.alpha);
        opt_.step(params_, lr);
        ++global_step_;
        return loss;
    }

    /// Loss and accuracy on a dataset, in evaluation mode, without changing any parameter
    /// other than through the masked layers' reset rule.
    DYNSPARSE_COMPILE_ONCE evaluation evaluate(const dataset& data) {
        const flush_denormals_scope ftz(cfg_.flush_denormals);
        evaluation ev;
        ev.samples = data.size();
        if (data.size() == 0) return ev;
        std::size_t correct = 0;
        double loss_sum = 0;
        for (std::size_t first = 0; first < data.size(); first += cfg_.eval_batch_size) {
            const std::size_t count = std::min(cfg_.eval_batch_size, data.size() - first);
            eval_index_.resize(count);
            std::iota(eval_index_.begin(), eval_index_.end(), first);
            gather_batch(data, eval_index_, x_, y_);
            const matrix& out = run_forward(x_, false);
            loss_sum += loss_.value_and_gradient(out, y_, grad_out_) * static_cast<double>(count);
            correct += count_correct(out, y_);
        }
        ev.loss = loss_sum / static_cast<double>(data.size());
        ev.accuracy = 100.0 * static_cast<double>(correct) / static_cast<double>(data.size());
        return ev;
    }

    double regulariser_value() const {
        double total = 0;
        for (const parameter& p : params_)
            if (p.kind == parameter_kind::threshold)
                for (float t : p.value) total += std::exp(-t);
        return cfg_.alpha * total;
    }

    std::size_t total_resets() const { return totals(masked_).resets; }

    /// The network's masked layers, as views (network order).
    std::span<const masked_layer_view> masked_layers() const { return masked_; }

    /// Calls f(step_report) after every optimisation step, in the order added. f may call
    /// set_alpha (the next step uses the new value) and read the network's statistics
    /// (masked layers' statistics() then describe the mask after this step's update).
    void add_step_callback(std::function<void(const step_report&)> f) {
        if (f) step_callbacks_.push_back(std::move(f));
    }

    /// Changes the regulariser weight alpha from the next step on (target-sparsity
    /// control, alpha schedules). Must be finite and >= 0.
    void set_alpha(float alpha) {
        if (!std::isfinite(alpha) || alpha < 0)
            throw invalid_argument("trainer::set_alpha: alpha must be finite and >= 0, got " +
                                   std::to_string(alpha));
        cfg_.alpha = alpha;
    }
    float alpha() const { return cfg_.alpha; }

    O& optimizer() { return opt_; }
    const train_config& config() const { return cfg_; }
    std::size_t epoch() const { return epoch_; }
    std::size_t global_step() const { return global_step_; }
    rng& shuffle_generator() { return shuffle_rng_; }

    /// Checkpoint hook (io/checkpoint.hpp): the resumable state, v(name, field) per field.
    /// The schedule's position is the epoch; step callbacks keep their own state.
    template <class V>
    void visit_state(V&& v) {
        v("epoch", epoch_);
        v("global_step", global_step_);
        v("alpha", cfg_.alpha);
        v("shuffle_rng", shuffle_rng_);
        v("augment_rng", augment_rng_);
        if constexpr (requires { opt_.visit_state(v); }) opt_.visit_state(v);
    }

protected:
    /// inputs, outputs: the network's input features and output classes (checked against
    /// datasets); parameters and masked: the network's, in network order.
    training_loop(L loss, O optimizer, train_config config, std::size_t inputs, std::size_t outputs,
                  std::vector<parameter> parameters, std::vector<masked_layer_view> masked)
        : loss_(std::move(loss)), opt_(std::move(optimizer)), cfg_(std::move(config)),
          shuffle_rng_(cfg_.seed), augment_rng_(cfg_.seed ^ 0xA5A5A5A5A5A5A5A5ULL),
          progress_(cfg_.progress), params_(std::move(parameters)), masked_(std::move(masked)),
          inputs_(inputs), outputs_(outputs) {
        if (cfg_.batch_size == 0) throw invalid_argument("trainer: batch_size must be positive");
        if (cfg_.eval_batch_size == 0) cfg_.eval_batch_size = cfg_.batch_size;
    }
    ~training_loop() = default;

    /// The network's forward pass on a batch.
    virtual const matrix& run_forward(const matrix& x, bool training) = 0;
    /// Its backward pass from dL/d(output), right before an optimizer step.
    virtual void run_backward(const matrix& d_output) = 0;

private:
    void check_dataset(const dataset& d, const char* what) const {
        if (d.size() > 0 && d.features() != inputs_)
            throw invalid_argument(std::string("trainer: the ") + what + " has " +
                                   std::to_string(d.features()) +
                                   " features per sample but the network's input takes " +
                                   std::to_string(inputs_));
        if (d.classes > outputs_)
            throw invalid_argument(std::string("trainer: the ") + what + " has " +
                                   std::to_string(d.classes) + " classes but the network has " +
                                   std::to_string(outputs_) + " outputs");
    }

    static double seconds_since(std::chrono::steady_clock::time_point t0) {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }

    L loss_;
    O opt_;
    train_config cfg_;
    rng shuffle_rng_;
    rng augment_rng_;
    progress_bar progress_;
    std::vector<parameter> params_;
    std::vector<masked_layer_view> masked_;
    std::size_t inputs_, outputs_;
    std::vector<std::size_t> order_, eval_index_;
    matrix x_, grad_out_;
    std::vector<std::uint8_t> y_;
    std::vector<std::function<void(const step_report&)>> step_callbacks_;
    std::size_t epoch_ = 0, global_step_ = 0;
};

namespace detail {
template <class Net>
std::vector<parameter> parameters_of(Net& net) {
    std::vector<parameter> params;
    net.for_each_parameter([&](const parameter& p) { params.push_back(p); });
    return params;
}

}  // namespace detail

/// The trainer of a network type: training_loop (fit, train_epoch, step, evaluate,
/// step callbacks, visit_state) bound to one network. The network must outlive it.
template <Network Net, Loss L = softmax_cross_entropy, Optimizer O = sgd>
class trainer final : public training_loop<L, O> {
public:
    trainer(Net& net, L loss, O optimizer, train_config config)
        : training_loop<L, O>(std::move(loss), std::move(optimizer), std::move(config),
                                      Net::input_shape::size, Net::output_shape::size,
                                      detail::parameters_of(net), dynsparse::masked_layers(net)),
          net_(net) {}

    Net& network() { return net_; }

private:
    const matrix& run_forward(const matrix& x, bool training) override { return net_.forward(x, training); }
    void run_backward(const matrix& d_output) override {
        defer_surrogate_backward<O>(net_);
        net_.backward(d_output);
    }

    Net& net_;
};

}  // namespace dynsparse
