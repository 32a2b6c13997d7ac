#pragma once
// A finite-difference gradient checker for any dynsparse::Layer: compares the layer's
// backward pass with central differences of L = sum(y * dy) for a random dy, for every
// input element and every element of every parameter.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "dynsparse/core/rng.hpp"
#include "dynsparse/layers/layer.hpp"

namespace dynsparse::testing {

struct gradient_check_options {
    float epsilon = 1e-2f;
    double absolute_tolerance = 2e-3;
    double relative_tolerance = 2e-2;
};

inline matrix random_matrix(std::size_t rows, std::size_t cols, rng& gen, float lo = -1, float hi = 1) {
    matrix m({rows, cols});
    for (auto& v : m) v = gen.uniform(lo, hi);
    return m;
}

inline double weighted_sum(const matrix& y, const matrix& w) {
    double s = 0;
    for (std::size_t i = 0; i < y.size(); ++i) s += static_cast<double>(y.data()[i]) * w.data()[i];
    return s;
}

struct gradient_check_result {
    std::size_t checked = 0;
    std::size_t failed = 0;
    double worst_error = 0;
    std::string first_failure;
};

inline void compare(gradient_check_result& r, const std::string& what, std::size_t index,
                    double analytic, double numeric, const gradient_check_options& o) {
    ++r.checked;
    const double err = std::fabs(analytic - numeric);
    const double allowed = o.absolute_tolerance +
                           o.relative_tolerance * std::max(std::fabs(analytic), std::fabs(numeric));
    r.worst_error = std::max(r.worst_error, err);
    if (err > allowed) {
        if (r.failed++ == 0)
            r.first_failure = what + "[" + std::to_string(index) + "]: analytic " +
                              std::to_string(analytic) + " vs numeric " + std::to_string(numeric);
    }
}

/// `forward` runs the object under test on x and returns its output; `backward` runs its
/// backward pass for dy and returns dL/dx (may be empty to skip the input check);
/// `params` lists (name, values, gradients) of what to check.
struct checkable {
    std::function<const matrix&(const matrix&)> forward;
    std::function<matrix(const matrix&, const matrix&)> backward;  // (x, dy) -> dx
    std::function<std::vector<parameter>()> params;
};

inline gradient_check_result check_gradients(const checkable& c, matrix x, rng& gen,
                                             const gradient_check_options& o = {}) {
    gradient_check_result r;
    const matrix y0 = c.forward(x);
    const matrix dy = random_matrix(y0.shape(0), y0.shape(1), gen);
    const matrix dx = c.backward(x, dy);
    // Copy analytic parameter gradients before the perturbed forwards run.
    std::vector<parameter> ps = c.params();
    std::vector<std::vector<float>> analytic;
    for (auto& p : ps) analytic.emplace_back(p.gradient.begin(), p.gradient.end());
    auto loss = [&](const matrix& in) { return weighted_sum(c.forward(in), dy); };

    if (dx.size() > 0) {
        for (std::size_t k = 0; k < x.size(); ++k) {
            const float keep = x.data()[k];
            x.data()[k] = keep + o.epsilon;
            const double up = loss(x);
            x.data()[k] = keep - o.epsilon;
            const double down = loss(x);
            x.data()[k] = keep;
            compare(r, "input", k, dx.data()[k], (up - down) / (2.0 * o.epsilon), o);
        }
    }
    for (std::size_t p = 0; p < ps.size(); ++p) {
        for (std::size_t k = 0; k < ps[p].value.size(); ++k) {
            float& v = ps[p].value[k];
            const float keep = v;
            v = keep + o.epsilon;
            const double up = loss(x);
            v = keep - o.epsilon;
            const double down = loss(x);
            v = keep;
            compare(r, std::string(ps[p].name), k, analytic[p][k], (up - down) / (2.0 * o.epsilon), o);
        }
    }
    return r;
}

/// Wraps a bound layer as a checkable object.
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

#define DYNSPARSE_CHECK_GRADIENTS(result)                                   \
    do {                                                                    \
        const auto& r_ = (result);                                          \
        INFO("checked " << r_.checked << ", worst error " << r_.worst_error \
                        << ", first failure: " << r_.first_failure);        \
        CHECK(r_.checked > 0);                                              \
        CHECK(r_.failed == 0);                                              \
    } while (0)

}  // namespace dynsparse::testing
