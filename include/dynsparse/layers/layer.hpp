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

#include "dynsparse/core/parameter.hpp"
#include "dynsparse/core/rng.hpp"
#include "dynsparse/core/shape.hpp"
#include "dynsparse/core/tensor.hpp"

namespace dynsparse {

/// Readable values of the Bias argument of convolutions: `masked_conv2d<64, 3, 1, 1, S, G,
/// ds::no_bias>` (a convolution followed by batch norm needs no bias).
inline constexpr bool with_bias = true;
inline constexpr bool no_bias = false;

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
    std::size_t resets = 0;     ///< times the reset rule fired since construction
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
