#pragma once
// A finite-difference gradient checker for any dynsparse::Layer (or anything with a
// forward and a backward pass): compares the backward pass with central differences of
// L = sum(y * dy) for a random dy, for every input element and every element of every
// parameter. It depends on no test framework: it returns a gradient_check_result that a
// test asserts on (`CHECK(r.passed())`, or print `r.summary()`).
//
//   ds::testing::check_layer(layer, x, gen)         an unmasked layer
//   ds::testing::check_masked_layer(layer, x, gen)  a masked layer (see below)
//   testing/policy_check.hpp                        a surrogate or granularity of your own
//
// A masked layer's exact forward uses the unit step, whose derivative is 0 almost
// everywhere, while its backward uses the surrogate H: finite differences of the exact
// forward cannot agree with it. check_masked_layer therefore runs the forward with the
// surrogate's smooth step (set_smooth_forward(true), an antiderivative of H) and puts the
// weights where central differences are exact: Q = |W| - t away from the kinks of H.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "dynsparse/core/rng.hpp"
#include "dynsparse/core/tensor.hpp"
#include "dynsparse/layers/layer.hpp"
#include "dynsparse/surrogate/surrogate.hpp"

namespace dynsparse::testing {

struct gradient_check_options {
    float epsilon = 1e-2f;               ///< step of the central differences
    double absolute_tolerance = 2e-3;    ///< |analytic - numeric| allowed ...
    double relative_tolerance = 2e-2;    ///< ... plus this times the larger magnitude
};

/// How one checked tensor (the input, or one parameter) fared.
struct gradient_check_entry {
    std::string name;  ///< "input", or the parameter's name ("weight", "bias", "threshold")
    std::size_t checked = 0, failed = 0;
    double worst_error = 0;         ///< largest |analytic - numeric| in this tensor
    std::size_t worst_element = 0;  ///< flat index where it occurred
};

struct gradient_check_result {
    std::size_t checked = 0;  ///< derivatives compared
    std::size_t failed = 0;   ///< derivatives outside the tolerance
    double worst_error = 0;   ///< largest |analytic - numeric| over everything checked
    std::string worst_name;   ///< the tensor it belongs to ...
    std::size_t worst_element = 0;  ///< ... and its flat index there
    std::string first_failure;      ///< "weight[3]: analytic .. vs numeric ..", or empty
    std::vector<gradient_check_entry> entries;  ///< input first, then parameters in order

    /// Something was checked and nothing failed.
    bool passed() const { return checked > 0 && failed == 0; }

    /// One line: counts, the worst error and where, the first failure.
    std::string summary() const {
        std::string s = std::to_string(failed) + " of " + std::to_string(checked) +
                        " derivatives outside the tolerance; worst error " + std::to_string(worst_error);
        if (!worst_name.empty()) s += " at " + worst_name + "[" + std::to_string(worst_element) + "]";
        if (!first_failure.empty()) s += "; first failure " + first_failure;
        return s;
    }

