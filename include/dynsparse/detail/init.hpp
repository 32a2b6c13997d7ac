#pragma once
#include <cmath>
#include <span>

#include "dynsparse/core/rng.hpp"

namespace dynsparse::detail {

/// PyTorch's default for Linear and Conv: W and b drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
inline void init_fan_in_uniform(std::span<float> values, std::size_t fan_in, rng& gen) {
    const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
    for (float& v : values) v = gen.uniform(-bound, bound);
}

}  // namespace dynsparse::detail
