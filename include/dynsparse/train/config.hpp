#pragma once
// train_config: the settings of a training run (train/trainer.hpp).
#include <cmath>
#include <cstdio>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iostream>
#include <ostream>
#include <string>
#include <vector>

#include "dynsparse/core/error.hpp"
#include "dynsparse/core/rng.hpp"
#include "dynsparse/core/tensor.hpp"
#include "dynsparse/optim/optimizer.hpp"
#include "dynsparse/optim/schedule.hpp"

namespace dynsparse {

/// What keep_best compares epochs by, on the evaluation set given to fit.
enum class keep_best_by {
    none,      ///< keep the last epoch's parameters (the default)
    accuracy,  ///< the highest accuracy (ties: the earlier epoch)
    loss,      ///< the lowest loss
};

struct train_config {
    std::size_t epochs = 20;
    std::size_t batch_size = 64;
    std::size_t eval_batch_size = 1000;
    float alpha = 5e-4f;                     ///< weight of the sparse regulariser
    lr_schedule schedule = constant_lr(0.01f);
    std::uint64_t seed = 1;                  ///< shuffling (initialisation is the network's)
    bool progress = true;                    ///< progress bar when stderr is a terminal
    bool flush_denormals = true;             ///< FTZ/DAZ while training (see core/denormals.hpp)
    std::ostream* log = nullptr;             ///< per-epoch report lines; null = silent
    std::ostream* warnings = &std::cerr;     ///< warning lines (thrashing resets); null = none
    /// A layer whose thresholds the reset rule resets more often than this in one epoch is
    /// reported as thrashing (layer_report::thrashing, a warning line).
    std::size_t thrash_resets_per_epoch = 3;
    /// Applied to each training batch (batch x features) after it is gathered, e.g.
    /// crop_flip_augmentation (data/cifar10.hpp); draws from the trainer's own generator,
    /// seeded from `seed`. Empty = no augmentation. Evaluation batches are never augmented.
    std::function<void(matrix& batch, rng& gen)> augment;
    /// Resuming a checkpoint with another batch size, training-set size or learning rate
    /// is refused unless this is set (then the run goes on with the new recipe).
    bool accept_recipe_change = false;
    /// Opt-in: at the end of a fit that ends the run (its last epoch, or an epoch callback's
    /// epoch_action::stop), restore the parameters and the network's float state (batch
    /// norm's running statistics) of the fit's best epoch on its evaluation set. The
    /// optimizer's state, the epoch count and the history stay those of the last epoch.
    keep_best_by keep_best = keep_best_by::none;

    /// Largest accepted epoch count (a typo such as 10^20 epochs is an error, not a week).
    static constexpr std::size_t max_epochs = 1'000'000;

    /// Throws invalid_argument naming the field and its value when a setting is out of
    /// range: epochs in [1, max_epochs], batch_size > 0, alpha finite and >= 0, the
    /// schedule's first learning rate finite and > 0. The trainer calls it on construction.
    void validate() const;
};

namespace detail {

inline std::string setting_text(double v) {
    char b[40];
    std::snprintf(b, sizeof b, "%g", v);
    return b;
}

[[noreturn]] inline void bad_setting(const char* owner, const char* field, double v, const char* rule) {
    throw invalid_argument(std::string(owner) + ": " + field + " = " + setting_text(v) + " is invalid (" +
                           rule + ")");
}

inline void check_non_negative(const char* owner, const char* field, float v) {
    if (!std::isfinite(v) || v < 0) bad_setting(owner, field, v, "need a finite value >= 0");
}

}  // namespace detail

inline void train_config::validate() const {
    if (epochs == 0 || epochs > max_epochs)
        detail::bad_setting("train_config", "epochs", static_cast<double>(epochs), "need 1 to 1000000");
    if (batch_size == 0) detail::bad_setting("train_config", "batch_size", 0, "need > 0");
    detail::check_non_negative("train_config", "alpha", alpha);
    if (!schedule) throw invalid_argument("train_config: schedule is empty");
    const float lr = schedule(0, epochs);
    if (!std::isfinite(lr) || !(lr > 0))
        detail::bad_setting("train_config", "learning rate (schedule at epoch 0)", lr, "need a finite value > 0");
}

/// Checks SGD's options: momentum in [0, 1), weight decay finite and >= 0.
inline void validate(const sgd::options& o) {
    if (!std::isfinite(o.momentum) || o.momentum < 0 || o.momentum >= 1)
        detail::bad_setting("sgd", "momentum", o.momentum, "need 0 <= momentum < 1");
    detail::check_non_negative("sgd", "weight_decay", o.weight_decay);
    if (o.nesterov && o.momentum <= 0) throw invalid_argument("sgd: Nesterov momentum needs momentum > 0");
}

/// Checks Adam's options: beta1 and beta2 in [0, 1), epsilon finite and > 0, weight decay
/// finite and >= 0.
inline void validate(const adam::options& o) {
    if (!std::isfinite(o.beta1) || o.beta1 < 0 || o.beta1 >= 1)
        detail::bad_setting("adam", "beta1", o.beta1, "need 0 <= beta1 < 1");
    if (!std::isfinite(o.beta2) || o.beta2 < 0 || o.beta2 >= 1)
        detail::bad_setting("adam", "beta2", o.beta2, "need 0 <= beta2 < 1");
    if (!std::isfinite(o.epsilon) || !(o.epsilon > 0))
        detail::bad_setting("adam", "epsilon", o.epsilon, "need a finite value > 0");
    detail::check_non_negative("adam", "weight_decay", o.weight_decay);
}

// validate_milestones (strictly increasing epochs) is in optim/schedule.hpp, next to multi_step_lr.

/// Checks a validation fraction: in [0, 1) and not NaN.
inline void validate_val_fraction(float f) {
    if (!(f >= 0 && f < 1)) detail::bad_setting("split_validation", "val_fraction", f, "need 0 <= fraction < 1");
}

}  // namespace dynsparse
