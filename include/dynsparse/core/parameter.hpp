#pragma once
// parameter: a view of one trainable tensor and its gradient, plain data. Layers list
// theirs through for_each_parameter(f); the update pass (optim/update.hpp) hands ranges
// of them to optimizers. Masked layers' DST state (mask, thresholds by row) is reached
// through their typed block view (layers/masked_block.hpp), not through this struct.
#include <span>
#include <string_view>

namespace dynsparse {

enum class parameter_kind { weight, bias, threshold };

struct parameter {
    std::string_view name;      ///< "weight", "bias", "threshold", "gamma", ...
    parameter_kind kind;
    std::span<float> value;
    std::span<float> gradient;  ///< same size as value
};

}  // namespace dynsparse
