#pragma once
// Evaluation and prediction with an exported model (sparse_model, sparse/engine.hpp), in
// batches: what trainer::evaluate and sequential::predict do for a typed network.
//
//   ds::sparse_model m = ds::load_sparse_model("lenet.dsm");
//   const ds::evaluation ev = ds::evaluate(m, data.test);   // ev.accuracy in percent
//   const std::vector<std::size_t> classes = ds::predict(m, data.test.images);
#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "dynsparse/core/error.hpp"
#include "dynsparse/core/tensor.hpp"
#include "dynsparse/data/dataset.hpp"
#include "dynsparse/loss/softmax_cross_entropy.hpp"
#include "dynsparse/sparse/engine.hpp"
#include "dynsparse/train/evaluation.hpp"

namespace dynsparse {

namespace detail {
/// f(first, count, outputs) for each batch of `batch` rows of x, in order.
template <class F>
void run_in_batches(sparse_model& m, const matrix& x, std::size_t batch, kernel_choice choice, F&& f) {
    if (batch == 0) throw invalid_argument("sparse_model evaluation: the batch size must be positive");
    if (x.dimension() != 2 || x.shape(1) != m.input_size())
        throw invalid_argument("sparse_model evaluation: the model takes " + std::to_string(m.input_size()) +
                               " inputs per sample, the data has " +
                               std::to_string(x.dimension() == 2 ? x.shape(1) : x.size()));
    const std::size_t n = x.shape(0), features = x.shape(1);
    matrix part;
    for (std::size_t first = 0; first < n; first += batch) {
        const std::size_t count = std::min(batch, n - first);
        ensure_shape(part, count, features);
        std::copy_n(x.data() + first * features, count * features, part.data());
        f(first, count, m.run(part, choice));
    }
}
}  // namespace detail

/// Loss and accuracy of the model on a dataset, `batch` samples per run (the same
/// arithmetic as trainer::evaluate). The data must be normalised as in training.
inline evaluation evaluate(sparse_model& m, const dataset& data, std::size_t batch = 1000,
                           kernel_choice choice = kernel_choice::automatic) {
    evaluation ev;
    ev.samples = data.size();
    if (data.size() == 0) return ev;
    if (data.images.shape(0) != data.size())
        throw invalid_argument("evaluate(sparse_model): the dataset has " + std::to_string(data.images.shape(0)) +
                               " images and " + std::to_string(data.size()) + " labels");
    const softmax_cross_entropy loss;
    matrix gradient;
    double loss_sum = 0;
    std::size_t correct = 0;
    detail::run_in_batches(m, data.images, batch, choice, [&](std::size_t first, std::size_t count, const matrix& y) {
        const std::span<const std::uint8_t> labels(data.labels.data() + first, count);
        loss_sum += loss.value_and_gradient(y, labels, gradient) * static_cast<double>(count);
        correct += count_correct(y, labels);
    });
    ev.loss = loss_sum / static_cast<double>(data.size());
    ev.accuracy = 100.0 * static_cast<double>(correct) / static_cast<double>(data.size());
    return ev;
}

/// The predicted class of every row of x (its largest output), `batch` rows per run.
inline std::vector<std::size_t> predict(sparse_model& m, const matrix& x, std::size_t batch = 1000,
                                        kernel_choice choice = kernel_choice::automatic) {
    std::vector<std::size_t> classes;
    classes.reserve(x.dimension() == 2 ? x.shape(0) : 0);
    detail::run_in_batches(m, x, batch, choice, [&](std::size_t, std::size_t, const matrix& y) {
        const std::vector<std::size_t> part = argmax_rows(y);
        classes.insert(classes.end(), part.begin(), part.end());
    });
    return classes;
}

/// Class probabilities (softmax of the outputs) for every row of x.
inline matrix predict_proba(sparse_model& m, const matrix& x, std::size_t batch = 1000,
                            kernel_choice choice = kernel_choice::automatic) {
    matrix p = make_matrix(x.dimension() == 2 ? x.shape(0) : 0, m.output_size());
    detail::run_in_batches(m, x, batch, choice, [&](std::size_t first, std::size_t count, const matrix& y) {
        const matrix q = softmax_rows(y);
        std::copy_n(q.data(), count * m.output_size(), p.data() + first * m.output_size());
    });
    return p;
}

}  // namespace dynsparse
