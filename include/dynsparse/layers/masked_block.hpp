#pragma once
// masked_block<S, G>: the typed view of a masked layer's DST state that the update pass
// (optim/update.hpp) works through: W, its gradient, t, dt and the mask of a rows x cols
// weight matrix, with the per-block operations of one training step.
//
// One step over a block of rows [r0, r1) is, in order:
//   complete_rows(r0, r1)        the deferred surrogate pass: dL/dWm -> dL/dW in place and
//                                the rows' structure shares into dt (only while pending());
//   (regulariser on t, optimizer on t[r0, r1) when row_thresholds(), then on W's rows)
//   mask_rows(r0, r1)            the next mask of those rows, returns the weights kept;
//   clear_gradient_rows(r0, r1)  zeroes the used gradient rows while they are in cache
//                                (only while pending(): the next backward accumulates);
// and once for the layer, after every block: finish(kept), then possibly reset().
// Without row_thresholds() the thresholds are shared across rows: the surrogate pass ran
// in backward, and t is regularised and updated whole before the weights' blocks.
#include <algorithm>
#include <cstddef>
#include <span>

#include "dynsparse/layers/masked_weights.hpp"

namespace dynsparse {

template <Surrogate S, ThresholdGranularity G>
class masked_block {
public:
    explicit masked_block(detail::masked_weights_impl<S, G>& layer) : l_(layer) {}

    std::size_t rows() const { return l_.rows_; }
    std::size_t cols() const { return l_.cols_; }
    /// Threshold r belongs to row r alone: t and dt are updated with their row's block.
    bool row_thresholds() const { return l_.row_thresholds_; }
    /// The surrogate pass of the last backward is deferred to complete_rows.
    bool pending() const { return l_.pending_; }

    std::span<float> weight() { return {l_.weight_.data(), l_.weight_.size()}; }
    /// dL/dWm while pending(), dL/dW once the rows are completed.
    std::span<float> weight_gradient() { return {l_.grad_weight_.data(), l_.grad_weight_.size()}; }
    std::span<float> threshold() { return {l_.threshold_.data(), l_.threshold_.size()}; }
    std::span<float> threshold_gradient() { return {l_.grad_threshold_.data(), l_.grad_threshold_.size()}; }
    std::span<const float> masked_weight() const { return {l_.masked_weight_.data(), l_.masked_weight_.size()}; }

    void complete_rows(std::size_t r0, std::size_t r1) {
        if (l_.pending_) l_.surrogate_rows(r0, r1);
    }
    std::size_t mask_rows(std::size_t r0, std::size_t r1) { return l_.mask_rows(r0, r1); }
    void clear_gradient_rows(std::size_t r0, std::size_t r1) {
        if (l_.pending_) std::fill(l_.grad_weight_.data() + r0 * l_.cols_, l_.grad_weight_.data() + r1 * l_.cols_, 0.0f);
    }

    /// Every row is updated and masked (kept weights in all): the mask serves the next
    /// forward, and a deferred step leaves the weight gradient zeroed.
    void finish(std::size_t kept) {
        l_.kept_ = kept;
        if (l_.pending_) l_.gradient_zeroed_ = true;
        l_.pending_ = false;
        l_.mask_fresh_ = true;
    }

    /// The layer lets reset rules apply (set_reset_rule).
    bool reset_enabled() const { return l_.reset_rule_; }
    std::size_t resets() const { return l_.resets_; }
    /// Thresholds to 0 and the mask recomputed (dense again); counts a reset.
    void reset() {
        l_.threshold_.fill(0);
        ++l_.resets_;
        l_.kept_ = l_.mask_rows(0, l_.rows_);
    }

private:
    detail::masked_weights_impl<S, G>& l_;
};

/// The block view of a masked layer derived from masked_weights.
template <Surrogate S, ThresholdGranularity G>
masked_block<S, G> block_of(detail::masked_weights_impl<S, G>& layer) {
    return masked_block<S, G>(layer);
}

}  // namespace dynsparse
