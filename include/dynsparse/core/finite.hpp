#pragma once
// first_non_finite: where a float array first holds a NaN or an infinity. The scan tests
// exponent bits with an integer OR per block, which vectorises (a float sum would not,
// without reassociation), so a check of every parameter costs a small fraction of a step.
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>

namespace dynsparse {

inline constexpr std::size_t all_finite = static_cast<std::size_t>(-1);

/// Index of the first NaN or infinity in v, or all_finite.
inline std::size_t first_non_finite(std::span<const float> v) {
    constexpr std::uint32_t exponent = 0x7f800000u;
    constexpr std::size_t block = 256;
    for (std::size_t b = 0; b < v.size(); b += block) {
        const std::size_t e = b + block < v.size() ? b + block : v.size();
        std::uint32_t any = 0;
        for (std::size_t i = b; i < e; ++i)
            any |= static_cast<std::uint32_t>((std::bit_cast<std::uint32_t>(v[i]) & exponent) == exponent);
        if (any)
            for (std::size_t i = b; i < e; ++i)
                if ((std::bit_cast<std::uint32_t>(v[i]) & exponent) == exponent) return i;
    }
    return all_finite;
}

}  // namespace dynsparse
