#pragma once
// Target-sparsity mode: the user asks for a model remaining ratio (say 5%) and alpha is
// adapted during training so that the model lands on it at the end, without hand-tuning.
//
// Why a controller and not a formula: alpha is DST's only sparsity knob but its effect is
// indirect and delayed (alpha raises thresholds through the optimizer's momentum; the mask
// follows the thresholds and the weights), it depends on the network, the data and the
// learning rate, and the remaining ratio mostly falls (pruned weights come back only
// slowly). The controller therefore tracks a *reference trajectory* rather than the target
// itself: r_ref(p) falls log-linearly from 1 to the target over the first `reach` fraction
// of training (p = step / total steps) and then holds the target, so the last part of
// training is spent holding the target, not chasing it.
//
// Control law (every `every` steps), in log space because alpha acts multiplicatively and
// the ratio spans decades:
//
//     e      = ln(remaining) - ln(r_ref(p))          (> 0: too dense, prune harder)
//     I     += ki * e * dt                           (dt in epochs; integral term)
//     ln a   = ln a0 + kp * e + I                    (clamped to [alpha_min, alpha_max])
//
// The plant (ln remaining as a function of alpha) is itself close to an integrator, so the
// proportional term gives a stable loop and the integral term finds the alpha that holds
// the ratio steady (where the regulariser's pull on the thresholds balances the loss's).
// The integral is clamped (anti-windup) and frozen while alpha sits at a bound. When the
// reset rule fires (a layer fell to <= 1% and its thresholds went back to 0), the layer is
// suddenly dense again; that is a sign that alpha was too high for it, so the integral is
// lowered by ln(reset_backoff) instead of reacting to the jump in the ratio.
//
// The controller is independent of the trainer (it maps (step, remaining, resets) to an
// alpha), so it can be tested on a simulated response; attach_target_remaining() connects
// it to a trainer through a step callback, whose state checkpoints carry.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <memory>
#include <string>

#include "dynsparse/core/error.hpp"
#include "dynsparse/train/trainer.hpp"

namespace dynsparse {

struct target_remaining_options {
    double target = 0.05;        ///< model remaining ratio to land on, in (0, 1)
    double reach = 0.6;          ///< fraction of training after which r_ref equals the target
    double kp = 5.0;             ///< proportional gain on the log error
    double ki = 5.0;             ///< integral gain, per epoch
    double integral_limit = 6;   ///< |I| <= this (anti-windup), in ln(alpha) units
    double max_error = 1.0;      ///< |e| is clamped to this before use
    std::size_t every = 10;      ///< update alpha every this many steps
    float alpha_min = 1e-6f;
    float alpha_max = 0.1f;
    double reset_backoff = 0.5;  ///< alpha factor applied when the reset rule fires
};

class target_remaining_controller {
public:
    /// alpha0: the starting alpha (the user's --alpha); total_steps and steps_per_epoch
    /// set the time base of the reference and of the integral.
    target_remaining_controller(target_remaining_options o, float alpha0, std::size_t total_steps,
                                std::size_t steps_per_epoch)
        : o_(o), log_alpha0_(std::log(static_cast<double>(alpha0))), alpha_(alpha0),
          total_steps_(total_steps), steps_per_epoch_(steps_per_epoch) {
        if (!(o.target > 0 && o.target < 1))
            throw invalid_argument("target remaining ratio must be in (0, 1), got " +
                                   std::to_string(o.target));
        if (!(alpha0 > 0) || !std::isfinite(alpha0))
            throw invalid_argument("target-sparsity mode needs a positive starting alpha, got " +
                                   std::to_string(alpha0));
        if (!(o.reach > 0 && o.reach <= 1))
            throw invalid_argument("target_remaining_options::reach must be in (0, 1]");
        if (total_steps == 0 || steps_per_epoch == 0 || o.every == 0)
            throw invalid_argument("target_remaining_controller: step counts must be positive");
        if (!(o.alpha_min > 0 && o.alpha_min < o.alpha_max))
            throw invalid_argument("target_remaining_options: need 0 < alpha_min < alpha_max");
    }

