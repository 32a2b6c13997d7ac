#pragma once
// trainer<Net, Loss, Optimizer, Regulariser, ResetRule>: the generic training loop,
// instantiated for one network type. Each step (training_loop::step) runs named stages:
//
//   forward -> loss -> backward -> reduce_gradients -> update
//                      (raw dL/dWm)  (hook: identity,    (optim/update.hpp: surrogate pass,
//                                     or data-parallel)   regulariser, optimizer, mask, reset)
//
// After each epoch: evaluation and a report with the sparsity of every masked layer. Step callbacks
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
#include <iostream>
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
#include "dynsparse/optim/update.hpp"
#include "dynsparse/train/config.hpp"
#include "dynsparse/train/progress.hpp"
#include "dynsparse/train/reports.hpp"

namespace dynsparse {

/// Everything of trainer<Net, L, O> that does not depend on the network type (a trainer is
/// one): code that works with the trainer of any network, such as step callbacks
/// (csv_log::attach, attach_target_remaining), takes a training_loop<L, O>&. The network
/// is reached through run_forward / run_backward (one virtual call each per batch) and
/// its masked layers through views. The loops are kept out of line (DYNSPARSE_COMPILE_ONCE): inlined
/// into each caller, they would again be compiled once per network type.
template <class L, class O>
class training_loop {
    static_assert(Loss<L>, "trainer: the loss must satisfy dynsparse::Loss (loss/softmax_cross_entropy.hpp)");
    static_assert(Optimizer<O>, "trainer: the optimizer must satisfy dynsparse::Optimizer: begin_step(params, lr), "
                                "update(update_range), end_step() (concepts/optimizer.hpp)");

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
        std::vector<std::size_t> resets_before;
        for (const auto& l : masked_) resets_before.push_back(l.statistics().resets);
        const auto t0 = std::chrono::steady_clock::now();

        order_.resize(train.size());
        std::iota(order_.begin(), order_.end(), std::size_t{0});
        shuffle_rng_.shuffle(std::span<std::size_t>(order_));

        const std::size_t steps = (train.size() + cfg_.batch_size - 1) / cfg_.batch_size;
        total_steps_ = steps * cfg_.epochs;
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
                                     loss, r.learning_rate, cfg_.alpha, last_.regulariser};
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
        r.regulariser = last_.regulariser;
        r.layers = layer_reports(masked_);
        for (std::size_t i = 0; i < r.layers.size(); ++i) {
            layer_report& l = r.layers[i];
            l.epoch_resets = l.stats.resets - resets_before[i];
            l.thrashing = l.epoch_resets > cfg_.thrash_resets_per_epoch;
            r.resets += l.epoch_resets;
            if (l.thrashing && cfg_.warnings)
                *cfg_.warnings << "warning: epoch " << epoch_ << ": the reset rule (" << reset_rule_name_
                               << ") reset layer [" << l.index << "] " << l.name << ' ' << l.epoch_resets
                               << " times; its thresholds thrash (alpha " << cfg_.alpha
                               << " may be too large for this learning rate)\n";
        }
        r.remaining = model_remaining(r.layers);
        r.alpha = cfg_.alpha;
        return r;
    }

    /// One optimisation step on a batch; returns the mean cross-entropy (without the
    /// regulariser). The stages, in order:
    double step(const matrix& x, std::span<const std::uint8_t> y, float lr) {
        const matrix& out = run_forward(x, true);                          // 1. forward
        const double loss = loss_.value_and_gradient(out, y, grad_out_);   // 2. loss, dL/d(output)
        if (!std::isfinite(loss)) return loss;
        run_backward(grad_out_);   // 3. backward: raw gradients (masked layers: dL/dWm)
        reduce_gradients();        // 4. the reducer's hook (identity in one process)
        last_ = run_update(opt_, lr, cfg_.alpha, {global_step_, total_steps_});  // 5. DST update
        ++global_step_;
        return loss;
    }

    /// Stage 4 of step: f(parameters) may replace every gradient, e.g. by its mean over
    /// the processes of a data-parallel run. It sees the raw gradients of backward (the
    /// masked layers' surrogate passes come after it, in the update), the same list and
    /// order in every process; it must be linear (a sum or a mean). Empty = identity.
    void set_gradient_reducer(std::function<void(std::span<const parameter>)> f) { reducer_ = std::move(f); }

    /// Every trainable parameter, in the order optimizers and the reducer see them.
    std::span<const parameter> parameters() const { return params_; }

    /// The last step's update (regulariser value, resets).
    const update_result& last_update() const { return last_; }
    std::string_view regulariser_name() const { return regulariser_name_; }
    std::string_view reset_rule_name() const { return reset_rule_name_; }

    /// Loss and accuracy on a dataset, in evaluation mode, without changing any parameter
    /// (reset rules apply in training steps only).
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
        if constexpr (StatefulOptimizer<O>) opt_.visit_state(v);
    }

