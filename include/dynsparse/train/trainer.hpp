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
// Data-parallel runs (set_data_parallel, train/data_parallel.hpp; over MPI with
// distributed/mpi.hpp): each rank steps on its share of every global batch, and stage 4
// sums the raw gradients over the ranks in one fused call.
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
#include <string_view>
#include <type_traits>
#include <vector>

#include "dynsparse/core/attributes.hpp"
#include "dynsparse/core/denormals.hpp"
#include "dynsparse/core/error.hpp"
#include "dynsparse/core/finite.hpp"
#include "dynsparse/core/rng.hpp"
#include "dynsparse/core/state.hpp"
#include "dynsparse/data/dataset.hpp"
#include "dynsparse/loss/softmax_cross_entropy.hpp"
#include "dynsparse/network/masked_layer_view.hpp"
#include "dynsparse/network/sequential.hpp"
#include "dynsparse/optim/optimizer.hpp"
#include "dynsparse/optim/schedule.hpp"
#include "dynsparse/optim/update.hpp"
#include "dynsparse/train/config.hpp"
#include "dynsparse/train/data_parallel.hpp"
#include "dynsparse/train/progress.hpp"
#include "dynsparse/train/reports.hpp"

namespace dynsparse {

/// What an epoch callback of fit may return: proceed, or stop the run after this epoch.
enum class epoch_action { proceed, stop };

/// fit's default epoch callback: none.
struct no_epoch_callback {};

namespace detail {
template <class>
inline constexpr bool dependent_false = false;
template <class R>
concept epoch_callback_result = std::is_void_v<R> || std::is_same_v<R, epoch_action>;
}  // namespace detail

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

    /// Trains up to config.epochs epochs in all, evaluating on `eval` after each; calls
    /// on_epoch(report) after each epoch's report is printed. on_epoch returns void or an
    /// epoch_action: epoch_action::stop ends the run after this epoch (early stopping).
    /// stop_after (if not 0) ends this call after that epoch, as an interruption would: a
    /// checkpoint then resumes the same run (the schedule and step callbacks still count
    /// config.epochs). Throws invalid_argument on a finished run (epoch() == epochs: call
    /// extend() first) and when stop_after is not after the epochs done. With
    /// train_config::keep_best, the run's end (its last epoch or a stop) restores the
    /// parameters of its best epoch on `eval` (best_epoch()).
    template <class F = no_epoch_callback>
    std::vector<epoch_report> fit(const dataset& train, const dataset& eval, F&& on_epoch = {},
                                  std::size_t stop_after = 0) {
        using G = std::remove_cvref_t<F>;
        if constexpr (std::is_same_v<G, no_epoch_callback>) {
            return fit_loop(train, eval, {}, stop_after);
        } else if constexpr (!std::is_invocable_v<G&, const epoch_report&>) {
            static_assert(detail::dependent_false<G>,
                          "trainer::fit: the epoch callback must be callable with (const epoch_report&)");
            return {};
        } else if constexpr (!detail::epoch_callback_result<std::invoke_result_t<G&, const epoch_report&>>) {
            static_assert(detail::dependent_false<G>,
                          "trainer::fit: the epoch callback must return void or dynsparse::epoch_action "
                          "(epoch_action::stop ends training after this epoch)");
            return {};
        } else {
            using R = std::invoke_result_t<G&, const epoch_report&>;
            if constexpr (std::is_pointer_v<G> || requires { &G::operator bool; }) {  // std::function
                if (!on_epoch) return fit_loop(train, eval, {}, stop_after);
            }
            return fit_loop(train, eval, [&on_epoch](const epoch_report& r) {
                if constexpr (std::is_void_v<R>) {
                    on_epoch(r);
                    return epoch_action::proceed;
                } else {
                    return on_epoch(r);
                }
            }, stop_after);
        }
    }

