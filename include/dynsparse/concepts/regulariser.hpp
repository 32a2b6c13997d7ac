#pragma once
// The Regulariser concept: the sparse regulariser on the thresholds, a compile-time policy
// of the trainer (train/trainer.hpp) and the update pass (optim/update.hpp).
//
//   R::name                          a short name for reports and flags ("exp_decay");
//   r.apply(t, dt, scope) -> double  adds d(term)/dt to dt for thresholds t (a block of
//                                    one layer's thresholds: several calls cover a layer)
//                                    and returns the term's value on that block.
// The update pass calls apply once per threshold per step, right before the threshold is
// updated; the values it returns are summed into the step's regulariser value (so no
// threshold's term is computed twice). Blocks of one layer may be applied from several
// threads at once: apply must only touch its own elements. It is not called when
// alpha is 0.
#include <concepts>
#include <cstddef>
#include <span>
#include <string_view>

namespace dynsparse {

/// What a regulariser knows about the layer a block of thresholds belongs to.
struct regulariser_scope {
    float alpha;                   ///< the regulariser weight of this step (> 0)
    std::size_t layer_thresholds;  ///< thresholds of the whole layer
    std::size_t layer_weights;     ///< weights of the whole layer
};

template <class R>
concept Regulariser = requires(const R& r, std::span<const float> t, std::span<float> dt,
                               const regulariser_scope& scope) {
    { R::name } -> std::convertible_to<std::string_view>;
    { r.apply(t, dt, scope) } -> std::same_as<double>;
};

}  // namespace dynsparse
