#pragma once
// The Optimizer concept: an elementwise update the library's update pass
// (optim/update.hpp) calls on ranges of parameters.
//
// Each step, in this order:
//   opt.begin_step(params, lr)   every trainable parameter of the model, in a fixed order
//                                (the model's for_each_parameter order), and the step's
//                                learning rate: size the state, compute per-step constants;
//   opt.update(range)            any number of times, for disjoint ranges of elements
//                                [begin, end) of parameter `range.index`, covering every
//                                element once per step; ranges may come from several
//                                threads at once, so update touches only its own elements
//                                and state (the same element offsets in its buffers);
//   opt.end_step()               after the last range.
// The gradient a range sees is complete: the DST surrogate pass and the regulariser have
// run for those elements (thresholds of a row are updated before that row's weights).
//
// Optional: visit_state(v) lists the optimizer's state for checkpoints, v(name, field)
// per field (StatefulOptimizer); without it a resumed run restarts the optimizer's state.
#include <concepts>
#include <cstddef>
#include <span>

#include "dynsparse/core/parameter.hpp"

namespace dynsparse {

/// Elements [begin, end) of the parameter `index` of the step's list: value and gradient
/// point at element 0 of the whole parameter.
struct update_range {
    std::size_t index;
    parameter_kind kind;
    float* value;
    const float* gradient;
    std::size_t begin, end;
};

template <class O>
concept Optimizer = requires(O& opt, std::span<const parameter> params, float lr,
                             const update_range& range) {
    opt.begin_step(params, lr);
    opt.update(range);
    opt.end_step();
};

namespace detail {
struct state_sink {
    template <class T>
    void operator()(const char*, T&) const {}
};
}  // namespace detail

/// An optimizer whose state goes into checkpoints: visit_state(v) calls v(name, field)
/// for each field (io/checkpoint.hpp says which field types are supported).
template <class O>
concept StatefulOptimizer = Optimizer<O> && requires(O& opt) { opt.visit_state(detail::state_sink{}); };

}  // namespace dynsparse
