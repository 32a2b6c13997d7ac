#pragma once
// The Layer protocol.
//
// A user spells a network with layer *specs* (`masked_dense<300>`, `relu`): types that
// do not yet know their input. `sequential` binds each spec to the shape produced by the
// layer before it, `typename Spec::template bind<InputShape>`, and gets a concrete
// layer type. That bound type is what the `Layer` concept describes:
//
//   L::input_shape, L::output_shape      per-sample shapes (dynsparse::shape<...>);
//   L::describe()                        a short name for reports, e.g. "masked_dense<300>";
//   l.initialize(rng&)                   draws initial parameters;
//   l.forward(x, y, training)            x: batch x input_shape::size; the layer resizes y
//                                        to batch x output_shape::size and fills it;
//   l.backward(x, y, dy, dx)             called after forward with the same x and y; writes
//                                        the parameter gradients (overwriting, not adding)
//                                        and, unless dx is null, dL/dx into *dx;
//   l.for_each_parameter(f)              calls f(parameter) for each trainable tensor.
//
// The network owns x, y, dy and dx; a layer owns its parameters, their gradients and
// any scratch buffer, allocated once per batch size. A layer that has no parameters
// simply never calls f.
//
// A masked layer (MaskedLayer) adds the DST state: thresholds, the current mask's
// statistics and the reset rule.
#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "dynsparse/core/parallel.hpp"
#include "dynsparse/core/rng.hpp"
#include "dynsparse/core/shape.hpp"
#include "dynsparse/core/tensor.hpp"

namespace dynsparse {

enum class parameter_kind { weight, bias, threshold };

/// Readable values of the Bias argument of convolutions: `masked_conv2d<64, 3, 1, 1, S, G,
/// ds::no_bias>` (a convolution followed by batch norm needs no bias).
inline constexpr bool with_bias = true;
inline constexpr bool no_bias = false;

/// A view of one trainable tensor and its gradient, handed to optimizers.
///
/// `on_update` lets a layer derive data from fresh values while they are still in cache:
/// an optimizer that supports it reports, after changing value[begin, end), that range,
/// in whole multiples of `granule` elements, each element once per step (masked layers
/// recompute the mask of those rows there, saving a pass over W per step). Reports of
/// disjoint ranges may come from several threads at once (for_each_chunk). Optimizers
/// that ignore it stay correct: the layer then recomputes in its next forward pass.
///
/// Deferred gradients (optional, for optimizers declaring `completes_gradients = true`):
/// a masked layer may then leave its surrogate pass out of backward, so that one pass over
/// W per step does the surrogate gradients, the update and the next mask. Such an optimizer
/// calls complete(begin, end) before it reads gradient[begin, end), and updates a
/// threshold parameter marked `thresholds_per_row` together with the parameter listed
/// right after it (its weights): for each block of whole rows, complete the block (this
/// also finishes those rows' threshold gradients), update the rows' thresholds (value i
/// belongs to row i), then the rows' weights. The trainer asks for deferral only when its
/// optimizer declares that, so other optimizers always see complete gradients.
struct parameter {
    std::string_view name;
    parameter_kind kind;
    std::span<float> value;
    std::span<float> gradient;
    void (*on_update)(void* context, std::size_t begin, std::size_t end) = nullptr;
    void* context = nullptr;
    std::size_t granule = 1;
    void (*on_complete)(void* context, std::size_t begin, std::size_t end) = nullptr;
    bool thresholds_per_row = false;

    void updated(std::size_t begin, std::size_t end) const {
        if (on_update != nullptr) on_update(context, begin, end);
    }
    void complete(std::size_t begin, std::size_t end) const {
        if (on_complete != nullptr) on_complete(context, begin, end);
    }
};

/// Runs f(begin, end) over [0, n) in chunks of about `target` elements that are whole
/// multiples of the parameter's granule, then reports each chunk to the parameter.
/// Large parameters are shared out between the library's threads (parallel_for, runs of
/// whole chunks): f must only touch elements of its own range.
template <class F>
void for_each_chunk(const parameter& p, F&& f, std::size_t target = 4096) {
    const std::size_t n = p.value.size();
    const std::size_t g = p.granule == 0 ? 1 : p.granule;
    const std::size_t chunk = g * (target > g ? target / g : 1);
    const std::size_t chunks = (n + chunk - 1) / chunk;
    parallel_for(chunks, [&](std::size_t, std::size_t c0, std::size_t c1) {
        for (std::size_t c = c0; c < c1; ++c) {
            const std::size_t b = c * chunk, e = b + chunk < n ? b + chunk : n;
            f(b, e);
            p.updated(b, e);
        }
    }, parallel_grain_elements / chunk + 1);
}

namespace detail {
struct parameter_sink {
    void operator()(const parameter&) const {}
};

/// L::describe() as a plain function: what run-time tables of layers (describe(),
/// masked_layer_view, checkpoint_view) store for each layer type.
template <class L>
std::string describe_of() {
    return std::string(L::describe());
}
}  // namespace detail

template <class L>
concept Layer = requires(L& layer, const matrix& x, matrix& y, const matrix& dy, matrix* dx,
                         rng& gen, bool training) {
    requires Shape<typename L::input_shape>;
    requires Shape<typename L::output_shape>;
    { L::describe() } -> std::convertible_to<std::string>;
    layer.initialize(gen);
    layer.forward(x, y, training);
    layer.backward(x, y, dy, dx);
    layer.for_each_parameter(detail::parameter_sink{});
};

/// Sparsity statistics of one masked layer, as of its last forward pass.
struct mask_statistics {
    std::size_t kept = 0;       ///< ones in the mask
    std::size_t total = 0;      ///< elements of the mask
    std::size_t resets = 0;     ///< times the 1% reset rule fired since construction
    float threshold_mean = 0, threshold_min = 0, threshold_max = 0;
    double remaining() const { return total ? static_cast<double>(kept) / total : 1.0; }
};

template <class L>
concept MaskedLayer = Layer<L> && requires(L& layer, const L& cl, bool on) {
    { cl.statistics() } -> std::same_as<mask_statistics>;
    { layer.thresholds() } -> std::convertible_to<std::span<float>>;
    layer.set_reset_rule(on);
};

/// A layer spec: something `sequential` can bind to an input shape.
template <class Spec, class In>
concept LayerSpecFor = requires { typename Spec::template bind<In>; };

}  // namespace dynsparse
