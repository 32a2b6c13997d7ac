#pragma once
// batch_norm: batch normalisation (Ioffe & Szegedy) with PyTorch's semantics, over the
// channels of a (C, H, W) input (BatchNorm2d: statistics over batch x H x W) or over the
// features of a vector input (BatchNorm1d: statistics over the batch).
//
// Training (forward with training = true): y = gamma * (x - mean) / sqrt(var + eps) + beta
// with the batch's mean and biased variance; the running statistics move towards them,
// running = (1 - momentum) * running + momentum * batch (the variance unbiased, n/(n-1)).
// Evaluation (training = false): the running statistics replace the batch's.
// gamma and beta are trainable (kinds weight and bias, so weight decay applies to them as
// in PyTorch); the running statistics are state, not parameters: visit_state(v) hands
// them to a checkpoint (io/checkpoint.hpp).
#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "dynsparse/core/error.hpp"
#include "dynsparse/core/parallel.hpp"
#include "dynsparse/core/shape.hpp"
#include "dynsparse/core/tensor.hpp"
#include "dynsparse/layers/layer.hpp"

namespace dynsparse {

template <class In>
class batch_norm_layer {
    static_assert(In::rank == 1 || In::rank == 3,
                  "batch_norm takes a vector (features) or a (C, H, W) image (channels)");

public:
    static constexpr std::size_t channels = In::rank == 3 ? In::dims[0] : In::size;
    static constexpr std::size_t spatial = In::size / channels;  // H*W, or 1 for vectors
    using input_shape = In;
    using output_shape = In;

    static std::string describe() { return In::rank == 3 ? "batch_norm (2d)" : "batch_norm (1d)"; }

    batch_norm_layer()
        : gamma_(make_vector(channels, 1.0f)), beta_(make_vector(channels)),
          grad_gamma_(make_vector(channels)), grad_beta_(make_vector(channels)),
          running_mean_(make_vector(channels)), running_var_(make_vector(channels, 1.0f)),
          mean_(make_vector(channels)), inv_std_(make_vector(channels)) {}

    /// gamma = 1, beta = 0, running mean 0 and variance 1 (PyTorch's initialisation).
    void initialize(rng&) {
        gamma_.fill(1.0f);
        beta_.fill(0.0f);
        running_mean_.fill(0.0f);
        running_var_.fill(1.0f);
    }

    void forward(const matrix& x, matrix& y, bool training) {
        const std::size_t batch = x.shape(0);
        ensure_shape(y, batch, In::size);
        const std::size_t count = batch * spatial;
        if (training && count < 2)
            throw invalid_argument("batch_norm: training needs more than one value per channel "
                                   "(batch " + std::to_string(batch) + ")");
        training_ = training;
        const float* xp = x.data();
        float* yp = y.data();
        const float m = momentum_;
        parallel_for(channels, [&](std::size_t, std::size_t c0, std::size_t c1) {
        for (std::size_t c = c0; c < c1; ++c) {
            float mean, inv_std;
            if (training) {
                double sum = 0;
                for (std::size_t r = 0; r < batch; ++r) {
                    const float* v = xp + r * In::size + c * spatial;
                    float s = 0;
                    for (std::size_t p = 0; p < spatial; ++p) s += v[p];
                    sum += s;
                }
                const double mu = sum / static_cast<double>(count);
                double sq = 0;
                for (std::size_t r = 0; r < batch; ++r) {
                    const float* v = xp + r * In::size + c * spatial;
                    const auto muf = static_cast<float>(mu);
                    float s = 0;
                    for (std::size_t p = 0; p < spatial; ++p) s += (v[p] - muf) * (v[p] - muf);
                    sq += s;
                }
                const double var = sq / static_cast<double>(count);
                mean = static_cast<float>(mu);
                inv_std = static_cast<float>(1.0 / std::sqrt(var + epsilon_));
                running_mean_(c) = (1 - m) * running_mean_(c) + m * mean;
                running_var_(c) = (1 - m) * running_var_(c) +
                                  m * static_cast<float>(var * static_cast<double>(count) /
                                                         static_cast<double>(count - 1));
            } else {
                mean = running_mean_(c);
                inv_std = 1.0f / std::sqrt(running_var_(c) + epsilon_);
            }
            mean_(c) = mean;
            inv_std_(c) = inv_std;
            const float scale = gamma_(c) * inv_std, shift = beta_(c) - mean * scale;
            for (std::size_t r = 0; r < batch; ++r) {
                const float* v = xp + r * In::size + c * spatial;
                float* out = yp + r * In::size + c * spatial;
                for (std::size_t p = 0; p < spatial; ++p) out[p] = v[p] * scale + shift;
            }
        }
        }, grain_for(batch * spatial));
    }

