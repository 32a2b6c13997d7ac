#pragma once
// masked_weights<Rows, Cols, Surrogate, Granularity, Bias>: the DST state every masked layer
// shares: weights W viewed as Rows x Cols (c_out x fan_in), the unmasked bias (none when
// Bias is false: VGG's and WideResNet's convolutions, followed by batch norm), the
// thresholds t, the masked weights Wm = W * step(|W| - t), their gradients, the 1% reset
// rule and the mask statistics. A masked layer derives from it and adds only its
// operation: it calls prepare_mask() before using masked_weight() in forward, writes
// dL/dWm into the weight gradient and calls finish_weight_gradient() in backward.
//
// The next mask is made by the update pass (optim/update.hpp) through the layer's block
// view (layers/masked_block.hpp): for each block of rows it completes the surrogate pass,
// updates t and W and masks the rows while they are in cache. That mask is used by the
// next forward only; any other forward recomputes it, so parameters written any other way
// are always seen. Forward passes never apply the reset rule: only the update pass does.
// The passes over W share rows between the library's threads (core/parallel.hpp) with the
// same result for any thread count.
//
// Compiled in three parts, so that a program with many masked layer types compiles each
// piece of code as few times as it can: detail::masked_storage (the tensors and counters:
// no template), detail::masked_weights_impl<S, G> (the mask and surrogate passes, with the
// shape a run-time value: once per policy pair), and masked_weights itself (the shape as
// constants for the layers and their users).
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dynsparse/core/parallel.hpp"
#include "dynsparse/core/tensor.hpp"
#include "dynsparse/detail/init.hpp"
#include "dynsparse/detail/mask_kernels.hpp"
#include "dynsparse/layers/layer.hpp"
#include "dynsparse/surrogate/surrogate.hpp"
#include "dynsparse/threshold/granularity.hpp"

namespace dynsparse {

template <Surrogate S, ThresholdGranularity G>
class masked_block;

namespace detail {

/// A masked layer's name for reports: "kind<args, surrogate, granularity[, tail]>".
inline std::string masked_layer_name(std::string_view kind, const std::string& args,
                                     std::string_view surrogate, std::string_view granularity,
                                     std::string_view tail = {}) {
    std::string s(kind);
    s += '<';
    s += args;
    s += ", ";
    s += surrogate;
    s += ", ";
    s += granularity;
    if (!tail.empty()) {
        s += ", ";
        s += tail;
    }
    return s + '>';
}

/// The tensors and counters of a masked weight matrix (rows x cols), with the operations
/// that depend on neither its shape nor its policies.
class masked_storage {
public:
    /// Thresholds at 0, so the layer starts dense; W and b from PyTorch's Linear/Conv
    /// initialisation, U(-1/sqrt(cols), 1/sqrt(cols)).
    void initialize(rng& gen) {
        init_fan_in_uniform({weight_.data(), weight_.size()}, cols_, gen);
        if (has_bias_) init_fan_in_uniform({bias_.data(), bias_.size()}, cols_, gen);
        threshold_.fill(0);
        invalidate_mask();
    }

    /// Drops a mask made during the last optimizer step (the next forward recomputes it).
    /// Call after writing W or t through their spans between a step and the next forward.
    void invalidate_mask() { mask_fresh_ = false; }

    mask_statistics statistics() const {
        mask_statistics s;
        s.kept = kept_;
        s.total = rows_ * cols_;
        s.resets = resets_;
        threshold_summary(threshold_.data(), threshold_.size(), s);
        return s;
    }

    /// Checkpoint hook: state beyond the parameters (the mask is recomputed from W and t).
    template <class V>
    void visit_state(V&& v) {
        v("resets", resets_);
    }

    /// The next backward leaves its surrogate pass (dL/dWm -> dL/dW, dL/dt) to the update
    /// pass, which completes it block of rows by block of rows just before updating those
    /// rows (optim/update.hpp); the weight gradient meanwhile holds the raw dL/dWm. Call
    /// right before backward (the trainer does); a forward pass before the update
    /// completes the pass itself. No effect unless the layer has one threshold per row
    /// (masked_weights::row_thresholds).
    void defer_surrogate_backward() { defer_next_ = row_thresholds_; }
    /// True between a deferred backward and the update pass that completes it.
    bool surrogate_backward_pending() const { return pending_; }

    /// Weights kept by the current mask.
    std::size_t kept_count() const { return kept_; }
    /// Weights kept in row r of the current mask.
    std::size_t kept_in_row(std::size_t r) const { return row_kept_[r]; }

    /// Lets the update pass's reset rule apply to this layer (the default) or not.
    void set_reset_rule(bool on) { reset_rule_ = on; }
    bool reset_rule() const { return reset_rule_; }

