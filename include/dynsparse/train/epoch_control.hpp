#pragma once
// Epoch callbacks for fit (train/trainer.hpp) that control a run from its evaluations:
//
//   ds::reduce_on_plateau plateau(ds::constant_lr(0.01f), {.factor = 0.5f, .patience = 2});
//   cfg.schedule = plateau.schedule();        // before the trainer is made
//   ds::early_stopping stop({.patience = 5});
//   tr.fit(train, val, [&](const ds::epoch_report& r) { plateau(r); return stop(r); });
//
// Both watch the evaluation loss of each epoch (the set given to fit: the validation
// split). Their state lives in memory only, not in checkpoints: a resumed run starts them
// afresh (and reduce_on_plateau at its base schedule).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <memory>
#include <string>

#include "dynsparse/core/error.hpp"
#include "dynsparse/optim/schedule.hpp"
#include "dynsparse/train/reports.hpp"
#include "dynsparse/train/trainer.hpp"

namespace dynsparse {

namespace detail {
/// Counts the epochs since the evaluation loss last improved by more than min_delta.
struct plateau_counter {
    double best = std::numeric_limits<double>::infinity();
    std::size_t bad_epochs = 0;

    /// Returns true when the loss improved (a NaN loss never does).
    bool observe(double loss, double min_delta) {
        if (loss < best - min_delta) {
            best = loss;
            bad_epochs = 0;
            return true;
        }
        ++bad_epochs;
        return false;
    }
};
}  // namespace detail

/// reduce_on_plateau's settings (outside the class: a nested aggregate cannot be a default argument).
struct plateau_options {
    float factor = 0.1f;       ///< the scale's factor per reduction, in (0, 1)
    std::size_t patience = 2;  ///< epochs without improvement before a reduction
    double min_delta = 0;      ///< an improvement is a loss below the best minus this
    float min_scale = 0;       ///< the scale's floor
};

/// early_stopping's settings.
struct early_stopping_options {
    std::size_t patience = 5;  ///< epochs without improvement before the stop
    double min_delta = 0;      ///< an improvement is a loss below the best minus this
};

/// Multiplies a schedule's learning rate by `factor` once the evaluation loss has not
/// improved by more than min_delta for `patience` epochs (then waits `patience` epochs
/// again), as PyTorch's ReduceLROnPlateau in mode "min". The scale stops at min_scale.
/// Copies share one state; schedule() reads it, so the next epoch uses the new rate.
class reduce_on_plateau {
public:
    using options = plateau_options;

    explicit reduce_on_plateau(lr_schedule base, options o = {})
        : state_(std::make_shared<state>(std::move(base), o)) {
        if (!state_->base) throw invalid_argument("reduce_on_plateau: the base schedule is empty");
        if (!(o.factor > 0 && o.factor < 1))
            throw invalid_argument("reduce_on_plateau: factor = " + std::to_string(o.factor) +
                                   " is invalid (need 0 < factor < 1)");
        if (o.patience == 0) throw invalid_argument("reduce_on_plateau: patience must be at least 1 epoch");
        if (!(o.min_delta >= 0) || !std::isfinite(o.min_delta))
            throw invalid_argument("reduce_on_plateau: min_delta must be finite and >= 0");
        if (!(o.min_scale >= 0 && o.min_scale <= 1))
            throw invalid_argument("reduce_on_plateau: min_scale must be in [0, 1]");
    }

    /// The schedule to put in train_config::schedule: the base rate times scale().
    lr_schedule schedule() const {
        return [s = state_](std::size_t epoch, std::size_t total) { return s->base(epoch, total) * s->scale; };
    }

    /// Call after each epoch (as fit's epoch callback, or from it).
    void operator()(const epoch_report& r) {
        state& s = *state_;
        if (s.counter.observe(r.eval.loss, s.opt.min_delta) || s.counter.bad_epochs < s.opt.patience) return;
        s.scale = std::max(s.scale * s.opt.factor, s.opt.min_scale);
        s.counter.bad_epochs = 0;
        ++s.reductions;
    }

    float scale() const { return state_->scale; }
    std::size_t reductions() const { return state_->reductions; }

private:
    struct state {
        state(lr_schedule b, options o) : base(std::move(b)), opt(o) {}
        lr_schedule base;
        options opt;
        float scale = 1;
        std::size_t reductions = 0;
        detail::plateau_counter counter;
    };
    std::shared_ptr<state> state_;
};

/// Early stopping: epoch_action::stop once the evaluation loss has not improved by more
/// than min_delta for `patience` epochs. With train_config::keep_best the run then ends on
/// its best epoch's parameters.
class early_stopping {
public:
    using options = early_stopping_options;

    explicit early_stopping(options o = {}) : opt_(o) {
        if (o.patience == 0) throw invalid_argument("early_stopping: patience must be at least 1 epoch");
        if (!(o.min_delta >= 0) || !std::isfinite(o.min_delta))
            throw invalid_argument("early_stopping: min_delta must be finite and >= 0");
    }

    epoch_action operator()(const epoch_report& r) {
        counter_.observe(r.eval.loss, opt_.min_delta);
        return counter_.bad_epochs >= opt_.patience ? epoch_action::stop : epoch_action::proceed;
    }

    /// The lowest evaluation loss seen.
    double best_loss() const { return counter_.best; }

private:
    options opt_;
    detail::plateau_counter counter_;
};

}  // namespace dynsparse