    /// After forward on the same x. In training mode dL/dx includes the paths through the
    /// batch's mean and variance; in evaluation mode the statistics are constants.
    void backward(const matrix& x, const matrix& /*y*/, const matrix& dy, matrix* dx) {
        const std::size_t batch = x.shape(0);
        const double count = static_cast<double>(batch * spatial);
        if (dx != nullptr) ensure_shape(*dx, batch, In::size);
        const float* xp = x.data();
        const float* dyp = dy.data();
        float* dxp = dx != nullptr ? dx->data() : nullptr;
        parallel_for(channels, [&](std::size_t, std::size_t c0, std::size_t c1) {
        for (std::size_t c = c0; c < c1; ++c) {
            const float mean = mean_(c), inv_std = inv_std_(c);
            double sum_dy = 0, sum_dy_xhat = 0;
            for (std::size_t r = 0; r < batch; ++r) {
                const float* v = xp + r * In::size + c * spatial;
                const float* d = dyp + r * In::size + c * spatial;
                float s = 0, sx = 0;
                for (std::size_t p = 0; p < spatial; ++p) {
                    s += d[p];
                    sx += d[p] * (v[p] - mean);
                }
                sum_dy += s;
                sum_dy_xhat += sx;
            }
            sum_dy_xhat *= inv_std;
            grad_gamma_(c) = static_cast<float>(sum_dy_xhat);
            grad_beta_(c) = static_cast<float>(sum_dy);
            if (dxp == nullptr) continue;
            const float k = gamma_(c) * inv_std;
            // training: dx = k * (dy - mean(dy) - xhat * mean(dy * xhat))
            const float a = training_ ? static_cast<float>(sum_dy / count) : 0.0f;
            const float b = training_ ? static_cast<float>(sum_dy_xhat / count) * inv_std : 0.0f;
            for (std::size_t r = 0; r < batch; ++r) {
                const float* v = xp + r * In::size + c * spatial;
                const float* d = dyp + r * In::size + c * spatial;
                float* out = dxp + r * In::size + c * spatial;
                for (std::size_t p = 0; p < spatial; ++p) out[p] = k * (d[p] - a - (v[p] - mean) * b);
            }
        }
        }, grain_for(batch * spatial));
    }

    template <class F>
    void for_each_parameter(F&& f) {
        f(parameter{"gamma", parameter_kind::weight, {gamma_.data(), channels},
                    {grad_gamma_.data(), channels}});
        f(parameter{"beta", parameter_kind::bias, {beta_.data(), channels},
                    {grad_beta_.data(), channels}});
    }

    /// State protocol (io/checkpoint.hpp): v(name, field) for the non-trainable state,
    /// "running_mean" and "running_var" (spans of `channels` floats).
    template <class V>
    void visit_state(V&& v) {
        v(std::string_view("running_mean"), std::span<float>(running_mean_.data(), channels));
        v(std::string_view("running_var"), std::span<float>(running_var_.data(), channels));
    }

    /// PyTorch's defaults: momentum 0.1, epsilon 1e-5.
    void set_momentum(float m) { momentum_ = m; }
    void set_epsilon(float e) { epsilon_ = e; }
    float epsilon() const { return epsilon_; }

    vector& gamma() { return gamma_; }
    vector& beta() { return beta_; }
    const vector& running_mean() const { return running_mean_; }
    const vector& running_var() const { return running_var_; }
    vector& running_mean() { return running_mean_; }
    vector& running_var() { return running_var_; }

private:
    vector gamma_, beta_, grad_gamma_, grad_beta_;
    vector running_mean_, running_var_;
    vector mean_, inv_std_;  // of the last forward, used by backward
    float momentum_ = 0.1f;
    float epsilon_ = 1e-5f;
    bool training_ = true;
};

/// Spec: batch normalisation over channels (images) or features (vectors).
struct batch_norm {
    template <class In>
    using bind = batch_norm_layer<In>;
};

}  // namespace dynsparse
