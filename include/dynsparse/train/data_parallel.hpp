#pragma once
// data_parallel_hooks: how a trainer shares its work with the other processes of a
// data-parallel run. Plain functions, no MPI here: distributed/mpi.hpp fills them in
// (distributed::attach), a test may fill them with anything linear.
//
// With ranks > 1 the trainer (train/trainer.hpp)
//   - gathers and augments each globally shuffled batch as one process would, then keeps
//     its contiguous share of the rows (rank r of N: rows [r*B/N, (r+1)*B/N));
//   - scales dL/d(output) by share/B, so that the sum over ranks of the raw gradients is
//     the gradient of the mean loss over the global batch;
//   - packs every raw gradient and its share of the loss into one buffer and calls sum()
//     once per step, before the update pass (which adds the regulariser gradient once and
//     runs the DST completion, optimizer, masks and reset rule identically everywhere);
//   - evaluates its contiguous share of an evaluation set and sums (loss, correct);
//   - calls end_of_epoch() after each training epoch (the divergence guard).
#include <algorithm>
#include <cstddef>
#include <functional>
#include <span>
#include <vector>

#include "dynsparse/core/parameter.hpp"

namespace dynsparse {

struct data_parallel_hooks {
    std::size_t rank = 0, ranks = 1;
    /// In place, element-wise sum over all ranks; every rank gets the same result.
    std::function<void(std::span<float>)> sum;
    std::function<void(std::span<double>)> sum_doubles;
    /// After every training epoch, before its evaluation and report; may throw.
    std::function<void()> end_of_epoch;
};

/// Rows [first, first + count) of a batch of `rows` rows that rank `rank` of `ranks` takes.
struct batch_share {
    std::size_t first, count;
};

inline batch_share share_of(std::size_t rows, std::size_t rank, std::size_t ranks) {
    const std::size_t base = rows / ranks, extra = rows % ranks;
    return {rank * base + (rank < extra ? rank : extra), base + (rank < extra ? 1 : 0)};
}

/// One fused sum of a step: every gradient of `params`, then `loss_part` as a float pair
/// (hi, lo), packed into `buffer`, summed in place by `sum` (one collective), unpacked into
/// the gradients. Returns the summed loss.
inline double fused_gradient_sum(std::span<const parameter> params, double loss_part,
                                 std::vector<float>& buffer, const std::function<void(std::span<float>)>& sum) {
    std::size_t total = 2;
    for (const parameter& p : params) total += p.gradient.size();
    buffer.resize(total);
    float* at = buffer.data();
    for (const parameter& p : params) at = std::copy(p.gradient.begin(), p.gradient.end(), at);
    at[0] = static_cast<float>(loss_part);
    at[1] = static_cast<float>(loss_part - static_cast<double>(at[0]));
    sum(buffer);
    const float* from = buffer.data();
    for (const parameter& p : params) {
        std::copy_n(from, p.gradient.size(), p.gradient.begin());
        from += p.gradient.size();
    }
    return static_cast<double>(from[0]) + static_cast<double>(from[1]);
}

}  // namespace dynsparse