    /// Sets the run's epoch count (at least the epochs done): more epochs continue a finished
    /// run. The schedule is read with the new count from the next epoch on (a schedule over
    /// the whole run, such as cosine, stretches its remaining part); step reports count the
    /// new total. A resumed run needs the same count in its train_config (or to extend the
    /// same way before fit).
    void set_epochs(std::size_t epochs) {
        if (epochs < epoch_)
            throw invalid_argument("trainer::set_epochs: " + std::to_string(epoch_) +
                                   " epochs are done already, cannot end the run after " + std::to_string(epochs));
        train_config c = cfg_;
        c.epochs = epochs;
        c.validate();
        cfg_.epochs = epochs;
        if (epoch_ > 0) saved_.next_learning_rate = cfg_.schedule(epoch_, cfg_.epochs);
    }
    /// Adds epochs to the run (set_epochs(config().epochs + extra)).
    void extend(std::size_t extra_epochs) { set_epochs(cfg_.epochs + extra_epochs); }

    /// The epoch (1-based) whose parameters keep_best restored at the end of the last fit; 0
    /// when keep_best is off or no fit has ended the run.
    std::size_t best_epoch() const { return best_.epoch; }

    /// One pass over the shuffled training set; returns its report without evaluation.
    DYNSPARSE_COMPILE_ONCE epoch_report train_epoch(const dataset& train) {
        check_dataset(train, "training set");
        check_recipe(train.size());
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
        check_shares(train.size());
        total_steps_ = steps * cfg_.epochs;
        progress_.start(epoch_, cfg_.epochs, steps);
        double loss_sum = 0;
        for (std::size_t s = 0; s < steps; ++s) {
            const std::size_t first = s * cfg_.batch_size;
            const std::size_t count = std::min(cfg_.batch_size, train.size() - first);
            gather_batch(train, std::span<const std::size_t>(order_.data() + first, count), x_, y_);
            if (cfg_.augment) cfg_.augment(x_, augment_rng_);
            const double loss = dp_.ranks > 1 ? step_share(count, r.learning_rate) : step(x_, y_, r.learning_rate);
            if (const std::string fault = non_finite_state(loss); !fault.empty()) {
                progress_.finish();
                std::ostringstream msg;
                msg << "training diverged at epoch " << epoch_ << ", step " << s + 1 << " of " << steps
                    << " (global step " << global_step_ << ", learning rate " << r.learning_rate
                    << ", alpha " << cfg_.alpha << "): " << fault
                    << "; the epoch was not reported or saved; try a smaller learning rate or alpha";
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
        if (dp_.end_of_epoch) dp_.end_of_epoch();
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
    /// regulariser). In a data-parallel run (set_data_parallel) x is this rank's share and
    /// every rank's share has as many rows. The stages, in order:
    double step(const matrix& x, std::span<const std::uint8_t> y, float lr) {
        if (dp_.ranks > 1) return step_distributed(x, y, lr, x.shape(0) * dp_.ranks);
        const matrix& out = run_forward(x, true);                          // 1. forward
        const double loss = loss_.value_and_gradient(out, y, grad_out_);   // 2. loss, dL/d(output)
        if (!std::isfinite(loss)) {
            ++global_step_;  // the step counts as taken in messages; nothing was updated
            return loss;
        }
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

    /// Makes this trainer one rank of a data-parallel run (train/data_parallel.hpp; usually
    /// through distributed::attach of distributed/mpi.hpp). Default: one process.
    void set_data_parallel(data_parallel_hooks h) {
        if (h.ranks == 0 || h.rank >= h.ranks || (h.ranks > 1 && (!h.sum || !h.sum_doubles)))
            throw invalid_argument("trainer::set_data_parallel: needs rank < ranks and both sums");
        if (h.ranks > 1 && cfg_.batch_size % h.ranks != 0)
            throw invalid_argument("data-parallel training: the global batch size " +
                                   std::to_string(cfg_.batch_size) + " does not divide by the " +
                                   std::to_string(h.ranks) + " processes; choose a multiple of " +
                                   std::to_string(h.ranks));
        dp_ = std::move(h);
    }
    const data_parallel_hooks& data_parallel() const { return dp_; }

    /// Every trainable parameter, in the order optimizers and the reducer see them.
    std::span<const parameter> parameters() const { return params_; }

    /// The last step's update (regulariser value, resets).
    const update_result& last_update() const { return last_; }
    std::string_view regulariser_name() const { return regulariser_name_; }
    std::string_view reset_rule_name() const { return reset_rule_name_; }

    /// Loss and accuracy on a dataset, in evaluation mode (the network's infer when it has
    /// one). Changes nothing a user can observe: reset rules apply in training steps only,
    /// and the buffers are the evaluation's own. Not for two threads on one trainer at once.
    DYNSPARSE_COMPILE_ONCE evaluation evaluate(const dataset& data) const {
        const flush_denormals_scope ftz(cfg_.flush_denormals);
        evaluation ev;
        ev.samples = data.size();
        if (data.size() == 0) return ev;
        std::size_t correct = 0;
        double loss_sum = 0;
        // Each rank evaluates its contiguous share of the set (all of it in one process).
        const batch_share mine = share_of(data.size(), dp_.rank, dp_.ranks);
        const std::size_t end = mine.first + mine.count;
        for (std::size_t first = mine.first; first < end; first += cfg_.eval_batch_size) {
            const std::size_t count = std::min(cfg_.eval_batch_size, end - first);
            eval_index_.resize(count);
            std::iota(eval_index_.begin(), eval_index_.end(), first);
            gather_batch(data, eval_index_, eval_x_, eval_y_);
            const matrix& out = run_inference(eval_x_);
            loss_sum += loss_.value_and_gradient(out, eval_y_, eval_grad_) * static_cast<double>(count);
            correct += count_correct(out, eval_y_);
        }
        if (dp_.ranks > 1) {
            double both[2] = {loss_sum, static_cast<double>(correct)};
            dp_.sum_doubles(both);
            loss_sum = both[0];
            correct = static_cast<std::size_t>(both[1]);
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
    /// The same for a callback with state of its own (a controller): state(v) visits its
    /// fields (core/state.hpp), which checkpoints save and restore after the trainer's, so
    /// a resumed run continues the callback where it was.
    void add_step_callback(std::function<void(const step_report&)> f, std::function<void(field_visitor&)> state) {
        add_step_callback(std::move(f));
        if (state) callback_states_.push_back(std::move(state));
    }

    /// Every epoch of the run, those before a resume included (they come from the checkpoint).
    std::span<const epoch_summary> history() const { return history_; }

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
    /// The recipe of the run (batch size, samples per epoch, the learning rate of the next
    /// epoch) is saved too: resuming with another one is refused (check_state, check_recipe)
    /// unless train_config::accept_recipe_change. So is the history, and the state of the
    /// step callbacks added with one.
    template <class V>
    void visit_state(V&& v) {
        v("epoch", epoch_);
        v("global_step", global_step_);
        v("alpha", cfg_.alpha);
        v("shuffle_rng", shuffle_rng_);
        v("augment_rng", augment_rng_);
        if constexpr (StatefulOptimizer<O>) opt_.visit_state(v);
        // The rate the schedule gives the next epoch now (a plateau schedule may have lowered it
        // since the epoch began): a resumed run must give the same. Reading overwrites it.
        if (epoch_ > 0) saved_.next_learning_rate = cfg_.schedule(epoch_, cfg_.epochs);
        v("batch_size", saved_.batch_size);
        v("samples_per_epoch", saved_.samples_per_epoch);
        v("next_learning_rate", saved_.next_learning_rate);
        history_fields_.clear();
        for (const epoch_summary& e : history_)
            history_fields_.insert(history_fields_.end(),
                                   {static_cast<double>(e.epoch), e.learning_rate, e.train_loss, e.regulariser,
                                    e.eval_loss, e.eval_accuracy, e.remaining, static_cast<double>(e.resets),
                                    e.alpha});
        v("history", history_fields_);
        unpack_history();
        if constexpr (std::is_convertible_v<V&, field_visitor&>) {
            // The count is in the name, so a reader with other callbacks names the difference.
            std::size_t count = callback_states_.size();
            v("step callbacks with state: " + std::to_string(count), count);
            for (const auto& state : callback_states_) state(v);
        }
    }

    /// Throws when the state (as restored from a checkpoint) is out of range or belongs to
    /// another recipe: alpha < 0, a step count below the epoch count, another batch size,
    /// another learning rate for the next epoch.
    void check_state() const {
        if (cfg_.alpha < 0) throw invalid_argument("trainer: alpha is " + std::to_string(cfg_.alpha) + ", below 0");
        if (global_step_ < epoch_)
            throw invalid_argument("trainer: " + std::to_string(epoch_) + " epochs done in " +
                                   std::to_string(global_step_) + " steps");
        if (history_.size() > epoch_)
            throw invalid_argument("trainer: a history of " + std::to_string(history_.size()) + " epochs after " +
                                   std::to_string(epoch_));
        resumed_ = epoch_ > 0;
        if (epoch_ == 0 || cfg_.accept_recipe_change) return;
        if (saved_.batch_size != cfg_.batch_size)
            throw invalid_argument("the run was trained with batch size " + std::to_string(saved_.batch_size) +
                                   ", this one has " + std::to_string(cfg_.batch_size) + recipe_hint);
        const float lr = cfg_.schedule(epoch_, cfg_.epochs);
        if (lr != saved_.next_learning_rate)
            throw invalid_argument("the run would train epoch " + std::to_string(epoch_ + 1) + " at learning rate " +
                                   std::to_string(saved_.next_learning_rate) + ", this one at " +
                                   std::to_string(lr) + " (another learning rate, schedule or epoch count)" +
                                   recipe_hint);
    }

protected:
    /// inputs, outputs: the network's input features and output classes (checked against
    /// datasets); parameters and masked: the network's, in network order.
    training_loop(L loss, O optimizer, train_config config, std::size_t inputs, std::size_t outputs,
                  std::vector<parameter> parameters, std::vector<masked_layer_view> masked,
                  std::string_view regulariser_name, std::string_view reset_rule_name,
                  std::vector<std::string> parameter_owners = {})
        : loss_(std::move(loss)), opt_(std::move(optimizer)), cfg_(std::move(config)),
          regulariser_name_(regulariser_name), reset_rule_name_(reset_rule_name),
          shuffle_rng_(cfg_.seed), augment_rng_(cfg_.seed ^ 0xA5A5A5A5A5A5A5A5ULL),
          progress_(cfg_.progress), params_(std::move(parameters)), masked_(std::move(masked)),
          owners_(std::move(parameter_owners)), inputs_(inputs), outputs_(outputs) {
        owners_.resize(params_.size());
        if (cfg_.batch_size == 0) throw invalid_argument("trainer: batch_size must be positive");
        cfg_.validate();
        if constexpr (requires { validate(opt_.settings()); }) validate(opt_.settings());
        if (cfg_.eval_batch_size == 0) cfg_.eval_batch_size = cfg_.batch_size;
    }
    ~training_loop() = default;

    /// The network's forward pass on a batch.
    virtual const matrix& run_forward(const matrix& x, bool training) = 0;
    /// Its inference in evaluation mode (const: see evaluate).
    virtual const matrix& run_inference(const matrix& x) const = 0;
    /// f(span) for each float field of the network's state (batch norm's running
    /// statistics): keep_best saves and restores them with the parameters.
    virtual void for_each_network_float_state(const std::function<void(std::span<float>)>& f) = 0;
    /// Its backward pass from dL/d(output), right before an update.
    virtual void run_backward(const matrix& d_output) = 0;
    /// The update pass of the network (optim/update.hpp).
    virtual update_result run_update(O& opt, float lr, float alpha, step_position at) = 0;

private:
    DYNSPARSE_COMPILE_ONCE std::vector<epoch_report> fit_loop(
        const dataset& train, const dataset& eval, const std::function<epoch_action(const epoch_report&)>& on_epoch,
        std::size_t stop_after) {
        check_dataset(train, "training set");
        check_dataset(eval, "evaluation set");
        if (epoch_ >= cfg_.epochs)
            throw invalid_argument("trainer::fit: the run is finished (" + std::to_string(epoch_) + " of " +
                                   std::to_string(cfg_.epochs) +
                                   " epochs done); call extend(extra_epochs) to train more");
        if (stop_after != 0 && stop_after <= epoch_)
            throw invalid_argument("trainer::fit: stop_after = " + std::to_string(stop_after) + " but " +
                                   std::to_string(epoch_) + " epochs are done already");
        std::vector<epoch_report> history;
        const std::size_t last = stop_after == 0 ? cfg_.epochs : std::min(stop_after, cfg_.epochs);
        best_ = {};
        bool stopped = false;
        for (std::size_t e = epoch_; e < last && !stopped; ++e) {
            epoch_report r = train_epoch(train);
            const auto t0 = std::chrono::steady_clock::now();
            r.eval = evaluate(eval);
            r.eval_seconds = seconds_since(t0);
            history_.push_back(epoch_summary::of(r));
            if (cfg_.log) print_epoch_report(*cfg_.log, r, cfg_.epochs);
            if (cfg_.keep_best != keep_best_by::none) keep_if_best(r);
            if (on_epoch && on_epoch(r) == epoch_action::stop) stopped = true;
            history.push_back(std::move(r));
        }
        if (best_.epoch != 0 && (stopped || epoch_ == cfg_.epochs)) restore_best();
        else best_.epoch = 0;
        return history;
    }

    /// keep_best: copies the parameters and the network's float state when this epoch is
    /// the best of this fit so far (ties keep the earlier epoch).
    void keep_if_best(const epoch_report& r) {
        const bool by_loss = cfg_.keep_best == keep_best_by::loss;
        const double score = by_loss ? -r.eval.loss : r.eval.accuracy;
        if (best_.epoch != 0 && !(score > best_.score)) return;
        best_.epoch = r.epoch;
        best_.score = score;
        std::size_t k = 0;
        auto keep = [&](std::span<const float> v) {
            if (k == best_.values.size()) best_.values.emplace_back();
            best_.values[k++].assign(v.begin(), v.end());
        };
        for (const parameter& p : params_) keep(p.value);
        for_each_network_float_state([&](std::span<float> v) { keep(v); });
    }

    void restore_best() {
        std::size_t k = 0;
        auto put = [&](std::span<float> v) {
            const std::vector<float>& b = best_.values[k++];
            std::copy(b.begin(), b.end(), v.begin());
        };
        for (const parameter& p : params_) put(p.value);
        for_each_network_float_state(put);
        for (const auto& l : masked_) l.update_mask();  // masks and statistics of the restored W and t
        if (cfg_.log)
            *cfg_.log << "keep_best: restored the parameters of epoch " << best_.epoch << '\n';
    }

    static constexpr const char* recipe_hint =
        "; resuming would not continue that run (train_config::accept_recipe_change, --accept-recipe-change "
        "in the examples, goes on with the new recipe)";

    /// Before an epoch: the training set must be as large as the run's (a resumed one).
    void check_recipe(std::size_t samples) {
        if (resumed_ && saved_.samples_per_epoch != samples && !cfg_.accept_recipe_change)
            throw invalid_argument("the run was trained on " + std::to_string(saved_.samples_per_epoch) +
                                   " samples per epoch, this training set has " + std::to_string(samples) +
                                   recipe_hint);
        resumed_ = false;
        saved_.batch_size = cfg_.batch_size;
        saved_.samples_per_epoch = samples;
        saved_.next_learning_rate = cfg_.schedule(epoch_ + 1, cfg_.epochs);
    }

    void unpack_history() {
        // Timings stay out of checkpoints (a resumed run's file equals the straight run's):
        // epochs read back keep the timings of this process only.
        constexpr std::size_t fields = 9;
        std::vector<epoch_summary> read;
        for (std::size_t i = 0; i + fields <= history_fields_.size(); i += fields) {
            const double* f = history_fields_.data() + i;
            epoch_summary e{static_cast<std::size_t>(f[0]), f[1], f[2], f[3], f[4], f[5], f[6],
                            static_cast<std::size_t>(f[7]), 0, 0, f[8]};
            const std::size_t k = read.size();
            if (k < history_.size() && history_[k].epoch == e.epoch) {
                e.train_seconds = history_[k].train_seconds;
                e.eval_seconds = history_[k].eval_seconds;
            }
            read.push_back(e);
        }
        history_ = std::move(read);
    }

    void reduce_gradients() {
        if (reducer_) reducer_(params_);
    }

    /// Empty when the step left everything finite; otherwise what is not: the loss, the
    /// regulariser's value or the first parameter holding a NaN or infinity (its layer, its
    /// name and the element). Every parameter is checked after every step, so a bad value
    /// is caught before any report, callback or checkpoint sees it.
    std::string non_finite_state(double loss) const {
        std::ostringstream what;
        for (std::size_t p = 0; p < params_.size(); ++p) {
            const std::span<const float> v = params_[p].value;
            if (const std::size_t i = first_non_finite(v); i != all_finite) {
                what << owners_[p] << (owners_[p].empty() ? "" : " ") << params_[p].name << '[' << i
                     << "] is " << v[i] << " after the update";
                if (!std::isfinite(loss)) what << " (the loss is " << loss << ')';
                return what.str();
            }
        }
        if (!std::isfinite(loss)) what << "the loss is " << loss;
        else if (!std::isfinite(last_.regulariser)) what << "the regulariser's value is " << last_.regulariser;
        return what.str();
    }

    void check_shares(std::size_t samples) const {
        if (dp_.ranks <= 1) return;
        const std::size_t last = samples % cfg_.batch_size;
        if (last != 0 && last < dp_.ranks)
            throw invalid_argument("data-parallel training: the last batch of the epoch has " +
                                   std::to_string(last) + " samples, fewer than the " +
                                   std::to_string(dp_.ranks) +
                                   " processes; change the batch size or the training set size");
    }

    /// This rank's rows of the global batch in x_, y_ (`count` rows), then the step.
    double step_share(std::size_t count, float lr) {
        const batch_share mine = share_of(count, dp_.rank, dp_.ranks);
        const std::size_t f = x_.shape(1);
        ensure_shape(xs_, mine.count, f);
        std::copy_n(x_.data() + mine.first * f, mine.count * f, xs_.data());
        ys_.assign(y_.begin() + static_cast<std::ptrdiff_t>(mine.first),
                   y_.begin() + static_cast<std::ptrdiff_t>(mine.first + mine.count));
        return step_distributed(xs_, ys_, lr, count);
    }

    /// The step of one rank: its share's dL/d(output) scaled by share/global, so that the
    /// summed raw gradients are those of the global batch's mean loss; one fused sum of
    /// every gradient and of the loss (as a float pair, hi + lo); then the same update.
    double step_distributed(const matrix& x, std::span<const std::uint8_t> y, float lr, std::size_t global) {
        const matrix& out = run_forward(x, true);
        const double local = loss_.value_and_gradient(out, y, grad_out_);
        const double weight = static_cast<double>(x.shape(0)) / static_cast<double>(global);
        const float scale = static_cast<float>(weight);
        for (float& g : grad_out_) g *= scale;
        run_backward(grad_out_);
        const double loss = fused_gradient_sum(params_, local * weight, fused_, dp_.sum);
        reduce_gradients();
        if (!std::isfinite(loss)) {  // every rank sees the same sum
            ++global_step_;
            return loss;
        }
        last_ = run_update(opt_, lr, cfg_.alpha, {global_step_, total_steps_});
        ++global_step_;
        return loss;
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

    mutable L loss_;  // the Loss concept calls it non-const; evaluate is const
    O opt_;
    train_config cfg_;
    std::string_view regulariser_name_, reset_rule_name_;
    rng shuffle_rng_;
    rng augment_rng_;
    progress_bar progress_;
    std::vector<parameter> params_;
    std::vector<masked_layer_view> masked_;
    std::vector<std::string> owners_;  ///< per parameter: "layer 1 (masked_dense<...>)"
    std::size_t inputs_, outputs_;
    std::vector<std::size_t> order_;
    matrix x_, grad_out_;
    std::vector<std::uint8_t> y_;
    mutable std::vector<std::size_t> eval_index_;  // evaluate's own buffers
    mutable matrix eval_x_, eval_grad_;
    mutable std::vector<std::uint8_t> eval_y_;
    struct best_state {
        std::size_t epoch = 0;  // 0: none kept
        double score = 0;
        std::vector<std::vector<float>> values;  // parameters, then the network's float state
    } best_;
    std::vector<std::function<void(const step_report&)>> step_callbacks_;
    std::function<void(std::span<const parameter>)> reducer_;
    std::vector<std::function<void(field_visitor&)>> callback_states_;
    std::vector<epoch_summary> history_;
    std::vector<double> history_fields_;  // history_ as a checkpoint field
    struct recipe {
        std::size_t batch_size = 0, samples_per_epoch = 0;
        float next_learning_rate = 0;
    } saved_;
    mutable bool resumed_ = false;  // set by check_state after a restore, until the next epoch
    data_parallel_hooks dp_;
    matrix xs_;
    std::vector<std::uint8_t> ys_;
    std::vector<float> fused_;
    update_result last_;
    std::size_t epoch_ = 0, global_step_ = 0, total_steps_ = 0;
};

namespace detail {
/// Hands each std::span<float> field of a visit_state walk to f; skips the other fields.
class float_field_visitor final : public field_visitor {
public:
    explicit float_field_visitor(const std::function<void(std::span<float>)>& f) : f_(f) {}
    void operator()(std::string_view, std::size_t&) override {}
    void operator()(std::string_view, float&) override {}
    void operator()(std::string_view, double&) override {}
    void operator()(std::string_view, bool&) override {}
    void operator()(std::string_view, rng&) override {}
    void operator()(std::string_view, std::span<float> v) override { f_(v); }
    void operator()(std::string_view, std::vector<std::vector<float>>&) override {}
    void operator()(std::string_view, std::vector<double>&) override {}

private:
    const std::function<void(std::span<float>)>& f_;
};

template <class Net>
std::vector<parameter> parameters_of(Net& net) {
    std::vector<parameter> params;
    net.for_each_parameter([&](const parameter& p) { params.push_back(p); });
    return params;
}

/// For each parameter (for_each_parameter order), the top-level layer holding it, for
/// messages: "layer 1 (masked_dense<300, ...>)".
template <class Net>
std::vector<std::string> parameter_owners(Net& net) {
    std::vector<std::string> owners;
    net.for_each_layer([&](auto& layer, std::size_t i) {
        using L = std::remove_cvref_t<decltype(layer)>;
        const std::string owner = "layer " + std::to_string(i) + " (" + describe_of<L>() + ")";
        layer.for_each_parameter([&](const parameter&) { owners.push_back(owner); });
    });
    return owners;
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
                              detail::parameters_of(net), dynsparse::masked_layers(net), R::name, Rule::name,
                              detail::parameter_owners(net)),
          net_(net), pass_(net, std::move(regulariser), std::move(rule)) {}

    Net& network() { return net_; }

private:
    const matrix& run_forward(const matrix& x, bool training) override { return net_.forward(x, training); }
    const matrix& run_inference(const matrix& x) const override {
        if constexpr (requires { net_.infer(x); })
            return net_.infer(x);
        else
            return net_.forward(x, false);
    }
    void for_each_network_float_state(const std::function<void(std::span<float>)>& f) override {
        if constexpr (HasState<Net>) {
            detail::float_field_visitor v(f);
            net_.visit_state(v);
        }
    }
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
