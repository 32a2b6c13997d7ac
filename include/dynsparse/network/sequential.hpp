#pragma once
// sequential<input<...>, Spec...>: a statically typed feed-forward network.
//
// Each spec is bound to the shape produced by the layer before it, so every
// intermediate shape is computed at compile time and an impossible network fails to
// compile at the line that spells it. Layers live in a std::tuple and are walked with
// fold expressions: no virtual calls, no type erasure.
//
//   struct lenet_300_100 : ds::sequential<ds::input<784>,
//       ds::masked_dense<300>, ds::relu, ds::masked_dense<100>, ds::relu,
//       ds::masked_dense<10>> {};
//
// forward(x, training) is the training pass (its values feed backward); predict,
// predict_proba and infer are const inference in evaluation mode, into buffers of their own.
#include <algorithm>
#include <array>
#include <cstddef>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "dynsparse/core/error.hpp"
#include "dynsparse/core/rng.hpp"
#include "dynsparse/core/shape.hpp"
#include "dynsparse/core/tensor.hpp"
#include "dynsparse/layers/layer.hpp"
#include "dynsparse/loss/softmax_cross_entropy.hpp"  // argmax_rows, softmax_rows

namespace dynsparse {

namespace detail {

template <class T>
struct is_input : std::false_type {};
template <std::size_t... D>
struct is_input<input<D...>> : std::true_type {};
template <std::size_t T, std::size_t F>
struct is_input<sequence_input<T, F>> : std::true_type {};

/// The input's shape, or a placeholder when the first element is not an input<...>
/// (the static_assert in sequential reports that; the placeholder avoids follow-on errors).
template <class Input>
struct input_shape_of {
    using type = shape<1>;
};
template <std::size_t... D>
struct input_shape_of<input<D...>> {
    using type = shape<D...>;
};
template <std::size_t T, std::size_t F>
struct input_shape_of<sequence_input<T, F>> {
    using type = sequence<T, F>;
};

/// Layers made of layers (residual blocks, chains) say so with `static constexpr bool
/// composite = true` and offer for_each_masked_layer / visit_state / masked_layer_count
/// themselves; sequential's walks descend into them.
template <class L>
concept CompositeLayer = requires { requires L::composite; };

/// One line of sequential::describe(): the layer's name and its output shape. The lines
/// are a constant table per network; formatting them is one ordinary function.
struct layer_line {
    std::string (*describe)();
    const std::size_t* dims;
    std::size_t rank;
};

inline void describe_lines(std::string& s, std::span<const layer_line> lines) {
    for (std::size_t i = 0; i < lines.size(); ++i) {
        s += "  [" + std::to_string(i) + "] " + lines[i].describe() + " -> (";
        for (std::size_t d = 0; d < lines[i].rank; ++d) {
            if (d > 0) s += ',';  // (not `(d ? "," : "") + ...`: GCC 12's false -Wrestrict)
            s += std::to_string(lines[i].dims[d]);
        }
        s += ")\n";
    }
}

template <class In, class... Specs>
struct bind_chain {
    using layers = std::tuple<>;
    using output_shape = In;
};

template <class In, class Spec, class... Rest>
struct bind_chain<In, Spec, Rest...> {
    static_assert(LayerSpecFor<Spec, In>,
                  "sequential<...>: every element after input<...> must be a layer spec "
                  "(a type with `template <class In> using bind = ...`, e.g. masked_dense<300>)");
    using layer = typename Spec::template bind<In>;
    static_assert(Layer<layer>, "sequential<...>: a spec bound to a layer type that does not "
                                "satisfy dynsparse::Layer");
    using next = bind_chain<typename layer::output_shape, Rest...>;
    using layers = decltype(std::tuple_cat(std::declval<std::tuple<layer>>(),
                                           std::declval<typename next::layers>()));
    using output_shape = typename next::output_shape;
};

}  // namespace detail

template <class Input, class... Specs>
class sequential {
    static_assert(detail::is_input<Input>::value,
                  "sequential<...>: the first element must be dynsparse::input<dims...> (or "
                  "dynsparse::sequence_input<steps, features>)");
    static_assert(sizeof...(Specs) > 0, "sequential<...>: a network needs at least one layer");
    using chain = detail::bind_chain<typename detail::input_shape_of<Input>::type, Specs...>;

public:
    using layers_type = typename chain::layers;
    using input_shape = typename detail::input_shape_of<Input>::type;
    using output_shape = typename chain::output_shape;
    static constexpr std::size_t layer_count = sizeof...(Specs);

    template <std::size_t I>
    using layer_type = std::tuple_element_t<I, layers_type>;

    /// Draws every layer's initial parameters from one seeded generator, in layer order.
    void initialize(std::uint64_t seed) {
        rng gen(seed);
        initialize(gen);
    }
    /// The same, drawing from a given generator (a network nested in a layer).
    void initialize(rng& gen) {
        for_each_layer([&](auto& layer, std::size_t) { layer.initialize(gen); });
    }

