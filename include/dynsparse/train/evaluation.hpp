#pragma once
// evaluation: loss and accuracy on a dataset (trainer::evaluate, evaluate(sparse_model&, ...)).
#include <cstddef>

namespace dynsparse {

struct evaluation {
    double loss = 0;          ///< mean softmax cross-entropy over the samples
    double accuracy = 0;      ///< percent of samples whose largest output is the label (0 to 100)
    std::size_t samples = 0;
};

}  // namespace dynsparse
