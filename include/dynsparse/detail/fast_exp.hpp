#pragma once
// A branch-free exp used by the logistic surrogate and the LSTM gates.
#include <bit>
#include <cmath>
#include <cstdint>

#include "dynsparse/core/select.hpp"

namespace dynsparse {

namespace detail {
/// exp(x) to about 2e-7 relative error for x in [-87, 88] (clamped outside), written with
/// no branches and no library call so that loops over it vectorise (std::exp does not
/// without -ffast-math). Cody-Waite reduction x = n ln2 + r, then a degree-6 polynomial.
inline float vector_friendly_exp(float x) {
    x = select(x < -87.0f, -87.0f, select(x > 88.0f, 88.0f, x));
    const float n = std::nearbyint(x * 1.44269504088896341f);
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const auto bits = static_cast<std::int32_t>(select(n == n, n, 0.0f)) + 127;  // NaN: p is NaN anyway
    return p * std::bit_cast<float>(bits << 23);
}
}  // namespace detail

}  // namespace dynsparse