    /// The reference remaining ratio at training progress p in [0, 1].
    double reference(double progress) const {
        const double p = std::clamp(progress / o_.reach, 0.0, 1.0);
        return std::exp(p * std::log(o_.target));
    }

    /// Called after global step `step` (1-based) with the model's remaining ratio and the
    /// total number of reset-rule firings so far; returns the alpha for the next step.
    float update(std::size_t step, double remaining, std::size_t resets = 0) {
        if (resets > resets_seen_) {
            resets_seen_ = resets;
            integral_ = std::max(integral_ + std::log(o_.reset_backoff), -o_.integral_limit);
            set_log_alpha(log_alpha0_ + integral_);  // no proportional kick from the jump
            return alpha_;
        }
        if (step % o_.every != 0) return alpha_;
        const double progress = static_cast<double>(step) / static_cast<double>(total_steps_);
        // Clamped: a reset (or the dense start) must not kick alpha by decades at once.
        error_ = std::clamp(std::log(std::max(remaining, 1e-9)) - std::log(reference(progress)),
                            -o_.max_error, o_.max_error);
        const double dt = static_cast<double>(o_.every) / static_cast<double>(steps_per_epoch_);
        const double candidate = std::clamp(integral_ + o_.ki * error_ * dt, -o_.integral_limit,
                                            o_.integral_limit);
        // Anti-windup: do not integrate further into a bound alpha already sits at.
        const double la = log_alpha0_ + o_.kp * error_ + candidate;
        const bool high = la > std::log(static_cast<double>(o_.alpha_max)) && error_ > 0;
        const bool low = la < std::log(static_cast<double>(o_.alpha_min)) && error_ < 0;
        if (!high && !low) integral_ = candidate;
        set_log_alpha(log_alpha0_ + o_.kp * error_ + integral_);
        return alpha_;
    }

    float alpha() const { return alpha_; }
    double last_error() const { return error_; }  ///< ln(remaining / reference), last update
    double integral() const { return integral_; }
    const target_remaining_options& options() const { return o_; }

    /// Checkpoint fields (core/state.hpp): a resumed run continues the control loop.
    template <class V>
    void visit_state(V&& v) {
        // The time base is in the name: a run with another length or batch is another run.
        std::size_t steps = total_steps_;
        v("target_remaining.total_steps: " + std::to_string(total_steps_), steps);
        v("target_remaining.log_alpha0", log_alpha0_);
        v("target_remaining.alpha", alpha_);
        v("target_remaining.integral", integral_);
        v("target_remaining.error", error_);
        v("target_remaining.resets_seen", resets_seen_);
    }

private:
    void set_log_alpha(double la) {
        alpha_ = static_cast<float>(std::clamp(std::exp(la), static_cast<double>(o_.alpha_min),
                                               static_cast<double>(o_.alpha_max)));
    }

    target_remaining_options o_;
    double log_alpha0_;
    float alpha_;
    std::size_t total_steps_, steps_per_epoch_;
    double integral_ = 0, error_ = 0;
    std::size_t resets_seen_ = 0;
};

/// Connects a controller to a trainer: after every step it reads the model's remaining
/// ratio and sets the trainer's alpha. The trainer's current alpha is the starting value;
/// `train_size` is the number of training samples (for the step counts). Returns the
/// controller, shared with the callback, so the caller can read its state.
template <Loss L, Optimizer O>
std::shared_ptr<target_remaining_controller> attach_target_remaining(
    training_loop<L, O>& trainer, const target_remaining_options& o, std::size_t train_size) {
    const std::size_t batch = trainer.config().batch_size;
    const std::size_t steps_per_epoch = (train_size + batch - 1) / batch;
    auto ctl = std::make_shared<target_remaining_controller>(
        o, trainer.alpha(), steps_per_epoch * trainer.config().epochs, steps_per_epoch);
    trainer.add_step_callback(
        [&trainer, ctl](const step_report& s) {
            const mask_totals t = totals(trainer.masked_layers());
            trainer.set_alpha(ctl->update(s.global_step, t.remaining(), t.resets));
        },
        [ctl](field_visitor& v) { ctl->visit_state(v); });
    return ctl;
}

}  // namespace dynsparse
