// A downstream user's check of their own surrogate and of a masked layer with the
// installed gradient checker. Exits 0 iff every check passes and a deliberately wrong
// surrogate is caught.
#include <dynsparse/dynsparse.hpp>
#include <dynsparse/testing/gradient_check.hpp>
#include <dynsparse/testing/policy_check.hpp>

#include <cmath>
#include <exception>
#include <iostream>

namespace ds = dynsparse;

/// A user's surrogate: H(x) = 1 / (1 + x^2), the derivative of its smooth step atan(x).
struct cauchy {
    static constexpr std::string_view name = "cauchy";
    static float derivative(float x) { return 1.0f / (1.0f + x * x); }
    static float smooth_step(float x) { return std::atan(x); }
};

/// The same with a derivative that does not match its smooth step.
struct wrong_cauchy {
    static constexpr std::string_view name = "wrong_cauchy";
    static float derivative(float x) { return 2.0f / (1.0f + x * x); }
    static float smooth_step(float x) { return std::atan(x); }
};

int main() {
    try {
        ds::rng gen(7);
        ds::masked_dense_layer<6, 4, ds::long_tailed, ds::per_neuron> layer;
        const auto masked = ds::testing::check_masked_layer(layer, ds::testing::random_matrix(3, 6, gen), gen);
        const auto own = ds::testing::check_surrogate<cauchy, ds::scalar>();
        const auto wrong = ds::testing::check_surrogate<wrong_cauchy>();
        std::cout << "masked layer: " << masked.summary() << "\n"
                  << "cauchy: " << own.summary() << "\n"
                  << "wrong_cauchy: " << wrong.summary() << "\n";
        const bool ok = masked.passed() && own.passed() && !wrong.passed();
        std::cout << (ok ? "gradient checks passed\n" : "gradient checks FAILED\n");
        return ok ? 0 : 1;
    } catch (const std::exception& e) {
        std::cerr << "dynsparse consumer gradient check: " << e.what() << '\n';
        return 1;
    }
}
