#pragma once
// Sparse regularisers (concepts/regulariser.hpp). The default, exp_decay, is the paper's
// alpha * sum exp(-t): it pushes every threshold up, more weakly as it grows; larger alpha
// gives a sparser model.
#include <cmath>
#include <cstddef>
#include <span>
#include <string_view>

#include "dynsparse/concepts/regulariser.hpp"

namespace dynsparse {

/// alpha * sum exp(-t) (DST's regulariser).
struct exp_decay {
    static constexpr std::string_view name = "exp_decay";
    double apply(std::span<const float> t, std::span<float> dt, const regulariser_scope& s) const {
        double total = 0;
        for (std::size_t i = 0; i < t.size(); ++i) {
            const float e = std::exp(-t[i]);
            total += e;
            // The term rounded on its own (an fma with 0 is never fused with the
            // subtraction): the same bits whether dt already holds the surrogate's share.
            dt[i] -= std::fma(s.alpha, e, 0.0f);
        }
        return s.alpha * total;
    }
};

/// alpha * mean over each layer of exp(-t): every layer gets the same total pull whatever
/// its number of thresholds (exp_decay pulls a per-neuron layer of 300 rows 300 times as
/// hard as a layer with one scalar threshold).
struct layer_mean_exp_decay {
    static constexpr std::string_view name = "layer_mean_exp_decay";
    double apply(std::span<const float> t, std::span<float> dt, const regulariser_scope& s) const {
        const float a = s.alpha / static_cast<float>(s.layer_thresholds);
        double total = 0;
        for (std::size_t i = 0; i < t.size(); ++i) {
            const float e = std::exp(-t[i]);
            total += e;
            dt[i] -= a * e;
        }
        return static_cast<double>(a) * total;
    }
};

/// alpha * sum (-t): a constant pull (an L1 penalty on -t) that does not weaken as the
/// thresholds grow; the ablation that shows why DST's term decays.
struct linear_pull {
    static constexpr std::string_view name = "linear_pull";
    double apply(std::span<const float> t, std::span<float> dt, const regulariser_scope& s) const {
        double total = 0;
        for (std::size_t i = 0; i < t.size(); ++i) {
            total -= t[i];
            dt[i] -= s.alpha;
        }
        return s.alpha * total;
    }
};

}  // namespace dynsparse
