#pragma once
// The ResetRule concept: when a masked layer's thresholds go back to 0 (its mask to
// dense), a compile-time policy of the trainer and the update pass (optim/update.hpp).
//
//   R::name                               a short name for reports and flags;
//   r.should_reset(query) -> bool         asked once per masked layer per training step,
//                                         after the layer's new mask is made.
// A reset sets the layer's thresholds to 0, recomputes its mask and counts one reset in
// its statistics. Rules are consulted in training steps only: evaluation, export and
// inference never reset (dynsparse differs here from the reference code, which checks
// the rule in every forward pass).
#include <concepts>
#include <cstddef>
#include <string_view>

namespace dynsparse {

/// One layer after a training step's update.
struct reset_query {
    std::size_t kept;         ///< weights kept by the new mask
    std::size_t total;        ///< weights of the layer
    std::size_t resets;       ///< resets of this layer so far
    std::size_t step;         ///< 0-based global step of the training run
    std::size_t total_steps;  ///< steps the run will take; 0 when unknown
};

template <class R>
concept ResetRule = requires(const R& r, const reset_query& q) {
    { R::name } -> std::convertible_to<std::string_view>;
    { r.should_reset(q) } -> std::same_as<bool>;
};

}  // namespace dynsparse