    // Mutable access may change W or t: the next forward recomputes the mask.
    std::span<float> thresholds() {
        invalidate_mask();
        return {threshold_.data(), threshold_.size()};
    }
    matrix& weight() {
        invalidate_mask();
        return weight_;
    }
    vector& bias() { return bias_; }  ///< empty when the layer has no bias
    vector& threshold() {
        invalidate_mask();
        return threshold_;
    }
    const matrix& weight() const { return weight_; }
    const vector& threshold() const { return threshold_; }
    const matrix& masked_weight() const { return masked_weight_; }
    const matrix& weight_gradient() const { return grad_weight_; }
    const vector& bias_gradient() const { return grad_bias_; }
    const vector& threshold_gradient() const { return grad_threshold_; }

protected:
    /// row_shares: threshold-gradient shares kept per row (0 when thresholds vary along rows).
    masked_storage(std::size_t rows, std::size_t cols, std::size_t thresholds, bool bias,
                   std::size_t row_shares, bool row_thresholds)
        : weight_(make_matrix(rows, cols)), bias_(make_vector(bias ? rows : 0)),
          threshold_(make_vector(thresholds)), masked_weight_(make_matrix(rows, cols)),
          grad_weight_(make_matrix(rows, cols)), grad_bias_(make_vector(bias ? rows : 0)),
          grad_threshold_(make_vector(thresholds)), row_shares_(row_shares),
          row_kept_(rows, static_cast<std::uint32_t>(cols)), kept_(rows * cols), rows_(rows),
          cols_(cols), has_bias_(bias), row_thresholds_(row_thresholds) {}

    const float* bias_data() const { return has_bias_ ? bias_.data() : nullptr; }

    /// True when grad_weight_ holds zeros left by the last (deferred) update pass, which
    /// clears each block of rows once it has used it, while the block is in cache: the
    /// next backward may then accumulate its product into it (GEMM beta = 1) instead of
    /// having the BLAS zero it in a separate pass.
    bool weight_gradient_zeroed() const { return gradient_zeroed_; }

    /// Weights kept in each row of masked_weight_ (a row with none is all zeros).
    const std::uint32_t* row_kept() const { return row_kept_.data(); }
    float* bias_gradient_data() { return has_bias_ ? grad_bias_.data() : nullptr; }

    matrix weight_;
    vector bias_;
    vector threshold_;
    matrix masked_weight_;
    matrix grad_weight_;
    vector grad_bias_;
    vector grad_threshold_;

    std::vector<float> row_shares_;       // one threshold-gradient share per row (piece)
    std::vector<std::uint32_t> row_kept_;  // per row of masked_weight_
    std::size_t kept_;
    std::size_t resets_ = 0;
    std::size_t rows_, cols_;
    bool has_bias_;
    bool row_thresholds_;
    bool mask_fresh_ = false;
    bool defer_next_ = false;
    bool pending_ = false;
    bool gradient_zeroed_ = false;
    bool reset_rule_ = true;
};

/// The passes of masked_weights that depend on its policies: mask, surrogate backward
/// and the operations of its block view, for a shape given at run time.
template <Surrogate S, ThresholdGranularity G>
class masked_weights_impl : public masked_storage {
public:
    template <class F>
    void for_each_parameter(F&& f) {
        gradient_zeroed_ = false;  // the caller may write into the gradient spans
        f(parameter{"threshold", parameter_kind::threshold, {threshold_.data(), threshold_.size()},
                    {grad_threshold_.data(), grad_threshold_.size()}});
        f(parameter{"weight", parameter_kind::weight, {weight_.data(), weight_.size()},
                    {grad_weight_.data(), grad_weight_.size()}});
        if (has_bias_)
            f(parameter{"bias", parameter_kind::bias, {bias_.data(), bias_.size()},
                        {grad_bias_.data(), grad_bias_.size()}});
    }

    /// Testing aid: forward with the surrogate's smooth step instead of the exact step,
    /// so finite differences of the forward check the backward pass. (The smooth passes
    /// are compiled only into programs that call this.)
    void set_smooth_forward(bool on) {
        smooth_mask_ = on ? &apply_mask<S, G, true> : nullptr;
        if constexpr (G::varies_along_row)
            smooth_backward_ = on ? &mask_backward<S, G, true> : nullptr;
        else
            smooth_backward_ = on ? &mask_backward_rows<S, G, true> : nullptr;
        invalidate_mask();
    }

    /// Recomputes the mask and masked weights from W and t (never resets: see the top).
    void update_mask() {
        std::atomic<std::size_t> kept{0};
        parallel_for(rows_, [&](std::size_t, std::size_t r0, std::size_t r1) {
            kept.fetch_add(mask_rows(r0, r1), std::memory_order_relaxed);
        }, grain_for(cols_));
        kept_ = kept.load(std::memory_order_relaxed);
    }

protected:
    masked_weights_impl(std::size_t rows, std::size_t cols, bool bias)
        : masked_storage(rows, cols, G::count(rows, cols), bias,
                         G::varies_along_row ? 0 : rows * row_pieces<G>, row_thresholds_for(rows, cols)) {}

