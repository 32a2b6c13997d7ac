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
            const float zmax = *std::max_element(z, z + classes);
            double sum = 0;
            for (std::size_t c = 0; c < classes; ++c) {
                g[c] = std::exp(z[c] - zmax);
                sum += g[c];
            }
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
        const float* z = output.data() + r * classes;
        correct += static_cast<std::size_t>(std::max_element(z, z + classes) - z) == labels[r];
    }
    return correct;
}

/// Each row's index of its largest value (ties go to the lowest index): the predicted class.
inline std::vector<std::size_t> argmax_rows(const matrix& output) {
    const std::size_t rows = output.shape(0), classes = output.shape(1);
    std::vector<std::size_t> out(rows);
    for (std::size_t r = 0; r < rows; ++r) {
        const float* z = output.data() + r * classes;
        out[r] = static_cast<std::size_t>(std::max_element(z, z + classes) - z);
    }
    return out;
}

/// softmax of each row (class probabilities from logits), computed stably as the loss does.
inline matrix softmax_rows(const matrix& logits) {
    const std::size_t rows = logits.shape(0), classes = logits.shape(1);
    matrix p = make_matrix(rows, classes);
    for (std::size_t r = 0; r < rows; ++r) {
        const float* z = logits.data() + r * classes;
        float* q = p.data() + r * classes;
        const float zmax = *std::max_element(z, z + classes);
        double sum = 0;
        for (std::size_t c = 0; c < classes; ++c) {
            q[c] = std::exp(z[c] - zmax);
            sum += q[c];
        }
        const float inv = static_cast<float>(1.0 / sum);
        for (std::size_t c = 0; c < classes; ++c) q[c] *= inv;
    }
    return p;
}

}  // namespace dynsparse
