#pragma once
// Sums of float runs that vectorise. A plain `s += v[i]` loop is one dependent chain of
// scalar adds (the compiler may not reorder float additions), 4 cycles per element; 16
// independent partial sums let it use vector adds. The order of the additions is fixed
// by n alone, so results are reproducible run to run.
#include <cstddef>

namespace dynsparse::detail {

inline constexpr std::size_t sum_lanes = 16;

inline float sum_floats(const float* __restrict v, std::size_t n) {
    float acc[sum_lanes] = {};
    const std::size_t body = n - n % sum_lanes;
    for (std::size_t i = 0; i < body; i += sum_lanes)
        for (std::size_t l = 0; l < sum_lanes; ++l) acc[l] += v[i + l];
    for (std::size_t i = body; i < n; ++i) acc[i - body] += v[i];
    float sum = 0.0f;
    for (float a : acc) sum += a;
    return sum;
}

}  // namespace dynsparse::detail