    /// Runs the network on a batch (batch x input_shape::size) and returns the output
    /// (batch x output_shape::size). The input must stay alive until backward().
    const matrix& forward(const matrix& x, bool training) {
        check_input(x, "forward");
        input_ = &x;
        forward_all(std::make_index_sequence<layer_count>{}, training);
        return outputs_[layer_count - 1];
    }

    /// Inference on a batch (batch x input_shape::size): the outputs (logits, batch x
    /// output_shape::size) in evaluation mode (dropout off, batch norm on its running
    /// statistics), into buffers of its own. Changes nothing a user can observe: parameters,
    /// masks and their statistics, reset counts, running statistics, generators and
    /// output_of() stay as they were (masked layers recompute their mask from W and t; only
    /// the update pass applies the reset rule). The layers' scratch values for backward are
    /// overwritten, so do not call it between forward(x, true) and backward; nor from two
    /// threads on one network at once. The result lives until the next inference call.
    const matrix& infer(const matrix& x) const {
        check_input(x, "infer");
        infer_all(std::make_index_sequence<layer_count>{}, x);
        return infer_outputs_[layer_count - 1];
    }
    /// Class probabilities (softmax of infer's outputs), one row per sample.
    matrix predict_proba(const matrix& x) const { return softmax_rows(infer(x)); }
    /// Predicted classes (the largest output; ties go to the lowest index), one per sample.
    std::vector<std::size_t> predict(const matrix& x) const { return argmax_rows(infer(x)); }
    /// The same for one sample of input_shape::size features.
    std::size_t predict(std::span<const float> sample) const { return predict(one_row(sample))[0]; }
    std::vector<float> predict_proba(std::span<const float> sample) const {
        const matrix p = predict_proba(one_row(sample));
        return {p.data(), p.data() + p.size()};
    }

    /// Back-propagates dL/d(output) through every layer, filling parameter gradients.
    /// dL/d(input) is computed only when d_input is given (a network nested in a layer).
    void backward(const matrix& d_output, matrix* d_input = nullptr) {
        if (input_ == nullptr) throw invalid_argument("sequential::backward called before forward");
        d_input_ = d_input;
        backward_all(std::make_index_sequence<layer_count>{}, d_output);
    }

    /// f(layer, index) for each layer, in order.
    template <class F>
    void for_each_layer(F&& f) {
        for_each_layer_impl(f, std::make_index_sequence<layer_count>{});
    }
    template <class F>
    void for_each_layer(F&& f) const {
        for_each_layer_impl(f, std::make_index_sequence<layer_count>{});
    }

    /// f(layer, index) for each layer that satisfies MaskedLayer, including those inside
    /// composite layers (residual blocks), which get the index of their enclosing layer.
    template <class F>
    void for_each_masked_layer(F&& f) {
        for_each_layer([&](auto& layer, std::size_t i) {
            using L = std::remove_cvref_t<decltype(layer)>;
            if constexpr (MaskedLayer<L>)
                f(layer, i);
            else if constexpr (detail::CompositeLayer<L>)
                layer.for_each_masked_layer([&](auto& inner, std::size_t) { f(inner, i); });
        });
    }
    template <class F>
    void for_each_masked_layer(F&& f) const {
        for_each_layer([&](const auto& layer, std::size_t i) {
            using L = std::remove_cvref_t<decltype(layer)>;
            if constexpr (MaskedLayer<L>)
                f(layer, i);
            else if constexpr (detail::CompositeLayer<L>)
                layer.for_each_masked_layer([&](const auto& inner, std::size_t) { f(inner, i); });
        });
    }

    /// State protocol (io/checkpoint.hpp): v(name, field) for every layer's state beyond
    /// its trainable tensors (reset counts, batch norm's running statistics, dropout's
    /// generator), layer by layer, descending into composite layers.
    template <class V>
    void visit_state(V&& v) {
        for_each_layer([&](auto& layer, std::size_t) {
            if constexpr (requires { layer.visit_state(v); }) layer.visit_state(v);
        });
    }

    /// f(parameter) for every trainable tensor, layer by layer.
    template <class F>
    void for_each_parameter(F&& f) {
        for_each_layer([&](auto& layer, std::size_t) { layer.for_each_parameter(f); });
    }

    template <std::size_t I>
    auto& get() {
        return std::get<I>(layers_);
    }
    template <std::size_t I>
    const auto& get() const {
        return std::as_const(std::get<I>(layers_));
    }

    static constexpr std::size_t masked_layer_count() {
        return count_masked(std::make_index_sequence<layer_count>{});
    }

    /// One line per layer: index, name and output shape.
    static std::string describe() {
        std::string s;
        describe_impl(s, std::make_index_sequence<layer_count>{});
        return s;
    }

