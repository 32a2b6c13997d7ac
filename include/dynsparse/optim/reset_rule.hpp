#pragma once
// Reset rules (concepts/reset_rule.hpp). The default, one_percent, is the reference code's:
// a layer keeping 1% of its weights or fewer gets its thresholds reset to 0.
#include <cstddef>
#include <string_view>

#include "dynsparse/concepts/reset_rule.hpp"

namespace dynsparse {

/// The reference code's rule: reset when the layer keeps <= 1% of its weights.
struct one_percent {
    static constexpr std::string_view name = "one_percent";
    bool should_reset(const reset_query& q) const { return q.kept * 100 <= q.total; }
};

/// Never reset: a layer may prune itself to nothing (and then stops learning).
struct never_reset {
    static constexpr std::string_view name = "never";
    bool should_reset(const reset_query&) const { return false; }
};

/// one_percent, except in the last `final_fraction` of the run's steps: a reset there
/// leaves no time to re-prune the layer, so the run would end with it (nearly) dense.
/// (LeNet-5-Caffe seed 1 ended at 65.75% remaining that way: fc1 reset in the last
/// epoch.) With an unknown run length (total_steps 0) it behaves as one_percent.
struct no_late_reset {
    static constexpr std::string_view name = "no_late_reset";
    double final_fraction = 0.1;
    bool should_reset(const reset_query& q) const {
        if (q.kept * 100 > q.total) return false;
        if (q.total_steps == 0) return true;
        return static_cast<double>(q.step) < (1.0 - final_fraction) * static_cast<double>(q.total_steps);
    }
};

}  // namespace dynsparse
