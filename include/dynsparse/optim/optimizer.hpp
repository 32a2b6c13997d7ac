#pragma once
// Optimizer protocol, SGD and Adam.
//
// An Optimizer is called once per step with every trainable parameter of the network in
// a fixed order (the network's for_each_parameter order) and the learning rate of the
// step. It updates the parameters in that order and should report updated ranges
// through parameter::updated (for_each_chunk does both). It keeps its own state (momentum buffers, moments) indexed by that order, so
// the same optimizer must not be shared between networks. state() exposes that state as
// flat float vectors; visit_state(v) lists it for checkpoints (io/checkpoint.hpp).
#include <cmath>
#include <concepts>
#include <cstddef>
#include <span>
#include <vector>

#include "dynsparse/core/error.hpp"
#include "dynsparse/layers/layer.hpp"

namespace dynsparse {

template <class O>
concept Optimizer = requires(O& opt, std::span<const parameter> params, float lr) {
    opt.step(params, lr);
};

namespace detail {
inline void ensure_state(std::vector<std::vector<float>>& state, std::span<const parameter> ps) {
    if (state.size() == ps.size()) return;
    state.assign(ps.size(), {});
    for (std::size_t i = 0; i < ps.size(); ++i) state[i].assign(ps[i].value.size(), 0.0f);
}
}  // namespace detail

/// Stochastic gradient descent with PyTorch's semantics: weight decay added to the
/// gradient, momentum buffer b = m*b + g (b = g on the first step), Nesterov optional.
class sgd {
public:
    struct options {
        float momentum = 0.0f;
        bool nesterov = false;
        float weight_decay = 0.0f;
        bool decay_thresholds = false;  ///< apply weight decay to DST thresholds too
        bool decay_biases = true;
    };

    sgd() = default;
    explicit sgd(options o) : opt_(o) {
        if (o.nesterov && o.momentum <= 0)
            throw invalid_argument("sgd: Nesterov momentum needs momentum > 0");
    }

    /// Calls parameter::complete before reading a range's gradient and updates row-coupled
    /// thresholds with their weights' rows (see parameter): the trainer may defer masked
    /// layers' surrogate passes into this step.
    static constexpr bool completes_gradients = true;

    void step(std::span<const parameter> params, float lr) {
        if (opt_.momentum != 0) detail::ensure_state(buffers_, params);
        for (std::size_t p = 0; p < params.size(); ++p) {
            const parameter& prm = params[p];
            if (prm.thresholds_per_row && p + 1 < params.size()) {
                // Thresholds and weights row block by row block, one pass over W.
                const parameter& weights = params[p + 1];
                const std::size_t cols = weights.granule == 0 ? 1 : weights.granule;
                for_each_chunk(weights, [&](std::size_t b, std::size_t e) {
                    weights.complete(b, e);
                    prm.complete(b / cols, e / cols);
                    update(p, prm, b / cols, e / cols, lr);
                    update(p + 1, weights, b, e, lr);
                });
                ++p;
                continue;
            }
            for_each_chunk(prm, [&](std::size_t b, std::size_t e) {
                prm.complete(b, e);
                update(p, prm, b, e, lr);
            });
        }
        started_ = true;
    }

    const options& settings() const { return opt_; }
    std::vector<std::vector<float>>& state() { return buffers_; }
    template <class V>
    void visit_state(V&& v) {
        v("sgd.started", started_);
        v("sgd.momentum_buffers", buffers_);
    }
    bool& started() { return started_; }

private:
    /// The update of elements [b, e) of parameter p (the p-th of the step).
    void update(std::size_t p, const parameter& prm, std::size_t b, std::size_t e, float lr) {
        const float wd = decays(prm.kind) ? opt_.weight_decay : 0.0f;
        float* __restrict v = prm.value.data();
        const float* __restrict g = prm.gradient.data();
        if (opt_.momentum == 0) {
            for (std::size_t i = b; i < e; ++i) v[i] -= lr * (g[i] + wd * v[i]);
            return;
        }
        float* __restrict buf = buffers_[p].data();
        const float m = opt_.momentum;
        const float keep = started_ ? m : 0.0f;  // first step: b = g
        if (opt_.nesterov) {
            for (std::size_t i = b; i < e; ++i) {
                const float gi = g[i] + wd * v[i];
                buf[i] = keep * buf[i] + gi;
                v[i] -= lr * (gi + m * buf[i]);
            }
        } else {
            for (std::size_t i = b; i < e; ++i) {
                buf[i] = keep * buf[i] + (g[i] + wd * v[i]);
                v[i] -= lr * buf[i];
            }
        }
    }

    bool decays(parameter_kind k) const {
        return k == parameter_kind::weight || (k == parameter_kind::bias && opt_.decay_biases) ||
               (k == parameter_kind::threshold && opt_.decay_thresholds);
    }
    options opt_{};
    std::vector<std::vector<float>> buffers_;
    bool started_ = false;
};

/// Adam (Kingma & Ba) with PyTorch's semantics, L2 weight decay optional.
class adam {
public:
    struct options {
        float beta1 = 0.9f;
        float beta2 = 0.999f;
        float epsilon = 1e-8f;
        float weight_decay = 0.0f;
        bool decay_thresholds = false;
    };

    adam() = default;
    explicit adam(options o) : opt_(o) {}

    void step(std::span<const parameter> params, float lr) {
        detail::ensure_state(m_, params);
        detail::ensure_state(v_, params);
        ++t_;
        const double c1 = 1.0 - std::pow(static_cast<double>(opt_.beta1), static_cast<double>(t_));
        const double c2 = 1.0 - std::pow(static_cast<double>(opt_.beta2), static_cast<double>(t_));
        const float step_size = static_cast<float>(lr / c1);
        const float inv_sqrt_c2 = static_cast<float>(1.0 / std::sqrt(c2));
        for (std::size_t p = 0; p < params.size(); ++p) {
            const parameter& prm = params[p];
            const bool decay = prm.kind != parameter_kind::threshold || opt_.decay_thresholds;
            const float wd = decay ? opt_.weight_decay : 0.0f;
            float* __restrict w = prm.value.data();
            const float* __restrict g = prm.gradient.data();
            float* __restrict m = m_[p].data();
            float* __restrict v = v_[p].data();
            for_each_chunk(prm, [&](std::size_t b, std::size_t e) {
                for (std::size_t i = b; i < e; ++i) {
                    const float gi = g[i] + wd * w[i];
                    m[i] = opt_.beta1 * m[i] + (1 - opt_.beta1) * gi;
                    v[i] = opt_.beta2 * v[i] + (1 - opt_.beta2) * gi * gi;
                    w[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_c2 + opt_.epsilon);
                }
            });
        }
    }

    template <class V>
    void visit_state(V&& v) {
        v("adam.steps", t_);
        v("adam.first_moments", m_);
        v("adam.second_moments", v_);
    }

private:
    options opt_{};
    std::vector<std::vector<float>> m_, v_;
    std::size_t t_ = 0;
};

}  // namespace dynsparse