    /// The layers' names, comma-separated, on one line.
    static std::string describe_inline() {
        std::string s;
        inline_impl(s, std::make_index_sequence<layer_count>{});
        return s;
    }

    /// The output of layer I from the last forward pass.
    const matrix& output_of(std::size_t i) const { return outputs_[i]; }

private:
    static void check_input(const matrix& x, const char* what) {
        if (x.dimension() != 2 || x.shape(1) != input_shape::size)
            throw invalid_argument(std::string("sequential::") + what + ": expected a batch x " +
                                   std::to_string(input_shape::size) + " input, got " +
                                   std::to_string(x.shape(0)) + " x " +
                                   std::to_string(x.dimension() == 2 ? x.shape(1) : x.size()));
    }

    static matrix one_row(std::span<const float> sample) {
        if (sample.size() != input_shape::size)
            throw invalid_argument("sequential::predict: a sample of " + std::to_string(sample.size()) +
                                   " values, the network's input takes " + std::to_string(input_shape::size));
        matrix x = make_matrix(1, input_shape::size);
        std::copy(sample.begin(), sample.end(), x.data());
        return x;
    }

    template <std::size_t... Is>
    void infer_all(std::index_sequence<Is...>, const matrix& x) const {
        (std::get<Is>(layers_).forward(Is == 0 ? x : infer_outputs_[Is == 0 ? 0 : Is - 1], infer_outputs_[Is],
                                       false),
         ...);
    }

    template <std::size_t... Is>
    void forward_all(std::index_sequence<Is...>, bool training) {
        (std::get<Is>(layers_).forward(Is == 0 ? *input_ : outputs_[Is == 0 ? 0 : Is - 1],
                                       outputs_[Is], training),
         ...);
    }

    template <std::size_t I>
    void backward_one(const matrix& d_output) {
        const matrix& x = I == 0 ? *input_ : outputs_[I == 0 ? 0 : I - 1];
        const matrix& dy = I + 1 == layer_count ? d_output : grads_[I];
        matrix* dx = I == 0 ? d_input_ : &grads_[I == 0 ? 0 : I - 1];
        std::get<I>(layers_).backward(x, outputs_[I], dy, dx);
    }

    template <std::size_t... Is>
    void backward_all(std::index_sequence<Is...>, const matrix& d_output) {
        (backward_one<layer_count - 1 - Is>(d_output), ...);
    }

    template <class F, std::size_t... Is>
    void for_each_layer_impl(F& f, std::index_sequence<Is...>) {
        (f(std::get<Is>(layers_), Is), ...);
    }
    template <class F, std::size_t... Is>
    void for_each_layer_impl(F& f, std::index_sequence<Is...>) const {
        (f(std::as_const(std::get<Is>(layers_)), Is), ...);
    }

    template <class L>
    static constexpr std::size_t masked_in() {
        if constexpr (MaskedLayer<L>)
            return 1;
        else if constexpr (detail::CompositeLayer<L>)
            return L::masked_layer_count();
        else
            return 0;
    }
    template <std::size_t... Is>
    static constexpr std::size_t count_masked(std::index_sequence<Is...>) {
        return (masked_in<layer_type<Is>>() + ...);
    }

    template <std::size_t... Is>
    static void describe_impl(std::string& s, std::index_sequence<Is...>) {
        static constexpr detail::layer_line lines[] = {
            {&detail::describe_of<layer_type<Is>>, layer_type<Is>::output_shape::dims.data(),
             layer_type<Is>::output_shape::rank}...};
        detail::describe_lines(s, lines);
    }

    template <std::size_t... Is>
    static void inline_impl(std::string& s, std::index_sequence<Is...>) {
        static constexpr std::string (*names[])() = {&detail::describe_of<layer_type<Is>>...};
        for (std::size_t i = 0; i < layer_count; ++i) {
            if (i > 0) s += ", ";
            s += names[i]();
        }
    }

    // mutable for infer(): a layer's forward in evaluation mode changes only its scratch
    // values (the const walks above hand out const layers).
    mutable layers_type layers_;
    mutable std::array<matrix, layer_count> infer_outputs_;
    std::array<matrix, layer_count> outputs_;
    std::array<matrix, layer_count> grads_;  // grads_[i] = dL/d(output of layer i), i < last
    const matrix* input_ = nullptr;
    matrix* d_input_ = nullptr;
};

/// A network: a sequence of layers from an input shape to an output shape, trained by
/// forward(x, training) -> output, backward(dL/doutput), and for_each_parameter(f).
template <class N>
concept Network = requires(N& net, const matrix& x, bool training) {
    requires Shape<typename N::input_shape>;
    requires Shape<typename N::output_shape>;
    { net.forward(x, training) } -> std::same_as<const matrix&>;
    net.backward(x);
    net.for_each_parameter(detail::parameter_sink{});
    net.initialize(std::uint64_t{0});
    { N::describe() } -> std::convertible_to<std::string>;
};

}  // namespace dynsparse
