#pragma once
// DST's sparse regulariser, alpha * sum over all thresholds of exp(-t). It pushes every
// threshold up; larger alpha gives a sparser model. Applied to the parameters of kind
// `threshold`, whatever layer they belong to, so new masked layers need nothing extra.
#include <cmath>
#include <span>

#include "dynsparse/layers/layer.hpp"

namespace dynsparse {

/// Adds d/dt of alpha * sum exp(-t) (= -alpha * exp(-t)) to every threshold gradient and
/// returns the regulariser's value.
inline double apply_sparse_regulariser(std::span<const parameter> params, float alpha) {
    if (alpha == 0.0f) return 0.0;
    double total = 0;
    for (const parameter& p : params) {
        if (p.kind != parameter_kind::threshold) continue;
        for (std::size_t i = 0; i < p.value.size(); ++i) {
            const float e = std::exp(-p.value[i]);
            total += e;
            // The term is rounded on its own (an fma with 0 is never fused with the
            // subtraction), so the sum is the same whether the surrogate's share of dL/dt
            // is already in the gradient or is subtracted later (a masked layer's deferred
            // surrogate pass, layers/masked_weights.hpp).
            p.gradient[i] -= std::fma(alpha, e, 0.0f);
        }
    }
    return alpha * total;
}

}  // namespace dynsparse