    /// One threshold per row, threshold i for row i (per_neuron, per_filter): the
    /// surrogate pass can then be deferred into the update pass block of rows by block.
    static constexpr bool row_thresholds_for(std::size_t rows, std::size_t cols) {
        return !G::varies_along_row && !SplitRowGranularity<G> && G::count(rows, cols) == rows;
    }

    /// Before a forward pass uses masked_weight_: the update pass's mask is used once.
    void prepare_mask() {
        if (pending_) complete_pending();
        if (mask_fresh_)
            mask_fresh_ = false;
        else
            update_mask();
    }

    /// After the layer wrote dL/dWm into grad_weight_: turns it into dL/dW and writes
    /// dL/dt (performance + structure gradients through the surrogate), or leaves that to
    /// the update pass (defer_surrogate_backward).
    void finish_weight_gradient() {
        gradient_zeroed_ = false;
        grad_threshold_.fill(0.0f);
        mask_fresh_ = false;
        if (row_thresholds_ && defer_next_) {
            defer_next_ = false;
            pending_ = true;
            return;
        }
        surrogate_backward();
    }

private:
    template <Surrogate, ThresholdGranularity>
    friend class dynsparse::masked_block;

    /// Rows in parallel; with thresholds shared along rows, each row's threshold-gradient
    /// share is summed on its own and the shares are subtracted in row order afterwards,
    /// so dL/dt is the same for any thread count. (A granularity whose thresholds vary
    /// along rows may share them between rows: that pass stays on one thread.)
    using mask_pass = std::size_t (*)(const float*, const float*, std::size_t, std::size_t, std::size_t,
                                      float*, std::uint32_t*);
    using backward_pass = void (*)(const float*, const float*, std::size_t, std::size_t, std::size_t,
                                   float*, float*);

    /// The surrogate pass over [r0, r1): the exact one, or the smooth one of the testing aid.
    backward_pass backward_kernel() const {
        if (smooth_backward_ != nullptr) return smooth_backward_;
        if constexpr (G::varies_along_row)
            return &mask_backward<S, G, false>;
        else
            return &mask_backward_rows<S, G, false>;
    }

    void surrogate_backward() {
        const backward_pass pass = backward_kernel();
        if constexpr (G::varies_along_row) {
            pass(weight_.data(), threshold_.data(), 0, rows_, cols_, grad_weight_.data(),
                 grad_threshold_.data());
        } else {
            parallel_for(rows_, [&](std::size_t, std::size_t r0, std::size_t r1) {
                pass(weight_.data(), threshold_.data(), r0, r1, cols_, grad_weight_.data(),
                     row_shares_.data());
            }, grain_for(cols_));
            subtract_row_shares<G>(row_shares_.data(), rows_, cols_, grad_threshold_.data());
        }
    }

    /// Deferred surrogate pass of rows [r0, r1): dL/dW in place and each row's threshold
    /// share subtracted from its own threshold gradient. Only reached when row_thresholds_.
    void surrogate_rows(std::size_t r0, std::size_t r1) {
        if constexpr (!G::varies_along_row && !SplitRowGranularity<G>) {
            backward_kernel()(weight_.data(), threshold_.data(), r0, r1, cols_, grad_weight_.data(),
                              row_shares_.data());
            for (std::size_t r = r0; r < r1; ++r) grad_threshold_[r] -= row_shares_[r];
        }
    }

    /// A deferred pass no update completed (a forward came first): run it whole.
    void complete_pending() {
        surrogate_rows(0, rows_);
        pending_ = false;
    }

    std::size_t mask_rows(std::size_t r0, std::size_t r1) {
        return smooth_mask_ != nullptr
                   ? smooth_mask_(weight_.data(), threshold_.data(), r0, r1, cols_,
                                  masked_weight_.data(), row_kept_.data())
                   : apply_mask<S, G, false>(weight_.data(), threshold_.data(), r0, r1, cols_,
                                             masked_weight_.data(), row_kept_.data());
    }

    mask_pass smooth_mask_ = nullptr;  // set by the testing aid only
    backward_pass smooth_backward_ = nullptr;
};

}  // namespace detail

/// The DST state of a masked layer with a Rows x Cols weight matrix (see the top of this
/// file); the layer derives from it.
template <std::size_t Rows, std::size_t Cols, Surrogate S, ThresholdGranularity G, bool Bias = true>
class masked_weights : public detail::masked_weights_impl<S, G> {
public:
    using surrogate = S;
    using granularity = G;
    static constexpr std::size_t threshold_count = G::count(Rows, Cols);
    static constexpr bool has_bias = Bias;
    /// One threshold per row (see masked_weights_impl::row_thresholds_for).
    static constexpr bool row_thresholds = detail::masked_weights_impl<S, G>::row_thresholds_for(Rows, Cols);

    masked_weights() : detail::masked_weights_impl<S, G>(Rows, Cols, Bias) {}
};

}  // namespace dynsparse
