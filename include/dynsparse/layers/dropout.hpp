#pragma once
// dropout<Percent>: inverted dropout. In training each element is kept with probability
// 1 - rate and scaled by 1 / (1 - rate); in evaluation the layer is the identity. The rate
// Percent / 100 is the default of a runtime setting (set_rate), e.g. dropout<30> as in
// WideResNet.
// The layer draws its masks from its own generator, seeded from the network's in
// initialize(), whose position visit_state hands to checkpoints (a resumed run draws the
// masks it would have drawn); freeze_mask(true) reuses the last mask (gradient checks).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dynsparse/core/error.hpp"
#include "dynsparse/core/rng.hpp"
#include "dynsparse/core/tensor.hpp"
#include "dynsparse/layers/layer.hpp"

namespace dynsparse {

template <class In, unsigned Percent>
class dropout_layer {
public:
    using input_shape = In;
    using output_shape = In;
    static std::string describe() { return "dropout<" + std::to_string(Percent) + ">"; }

    void initialize(rng& gen) { gen_.reseed((std::uint64_t{gen.next_u32()} << 32) | gen.next_u32()); }

    void forward(const matrix& x, matrix& y, bool training) {
        ensure_shape(y, x.shape(0), x.shape(1));
        training_ = training && rate_ > 0.0f;
        const float* xp = x.data();
        float* yp = y.data();
        const std::size_t n = x.size();
        if (!training_) {
            std::copy(xp, xp + n, yp);
            return;
        }
        if (!frozen_ || scale_.size() != n) {
            scale_.resize(n);
            const float keep = 1.0f - rate_, inv = 1.0f / keep;
            for (std::size_t i = 0; i < n; ++i) scale_[i] = gen_.uniform01() < keep ? inv : 0.0f;
        }
        for (std::size_t i = 0; i < n; ++i) yp[i] = xp[i] * scale_[i];
    }

    void backward(const matrix& /*x*/, const matrix& /*y*/, const matrix& dy, matrix* dx) {
        if (dx == nullptr) return;
        ensure_shape(*dx, dy.shape(0), dy.shape(1));
        const float* d = dy.data();
        float* out = dx->data();
        const std::size_t n = dy.size();
        if (!training_) {
            std::copy(d, d + n, out);
            return;
        }
        for (std::size_t i = 0; i < n; ++i) out[i] = d[i] * scale_[i];
    }

    template <class F>
    void for_each_parameter(F&&) {}

    /// State protocol (io/checkpoint.hpp): the mask generator.
    template <class V>
    void visit_state(V&& v) {
        v(std::string_view("mask_rng"), gen_);
    }

    void set_rate(float rate) {
        if (!(rate >= 0.0f && rate < 1.0f))
            throw invalid_argument("dropout: the rate must be in [0, 1), got " + std::to_string(rate));
        rate_ = rate;
    }
    float rate() const { return rate_; }
    /// Testing aid: keep using the last mask instead of drawing a new one.
    void freeze_mask(bool on) { frozen_ = on; }

private:
    rng gen_{0};
    std::vector<float> scale_;  // 0 or 1 / (1 - rate) per element of the last training batch
    float rate_ = static_cast<float>(Percent) / 100.0f;
    bool training_ = false, frozen_ = false;
};

/// Spec: inverted dropout with default rate Percent / 100, Percent in [0, 100). An integer
/// rather than a float template argument, which clang before 18 does not accept.
template <unsigned Percent = 50>
struct dropout {
    static_assert(Percent < 100, "dropout<Percent>: the rate in percent must be in [0, 100)");
    template <class In>
    using bind = dropout_layer<In, Percent>;
};

}  // namespace dynsparse
