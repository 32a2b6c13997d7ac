#pragma once
// Loss protocol and the softmax cross-entropy loss.
//
// A Loss takes the network output (batch x classes) and integer labels, returns the
// mean loss over the batch and writes dL/d(output) into `gradient` (resized to match).
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "dynsparse/core/error.hpp"
#include "dynsparse/core/tensor.hpp"

namespace dynsparse {

template <class L>
concept Loss = requires(L& loss, const matrix& output, std::span<const std::uint8_t> labels,
                        matrix& gradient) {
    { loss.value_and_gradient(output, labels, gradient) } -> std::convertible_to<double>;
};

namespace detail {
/// out[c] = exp(z[c] - max z) for the `classes` logits z; returns their sum (in double)
/// and sets zmax: the stable first half of a softmax, shared by the loss and softmax_rows.
inline double shifted_exp(const float* z, std::size_t classes, float* out, float& zmax) {
    zmax = *std::max_element(z, z + classes);
    double sum = 0;
    for (std::size_t c = 0; c < classes; ++c) {
        out[c] = std::exp(z[c] - zmax);
        sum += out[c];
    }
    return sum;
}

/// Index of the largest of z[0..classes) (ties go to the lowest index).
inline std::size_t argmax(const float* z, std::size_t classes) {
    return static_cast<std::size_t>(std::max_element(z, z + classes) - z);
}
}  // namespace detail

/// Mean over the batch of -log softmax(logits)[label], computed stably.
struct softmax_cross_entropy {
    double value_and_gradient(const matrix& logits, std::span<const std::uint8_t> labels,
                              matrix& gradient) const {
        const std::size_t batch = logits.shape(0), classes = logits.shape(1);
        if (labels.size() != batch)
            throw invalid_argument("softmax_cross_entropy: " + std::to_string(labels.size()) +
                                   " labels for a batch of " + std::to_string(batch));
        ensure_shape(gradient, batch, classes);
        const float inv_batch = 1.0f / static_cast<float>(batch);
        double total = 0;
        for (std::size_t r = 0; r < batch; ++r) {
            const float* z = logits.data() + r * classes;
            float* g = gradient.data() + r * classes;
            if (labels[r] >= classes)
                throw invalid_argument("softmax_cross_entropy: label " +
                                       std::to_string(labels[r]) + " but the network has " +
                                       std::to_string(classes) + " outputs");
            float zmax;
            const double sum = detail::shifted_exp(z, classes, g, zmax);
            const float inv = static_cast<float>(1.0 / sum);
            for (std::size_t c = 0; c < classes; ++c) g[c] *= inv * inv_batch;
            g[labels[r]] -= inv_batch;
            total += std::log(sum) + zmax - z[labels[r]];
        }
        return total / static_cast<double>(batch);
    }
};

/// Number of rows whose largest output is at the label (ties go to the lowest index).
inline std::size_t count_correct(const matrix& output, std::span<const std::uint8_t> labels) {
    const std::size_t classes = output.shape(1);
    std::size_t correct = 0;
    for (std::size_t r = 0; r < labels.size(); ++r) {
        correct += detail::argmax(output.data() + r * classes, classes) == labels[r];
    }
    return correct;
}

/// Each row's index of its largest value (ties go to the lowest index): the predicted class.
inline std::vector<std::size_t> argmax_rows(const matrix& output) {
    const std::size_t rows = output.shape(0), classes = output.shape(1);
    std::vector<std::size_t> out(rows);
    for (std::size_t r = 0; r < rows; ++r) out[r] = detail::argmax(output.data() + r * classes, classes);
    return out;
}

/// softmax of each row (class probabilities from logits), computed stably as the loss does.
inline matrix softmax_rows(const matrix& logits) {
    const std::size_t rows = logits.shape(0), classes = logits.shape(1);
    matrix p = make_matrix(rows, classes);
    for (std::size_t r = 0; r < rows; ++r) {
        float* q = p.data() + r * classes;
        float zmax;
        const float inv = static_cast<float>(1.0 / detail::shifted_exp(logits.data() + r * classes, classes, q, zmax));
        for (std::size_t c = 0; c < classes; ++c) q[c] *= inv;
    }
    return p;
}

}  // namespace dynsparse