    /// Adds another result's counts (e.g. several layers checked for one policy).
    void merge(const gradient_check_result& other, const std::string& prefix = "") {
        checked += other.checked;
        failed += other.failed;
        if (first_failure.empty() && !other.first_failure.empty())
            first_failure = prefix + other.first_failure;
        if (other.checked > 0 && (worst_name.empty() || other.worst_error > worst_error)) {
            worst_error = other.worst_error;
            worst_name = prefix + other.worst_name;
            worst_element = other.worst_element;
        }
        for (auto e : other.entries) {
            e.name = prefix + e.name;
            entries.push_back(std::move(e));
        }
    }
};

inline matrix random_matrix(std::size_t rows, std::size_t cols, rng& gen, float lo = -1, float hi = 1) {
    matrix m({rows, cols});
    for (auto& v : m) v = gen.uniform(lo, hi);
    return m;
}

/// What the checker needs of the object under test. `forward` runs it on x and returns
/// its output; `backward` runs forward and backward for (x, dy) and returns dL/dx (empty
/// to skip the input check); `params` lists the parameters (values and gradients).
struct checkable {
    std::function<const matrix&(const matrix&)> forward;
    std::function<matrix(const matrix&, const matrix&)> backward;
    std::function<std::vector<parameter>()> params;
};

namespace detail {

inline double weighted_sum(const matrix& y, const matrix& w) {
    double s = 0;
    for (std::size_t i = 0; i < y.size(); ++i) s += static_cast<double>(y.data()[i]) * w.data()[i];
    return s;
}

inline void compare(gradient_check_result& r, gradient_check_entry& e, std::size_t index,
                    double analytic, double numeric, const gradient_check_options& o) {
    ++r.checked;
    ++e.checked;
    const double err = std::fabs(analytic - numeric);
    const double allowed = o.absolute_tolerance +
                           o.relative_tolerance * std::max(std::fabs(analytic), std::fabs(numeric));
    if (err > e.worst_error || e.checked == 1) e.worst_error = err, e.worst_element = index;
    if (err > r.worst_error || r.checked == 1)
        r.worst_error = err, r.worst_name = e.name, r.worst_element = index;
    if (err > allowed) {
        ++e.failed;
        if (r.failed++ == 0)
            r.first_failure = e.name + "[" + std::to_string(index) + "]: analytic " +
                              std::to_string(analytic) + " vs numeric " + std::to_string(numeric);
    }
}

}  // namespace detail

/// Checks every input element and every parameter element of `c` at input x.
inline gradient_check_result check_gradients(const checkable& c, matrix x, rng& gen,
                                             const gradient_check_options& o = {}) {
    gradient_check_result r;
    const matrix y0 = c.forward(x);
    const matrix dy = random_matrix(y0.shape(0), y0.shape(1), gen);
    const matrix dx = c.backward(x, dy);
    // Copy the analytic parameter gradients before the perturbed forwards run.
    std::vector<parameter> ps = c.params();
    std::vector<std::vector<float>> analytic;
    for (auto& p : ps) analytic.emplace_back(p.gradient.begin(), p.gradient.end());
    auto loss = [&](const matrix& in) { return detail::weighted_sum(c.forward(in), dy); };
    auto central = [&](float& v) {
        const float keep = v;
        v = keep + o.epsilon;
        const double up = loss(x);
        v = keep - o.epsilon;
        const double down = loss(x);
        v = keep;
        return (up - down) / (2.0 * o.epsilon);
    };

    if (dx.size() > 0) {
        gradient_check_entry e{.name = "input"};
        for (std::size_t k = 0; k < x.size(); ++k)
            detail::compare(r, e, k, dx.data()[k], central(x.data()[k]), o);
        r.entries.push_back(std::move(e));
    }
    for (std::size_t p = 0; p < ps.size(); ++p) {
        gradient_check_entry e{.name = std::string(ps[p].name)};
        for (std::size_t k = 0; k < ps[p].value.size(); ++k)
            detail::compare(r, e, k, analytic[p][k], central(ps[p].value[k]), o);
        r.entries.push_back(std::move(e));
    }
    return r;
}

/// Wraps a layer (training-mode forward) as a checkable object; y_buffer holds its output.
template <class L>
checkable as_checkable(L& layer, matrix& y_buffer) {
    checkable c;
    c.forward = [&layer, &y_buffer](const matrix& x) -> const matrix& {
        layer.forward(x, y_buffer, true);
        return y_buffer;
    };
    c.backward = [&layer, &y_buffer](const matrix& x, const matrix& dy) {
        layer.forward(x, y_buffer, true);
        matrix dx;
        layer.backward(x, y_buffer, dy, &dx);
        return dx;
    };
    c.params = [&layer] {
        std::vector<parameter> ps;
        layer.for_each_parameter([&](const parameter& p) { ps.push_back(p); });
        return ps;
    };
    return c;
}

/// Checks a layer as it is (its current parameters) at input x.
template <Layer L>
gradient_check_result check_layer(L& layer, const matrix& x, rng& gen, const gradient_check_options& o = {}) {
    matrix y;
    return check_gradients(as_checkable(layer, y), x, gen, o);
}

/// True when S's smooth step is smooth near q for central differences of step eps: at
/// points eps / 4 apart within 4 eps of q, differences with steps eps and eps / 2 agree. A
/// kink or jump of H = S::derivative (a kink of the smooth step's slope) between eps / 2
/// and eps from such a point makes them differ. Only smooth_step is consulted, so a
/// derivative that does not match it is left for the gradient check to find.
template <Surrogate S>
bool kink_free(float q, float eps) {
    auto slope = [](float p, float h) {
        return (static_cast<double>(S::smooth_step(p + h)) - S::smooth_step(p - h)) / (2.0 * h);
    };
    for (int k = -16; k <= 16; ++k) {
        const float p = q + static_cast<float>(k) * eps / 4;
        const double coarse = slope(p, eps), fine = slope(p, eps / 2);
        if (std::fabs(coarse - fine) > 1e-3 * std::max(1.0, std::fabs(fine))) return false;
    }
    return true;
}

/// What check_masked_layer needs beyond MaskedLayer: the storage of masked_weights (W and
/// t, the policies, the smooth forward of the testing aid).
template <class L>
concept SmoothableMaskedLayer = MaskedLayer<L> && Surrogate<typename L::surrogate> &&
                                requires(L& layer, bool on, std::size_t i) {
    typename L::granularity;
    { layer.weight()(i, i) } -> std::convertible_to<float&>;
    { layer.threshold()(i) } -> std::convertible_to<float&>;
    layer.bias();
    layer.set_smooth_forward(on);
    { L::granularity::index(i, i, i) } -> std::convertible_to<std::size_t>;
};

/// Thresholds in [0.3, 0.8], biases in [-0.5, 0.5] and weights whose Q = |W| - t is
/// kink_free for the layer's surrogate, with |W| >= max(0.1, 5 eps) (no sign change under
/// the perturbation). Throws if the surrogate leaves no such Q in [-1.4, 1.4].
template <SmoothableMaskedLayer L>
void place_kink_free_weights(L& layer, rng& gen, float eps = gradient_check_options{}.epsilon) {
    using S = typename L::surrogate;
    using G = typename L::granularity;
    auto& w = layer.weight();
    auto& t = layer.threshold();
    for (auto& v : t) v = gen.uniform(0.3f, 0.8f);
    const float min_magnitude = std::max(0.1f, 5 * eps);
    const std::size_t rows = w.shape(0), cols = w.shape(1);
    for (std::size_t i = 0; i < rows; ++i)
        for (std::size_t j = 0; j < cols; ++j) {
            const float ti = t(G::index(i, j, cols));
            float q = 0;
            int tries = 0;
            do {
                if (++tries > 10000)
                    throw std::runtime_error(std::string(L::describe()) + ": the surrogate " +
                                             std::string(S::name) +
                                             " has no kink-free point in [-1.4, 1.4] for the gradient check");
                q = gen.uniform(-1.4f, 1.4f);
            } while (ti + q < min_magnitude || !kink_free<S>(q, eps));
            w(i, j) = (gen.uniform01() < 0.5f ? -1.0f : 1.0f) * (ti + q);
        }
    for (auto& b : layer.bias()) b = gen.uniform(-0.5f, 0.5f);
}

/// Checks a masked layer's backward pass (dL/dx, dL/dW, dL/db, dL/dt through the
/// surrogate) against the smooth forward. It overwrites the layer's parameters
/// (place_kink_free_weights) and turns the reset rule off for the check; afterwards the
/// forward is exact again and the reset rule as before.
template <SmoothableMaskedLayer L>
gradient_check_result check_masked_layer(L& layer, const matrix& x, rng& gen,
                                         const gradient_check_options& o = {}) {
    bool reset_rule = true;
    if constexpr (requires { layer.reset_rule(); }) reset_rule = layer.reset_rule();
    struct restore {  // exact forward and the reset rule back, also when the check throws
        L& layer;
        bool reset_rule;
        ~restore() {
            layer.set_smooth_forward(false);
            layer.set_reset_rule(reset_rule);
        }
    } const restore_on_exit{layer, reset_rule};
    layer.set_reset_rule(false);
    layer.set_smooth_forward(true);
    place_kink_free_weights(layer, gen, o.epsilon);
    return check_layer(layer, x, gen, o);
}

}  // namespace dynsparse::testing
