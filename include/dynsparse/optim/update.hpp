#pragma once
// update_pass<Model, Regulariser, ResetRule>: the DST update of one training step, one
// traversal owned by the library. Given raw gradients (after backward and any gradient
// reduction), for each masked layer and each block of whole rows, in this order:
//
//   surrogate pass (dL/dWm -> dL/dW, dL/dt)   masked_block::complete_rows
//   regulariser gradient on the rows' t       Regulariser::apply (its value summed once)
//   optimizer update of t, then of W          Optimizer::update
//   next mask of the rows                     masked_block::mask_rows
//
// so W is read once per step while in cache; blocks are shared between the library's
// threads with the same result for any thread count. Then per layer the reset rule, and
// every other parameter (biases, batch norm, unmasked layers) gets the optimizer's update.
//
//   ds::update_pass pass(net);                      // exp_decay, one_percent
//   ds::defer_surrogate_backward(net);  net.backward(dy);
//   const auto r = pass.run(opt, lr, alpha);        // r.regulariser, r.resets
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <span>
#include <vector>

#include "dynsparse/concepts/optimizer.hpp"
#include "dynsparse/concepts/regulariser.hpp"
#include "dynsparse/concepts/reset_rule.hpp"
#include "dynsparse/core/parallel.hpp"
#include "dynsparse/core/parameter.hpp"
#include "dynsparse/layers/masked_block.hpp"
#include "dynsparse/optim/regulariser.hpp"
#include "dynsparse/optim/reset_rule.hpp"

namespace dynsparse {

/// Where a step sits in its training run (for reset rules).
struct step_position {
    std::size_t step = 0;         ///< 0-based global step
    std::size_t total_steps = 0;  ///< 0 when unknown
};

struct update_result {
    double regulariser = 0;  ///< the regulariser's value at the thresholds before the update
    std::size_t resets = 0;  ///< layers whose thresholds the reset rule reset
};

namespace detail {
/// Elements per block of the update: whole rows, about 4096 elements.
inline std::size_t update_block_rows(std::size_t cols) { return cols < 4096 ? 4096 / cols : 1; }

/// f(layer, index) for each masked layer of a network, or for a single masked layer.
template <class Model, class F>
void visit_masked_layers(Model& m, F&& f) {
    if constexpr (requires { m.for_each_masked_layer(f); })
        m.for_each_masked_layer(f);
    else if constexpr (requires { block_of(m); })
        f(m, std::size_t{0});
}
}  // namespace detail

/// Asks the masked layers of `model` to leave their surrogate pass to the next update pass
/// (call right before backward). Without it the pass runs in backward: same results.
template <class Model>
void defer_surrogate_backward(Model& model) {
    detail::visit_masked_layers(model, [](auto& l, std::size_t) {
        if constexpr (requires { l.defer_surrogate_backward(); }) l.defer_surrogate_backward();
    });
}

/// Runs f(begin, end) over [0, n) in chunks of about 4096 elements, shared out between
/// the library's threads: the update of a parameter with no DST structure.
template <class F>
void for_each_update_chunk(std::size_t n, F&& f) {
    constexpr std::size_t chunk = 4096;
    const std::size_t chunks = (n + chunk - 1) / chunk;
    parallel_for(chunks, [&](std::size_t, std::size_t c0, std::size_t c1) {
        for (std::size_t c = c0; c < c1; ++c) f(c * chunk, std::min(n, (c + 1) * chunk));
    }, parallel_grain_elements / chunk + 1);
}

/// The optimizer's update of every element of parameter p (number p of the step's list).
template <Optimizer O>
void update_parameter(O& opt, std::size_t p, const parameter& param) {
    for_each_update_chunk(param.value.size(), [&](std::size_t b, std::size_t e) {
        opt.update({p, param.kind, param.value.data(), param.gradient.data(), b, e});
    });
}

/// One plain optimizer step over a list of parameters (no DST structure): begin_step,
/// update of every element, end_step.
template <Optimizer O>
void optimizer_step(O& opt, std::span<const parameter> params, float lr) {
    opt.begin_step(params, lr);
    for (std::size_t p = 0; p < params.size(); ++p) update_parameter(opt, p, params[p]);
    opt.end_step();
}

template <class Model, Regulariser R = exp_decay, ResetRule Rule = one_percent>
class update_pass {
public:
    /// Lists the model's parameters (for_each_parameter order); the model must outlive
    /// the pass and keep its tensors where they are.
    explicit update_pass(Model& model, R regulariser = {}, Rule rule = {})
        : model_(model), regulariser_(std::move(regulariser)), rule_(std::move(rule)) {
        model.for_each_parameter([&](const parameter& p) { params_.push_back(p); });
        std::vector<bool> claimed(params_.size(), false);
        detail::visit_masked_layers(model, [&](auto& layer, std::size_t) {
            slots s;
            if constexpr (requires { block_of(layer); }) {
                auto b = block_of(layer);
                s.threshold = find(b.threshold().data());
                s.weight = find(b.weight().data());
                if (s.threshold != npos && s.weight != npos) claimed[s.threshold] = claimed[s.weight] = true;
                else s.threshold = s.weight = npos;
            }
            masked_.push_back(s);
        });
        for (std::size_t p = 0; p < params_.size(); ++p)
            if (!claimed[p]) plain_.push_back(p);
    }

