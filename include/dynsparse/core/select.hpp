#pragma once
// select(c, a, b): c ? a : b written as bit operations. GCC turns a float `?:` inside a
// loop into a branch when it cannot prove both operands safe to evaluate (the default
// -ftrapping-math), and a branch stops the loop from vectorising on targets without
// AVX-512 masking. The bitwise form has no branch, so elementwise kernels written with
// it vectorise on every x86-64 target, and it selects exactly the same value.
#include <bit>
#include <cstdint>

namespace dynsparse {

/// c ? a : b, branch-free; both a and b are evaluated.
inline float select(bool c, float a, float b) {
    const std::uint32_t keep_a = 0u - static_cast<std::uint32_t>(c);
    return std::bit_cast<float>((std::bit_cast<std::uint32_t>(a) & keep_a) |
                                (std::bit_cast<std::uint32_t>(b) & ~keep_a));
}

}  // namespace dynsparse
