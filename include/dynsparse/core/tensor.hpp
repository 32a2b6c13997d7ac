#pragma once
// Tensor aliases and small helpers shared by every layer.
//
// Activations travel between layers as row-major `batch x features` matrices: a
// layer's per-sample shape (a vector, an image (C,H,W), a sequence (T,F)) is a
// compile-time property of its type, while the storage is always one row per sample.
#include <cstddef>
#include <xtensor/xtensor.hpp>

namespace dynsparse {

using matrix = xt::xtensor<float, 2>;
using vector = xt::xtensor<float, 1>;

/// A zero-filled vector of n elements. (Beware `vector({n})`: for a rank-1 tensor that
/// brace list is read as the *values*, giving one element equal to n.)
inline vector make_vector(std::size_t n, float value = 0.0f) {
    return vector(vector::shape_type{n}, value);
}

inline matrix make_matrix(std::size_t rows, std::size_t cols, float value = 0.0f) {
    return matrix(matrix::shape_type{rows, cols}, value);
}

/// Resizes `m` to rows x cols only when the shape differs, so buffers are allocated
/// once per batch size and reused on every step.
inline void ensure_shape(matrix& m, std::size_t rows, std::size_t cols) {
    if (m.shape(0) != rows || m.shape(1) != cols) m.resize({rows, cols});
}

}  // namespace dynsparse
