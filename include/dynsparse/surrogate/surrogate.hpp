#pragma once
// Step-function surrogates: how the backward pass differentiates the unit step S.
//
// Contract of a Surrogate `S` (all static, so a policy costs nothing at run time):
//   S::name                     a std::string_view used in reports;
//   S::derivative(float x)      H(x), the stand-in for dS/dx used by the backward pass;
//   S::smooth_step(float x)     an antiderivative of H: the smooth step H stands for.
// The forward pass always uses the exact step S(x) = x > 0. `smooth_step` exists so
// tests can run a smoothed forward and check the backward pass by finite differences.
//
// To add one, write a struct with these three members; `static_assert(Surrogate<S>)`
// tells you which is missing.
#include <bit>
#include <cmath>
#include <cstdint>
#include <concepts>
#include <string_view>

#include "dynsparse/core/select.hpp"
#include "dynsparse/detail/fast_exp.hpp"  // detail::vector_friendly_exp

namespace dynsparse {

template <class S>
concept Surrogate = requires(float x) {
    { S::name } -> std::convertible_to<std::string_view>;
    { S::derivative(x) } -> std::same_as<float>;
    { S::smooth_step(x) } -> std::same_as<float>;
};

/// DST's long-tailed H(x): 2 - 4|x| on |x| <= 0.4, 0.4 on 0.4 < |x| <= 1, else 0.
struct long_tailed {
    static constexpr std::string_view name = "long_tailed";
    // Both pieces are computed, then one is selected bitwise (ds::select): no operation
    // is conditional, so the surrogate pass vectorises on every target.
    static float derivative(float x) {
        const float a = std::fabs(x);
        const float centre = 2.0f - 4.0f * a;
        const float tail = select(a <= 1.0f, 0.4f, 0.0f);
        return select(a <= 0.4f, centre, tail);
    }
    static float smooth_step(float x) {
        const float a = std::fabs(x);
        const float g = a <= 0.4f ? 2.0f * a - 2.0f * a * a
                                  : (a <= 1.0f ? 0.48f + 0.4f * (a - 0.4f) : 0.72f);
        return 0.5f + (x < 0 ? -g : g);
    }
};

/// Straight-through estimator: H(x) = 1 on |x| <= 1, else 0.
struct straight_through {
    static constexpr std::string_view name = "straight_through";
    static float derivative(float x) { return select(std::fabs(x) <= 1.0f, 1.0f, 0.0f); }
    static float smooth_step(float x) {
        return 0.5f + (x < -1.0f ? -1.0f : (x > 1.0f ? 1.0f : x));
    }
};

/// Derivative of a logistic of steepness K = Num / Den: H(x) = K s(Kx) (1 - s(Kx)).
/// The default K = 4 gives H(0) = 1, the same height as straight_through. The steepness is
/// a ratio of integers rather than a float template argument so that compilers without
/// floating-point non-type template parameters (clang before 18) accept it:
/// sigmoid_surrogate<10> is K = 10, sigmoid_surrogate<5, 2> is K = 2.5.
template <int Num = 4, int Den = 1>
struct sigmoid_surrogate {
    static_assert(Den > 0 && Num > 0, "the steepness Num/Den of sigmoid_surrogate must be positive");
    static constexpr std::string_view name = "sigmoid";
    static constexpr float steepness = static_cast<float>(Num) / static_cast<float>(Den);
    static float derivative(float x) {
        const float s = smooth_step(x);
        return steepness * s * (1.0f - s);
    }
    static float smooth_step(float x) {
        return 1.0f / (1.0f + detail::vector_friendly_exp(-steepness * x));
    }
};

}  // namespace dynsparse