protected:
    /// inputs, outputs: the network's input features and output classes (checked against
    /// datasets); parameters and masked: the network's, in network order.
    training_loop(L loss, O optimizer, train_config config, std::size_t inputs, std::size_t outputs,
                  std::vector<parameter> parameters, std::vector<masked_layer_view> masked,
                  std::string_view regulariser_name, std::string_view reset_rule_name)
        : loss_(std::move(loss)), opt_(std::move(optimizer)), cfg_(std::move(config)),
          regulariser_name_(regulariser_name), reset_rule_name_(reset_rule_name),
          shuffle_rng_(cfg_.seed), augment_rng_(cfg_.seed ^ 0xA5A5A5A5A5A5A5A5ULL),
          progress_(cfg_.progress), params_(std::move(parameters)), masked_(std::move(masked)),
          inputs_(inputs), outputs_(outputs) {
        if (cfg_.batch_size == 0) throw invalid_argument("trainer: batch_size must be positive");
        cfg_.validate();
        if constexpr (requires { validate(opt_.settings()); }) validate(opt_.settings());
        if (cfg_.eval_batch_size == 0) cfg_.eval_batch_size = cfg_.batch_size;
    }
    ~training_loop() = default;

    /// The network's forward pass on a batch.
    virtual const matrix& run_forward(const matrix& x, bool training) = 0;
    /// Its backward pass from dL/d(output), right before an update.
    virtual void run_backward(const matrix& d_output) = 0;
    /// The update pass of the network (optim/update.hpp).
    virtual update_result run_update(O& opt, float lr, float alpha, step_position at) = 0;

private:
    void reduce_gradients() {
        if (reducer_) reducer_(params_);
    }

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
    std::string_view regulariser_name_, reset_rule_name_;
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
    std::function<void(std::span<const parameter>)> reducer_;
    update_result last_;
    std::size_t epoch_ = 0, global_step_ = 0, total_steps_ = 0;
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
/// step callbacks, visit_state) bound to one network, with its update pass. The network
/// must outlive it.
template <Network Net, class L = softmax_cross_entropy, class O = sgd, class R = exp_decay,
          class Rule = one_percent>
class trainer final : public training_loop<L, O> {
    static_assert(Regulariser<R>, "trainer: the regulariser must satisfy dynsparse::Regulariser: a static name and "
                                  "double apply(span<const float> t, span<float> dt, const regulariser_scope&) const "
                                  "(concepts/regulariser.hpp)");
    static_assert(ResetRule<Rule>, "trainer: the reset rule must satisfy dynsparse::ResetRule: a static name and "
                                   "bool should_reset(const reset_query&) const (concepts/reset_rule.hpp)");

public:
    trainer(Net& net, L loss, O optimizer, train_config config, R regulariser = {}, Rule rule = {})
        : training_loop<L, O>(std::move(loss), std::move(optimizer), std::move(config),
                              Net::input_shape::size, Net::output_shape::size,
                              detail::parameters_of(net), dynsparse::masked_layers(net), R::name, Rule::name),
          net_(net), pass_(net, std::move(regulariser), std::move(rule)) {}

    Net& network() { return net_; }

private:
    const matrix& run_forward(const matrix& x, bool training) override { return net_.forward(x, training); }
    void run_backward(const matrix& d_output) override {
        defer_surrogate_backward(net_);
        net_.backward(d_output);
    }
    update_result run_update(O& opt, float lr, float alpha, step_position at) override {
        return pass_.run(opt, lr, alpha, at);
    }

    Net& net_;
    update_pass<Net, R, Rule> pass_;
};

}  // namespace dynsparse
