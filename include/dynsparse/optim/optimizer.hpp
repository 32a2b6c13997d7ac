#pragma once
// SGD and Adam as Optimizers (concepts/optimizer.hpp): per-step constants in begin_step,
// an elementwise kernel over a range in update, state kept per parameter (the step's list
// order) so one optimizer belongs to one model. visit_state(v) lists the state for
// checkpoints (io/checkpoint.hpp).
#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include "dynsparse/concepts/optimizer.hpp"
#include "dynsparse/core/error.hpp"

namespace dynsparse {

namespace detail {
/// One zeroed buffer per parameter, sized like it (kept when already so).
inline void ensure_state(std::vector<std::vector<float>>& state, std::span<const parameter> ps) {
    bool same = state.size() == ps.size();
    for (std::size_t i = 0; same && i < ps.size(); ++i) same = state[i].size() == ps[i].value.size();
    if (same) return;
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

    void begin_step(std::span<const parameter> params, float lr) {
        if (opt_.momentum != 0) detail::ensure_state(buffers_, params);
        lr_ = lr;
    }

    void update(const update_range& r) {
        const float lr = lr_;
        const float wd = decays(r.kind) ? opt_.weight_decay : 0.0f;
        float* __restrict v = r.value;
        const float* __restrict g = r.gradient;
        if (opt_.momentum == 0) {
            for (std::size_t i = r.begin; i < r.end; ++i) v[i] -= lr * (g[i] + wd * v[i]);
            return;
        }
        float* __restrict buf = buffers_[r.index].data();
        const float m = opt_.momentum;
        const float keep = started_ ? m : 0.0f;  // first step: b = g
        if (opt_.nesterov) {
            for (std::size_t i = r.begin; i < r.end; ++i) {
                const float gi = g[i] + wd * v[i];
                buf[i] = keep * buf[i] + gi;
                v[i] -= lr * (gi + m * buf[i]);
            }
        } else {
            for (std::size_t i = r.begin; i < r.end; ++i) {
                buf[i] = keep * buf[i] + (g[i] + wd * v[i]);
                v[i] -= lr * buf[i];
            }
        }
    }

    void end_step() { started_ = true; }

    const options& settings() const { return opt_; }
    std::vector<std::vector<float>>& state() { return buffers_; }
    template <class V>
    void visit_state(V&& v) {
        v("sgd.started", started_);
        v("sgd.momentum_buffers", buffers_);
    }
    bool& started() { return started_; }

private:
    bool decays(parameter_kind k) const {
        return k == parameter_kind::weight || (k == parameter_kind::bias && opt_.decay_biases) ||
               (k == parameter_kind::threshold && opt_.decay_thresholds);
    }
    options opt_{};
    std::vector<std::vector<float>> buffers_;
    float lr_ = 0;
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

    void begin_step(std::span<const parameter> params, float lr) {
        detail::ensure_state(m_, params);
        detail::ensure_state(v_, params);
        ++t_;
        const double c1 = 1.0 - std::pow(static_cast<double>(opt_.beta1), static_cast<double>(t_));
        const double c2 = 1.0 - std::pow(static_cast<double>(opt_.beta2), static_cast<double>(t_));
        step_size_ = static_cast<float>(lr / c1);
        inv_sqrt_c2_ = static_cast<float>(1.0 / std::sqrt(c2));
    }

    void update(const update_range& r) {
        const bool decay = r.kind != parameter_kind::threshold || opt_.decay_thresholds;
        const float wd = decay ? opt_.weight_decay : 0.0f;
        const float step_size = step_size_, inv_sqrt_c2 = inv_sqrt_c2_;
        float* __restrict w = r.value;
        const float* __restrict g = r.gradient;
        float* __restrict m = m_[r.index].data();
        float* __restrict v = v_[r.index].data();
        for (std::size_t i = r.begin; i < r.end; ++i) {
            const float gi = g[i] + wd * w[i];
            m[i] = opt_.beta1 * m[i] + (1 - opt_.beta1) * gi;
            v[i] = opt_.beta2 * v[i] + (1 - opt_.beta2) * gi * gi;
            w[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_c2 + opt_.epsilon);
        }
    }

    void end_step() {}

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
    float step_size_ = 0, inv_sqrt_c2_ = 0;
};

static_assert(StatefulOptimizer<sgd> && StatefulOptimizer<adam>);

}  // namespace dynsparse
