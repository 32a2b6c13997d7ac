#pragma once
// train_config: the settings of a training run (train/trainer.hpp).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iostream>
#include <ostream>

#include "dynsparse/core/rng.hpp"
#include "dynsparse/core/tensor.hpp"
#include "dynsparse/optim/schedule.hpp"

namespace dynsparse {

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
};

}  // namespace dynsparse
