#pragma once
// Learning-rate schedules: runtime values (hyperparameters are not template arguments).
// A schedule maps (epoch, total epochs) to the learning rate of that epoch, as PyTorch's
// per-epoch schedulers do.
#include <cmath>
#include <cstddef>
#include <functional>
#include <numbers>
#include <string>
#include <vector>

#include "dynsparse/core/error.hpp"

namespace dynsparse {

using lr_schedule = std::function<float(std::size_t epoch, std::size_t total_epochs)>;

inline lr_schedule constant_lr(float lr) {
    return [lr](std::size_t, std::size_t) { return lr; };
}

/// Checks multistep milestones: strictly increasing epochs.
inline void validate_milestones(const std::vector<std::size_t>& milestones) {
    for (std::size_t i = 1; i < milestones.size(); ++i)
        if (milestones[i] <= milestones[i - 1])
            throw invalid_argument("milestones must be strictly increasing, got " +
                                   std::to_string(milestones[i - 1]) + " then " + std::to_string(milestones[i]));
}

/// lr * gamma^(number of milestones <= epoch), e.g. multi_step_lr(0.1, {80, 120}, 0.1).
/// Throws invalid_argument unless the milestones strictly increase.
inline lr_schedule multi_step_lr(float lr, std::vector<std::size_t> milestones, float gamma = 0.1f) {
    validate_milestones(milestones);
    return [lr, milestones = std::move(milestones), gamma](std::size_t epoch, std::size_t) {
        float r = lr;
        for (std::size_t m : milestones)
            if (epoch >= m) r *= gamma;
        return r;
    };
}

/// Cosine annealing from lr at epoch 0 to min_lr at the last epoch.
inline lr_schedule cosine_lr(float lr, float min_lr = 0.0f) {
    return [lr, min_lr](std::size_t epoch, std::size_t total) {
        if (total <= 1) return lr;
        const double p = static_cast<double>(epoch) / static_cast<double>(total);
        return static_cast<float>(min_lr + 0.5 * (lr - min_lr) * (1 + std::cos(std::numbers::pi * p)));
    };
}

}  // namespace dynsparse