    /// The model's parameters, in the order optimizers see them.
    std::span<const parameter> parameters() const { return params_; }

    const R& regulariser() const { return regulariser_; }
    const Rule& reset_rule() const { return rule_; }

    /// The update of one step with learning rate lr and regulariser weight alpha.
    template <Optimizer O>
    update_result run(O& opt, float lr, float alpha, step_position at = {}) {
        opt.begin_step(params_, lr);
        update_result result;
        std::size_t k = 0;
        detail::visit_masked_layers(model_, [&](auto& layer, std::size_t) {
            const slots s = masked_[k++];
            if constexpr (requires { block_of(layer); })
                if (s.weight != npos) update_layer(opt, block_of(layer), s, alpha, at, result);
        });
        for (std::size_t p : plain_) update_parameter(opt, p, params_[p]);
        opt.end_step();
        return result;
    }

private:
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);
    struct slots {
        std::size_t threshold = npos, weight = npos;  // indices into params_
    };

    std::size_t find(const float* data) const {
        for (std::size_t p = 0; p < params_.size(); ++p)
            if (params_[p].value.data() == data) return p;
        return npos;
    }

    template <Optimizer O, class Block>
    void update_layer(O& opt, Block b, slots s, float alpha, step_position at, update_result& result) {
        const std::size_t rows = b.rows(), cols = b.cols();
        const std::span<float> t = b.threshold(), dt = b.threshold_gradient();
        const std::span<float> w = b.weight(), dw = b.weight_gradient();
        const regulariser_scope scope{alpha, t.size(), w.size()};
        const bool per_row = b.row_thresholds();
        double value = 0;
        if (!per_row) {  // thresholds shared across rows: complete since backward
            if (alpha != 0) value += regulariser_.apply(t, dt, scope);
            opt.update({s.threshold, parameter_kind::threshold, t.data(), dt.data(), 0, t.size()});
        }
        const std::size_t block = detail::update_block_rows(cols);
        const std::size_t blocks = (rows + block - 1) / block;
        partial_.assign(blocks, 0.0);
        std::atomic<std::size_t> kept{0};
        parallel_for(blocks, [&](std::size_t, std::size_t c0, std::size_t c1) {
            std::size_t kept_here = 0;
            for (std::size_t c = c0; c < c1; ++c) {
                const std::size_t r0 = c * block, r1 = std::min(rows, r0 + block);
                if (per_row) {
                    b.complete_rows(r0, r1);
                    if (alpha != 0) partial_[c] = regulariser_.apply(t.subspan(r0, r1 - r0), dt.subspan(r0, r1 - r0), scope);
                    opt.update({s.threshold, parameter_kind::threshold, t.data(), dt.data(), r0, r1});
                }
                opt.update({s.weight, parameter_kind::weight, w.data(), dw.data(), r0 * cols, r1 * cols});
                kept_here += b.mask_rows(r0, r1);
                b.clear_gradient_rows(r0, r1);
            }
            kept.fetch_add(kept_here, std::memory_order_relaxed);
        }, parallel_grain_elements / (block * cols) + 1);
        for (double v : partial_) value += v;  // block order: the same for any thread count
        result.regulariser += value;
        const std::size_t kept_all = kept.load(std::memory_order_relaxed);
        b.finish(kept_all);
        if (b.reset_enabled() && rule_.should_reset({kept_all, rows * cols, b.resets(), at.step, at.total_steps})) {
            b.reset();
            ++result.resets;
        }
    }

    Model& model_;
    R regulariser_;
    Rule rule_;
    std::vector<parameter> params_;
    std::vector<slots> masked_;       // per masked layer, visiting order
    std::vector<std::size_t> plain_;  // every other parameter
    std::vector<double> partial_;     // regulariser value per block of rows
};

}  // namespace dynsparse
