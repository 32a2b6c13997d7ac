#pragma once
// Residual blocks as types.
//
//   chain<Specs...>               a layer made of layers: Specs bound one after the other
//                                 (a sequential without input<...>, usable inside a network)
//   identity                      y = x
//   residual<Body, Shortcut>      y = body(x) + shortcut(x); Body is a chain<...> (or any
//                                 spec), Shortcut is identity (default) or any spec, e.g. a
//                                 masked 1x1 convolution with the body's channels and stride.
//
// Shapes are checked at compile time: the body's and the shortcut's outputs must agree.
// A pre-activation basic block (WideResNet) whose channels change:
//
//   chain<batch_norm, relu,
//         residual<chain<masked_conv2d<C, 3, S, 1, ...>, batch_norm, relu,
//                        masked_conv2d<C, 3, 1, 1, ...>>,
//                  masked_conv2d<C, 1, S, 0, ...>>>
//
// Composite layers walk their inner layers for the network: parameters, masked layers
// (statistics, reset rule), state (visit_state: reset counts, running statistics,
// generators) and initialisation, in order.
#include <algorithm>
#include <string>
#include <type_traits>

#include "dynsparse/core/parallel.hpp"
#include "dynsparse/core/shape.hpp"
#include "dynsparse/core/tensor.hpp"
#include "dynsparse/layers/layer.hpp"
#include "dynsparse/network/sequential.hpp"

namespace dynsparse {

namespace detail {

template <class Sh>
struct input_for;
template <std::size_t... D>
struct input_for<shape<D...>> {
    using type = input<D...>;
};

/// The network of a chain bound to In.
template <class In, class... Specs>
using chain_network = sequential<typename input_for<In>::type, Specs...>;

template <class L>
constexpr std::size_t masked_count_of() {
    if constexpr (MaskedLayer<L>)
        return 1;
    else if constexpr (CompositeLayer<L>)
        return L::masked_layer_count();
    else
        return 0;
}

}  // namespace detail

template <class In, class... Specs>
class chain_layer {
    using network = detail::chain_network<In, Specs...>;

public:
    static constexpr bool composite = true;
    using input_shape = In;
    using output_shape = typename network::output_shape;
    static std::string describe() { return "chain(" + network::describe_inline() + ")"; }
    static constexpr std::size_t masked_layer_count() { return network::masked_layer_count(); }

    void initialize(rng& gen) { net_.initialize(gen); }
    void forward(const matrix& x, matrix& y, bool training) {
        const matrix& out = net_.forward(x, training);
        ensure_shape(y, out.shape(0), out.shape(1));
        std::copy(out.begin(), out.end(), y.begin());
    }
    void backward(const matrix& /*x*/, const matrix& /*y*/, const matrix& dy, matrix* dx) {
        net_.backward(dy, dx);
    }
    template <class F>
    void for_each_parameter(F&& f) {
        net_.for_each_parameter(f);
    }
    template <class F>
    void for_each_masked_layer(F&& f) {
        net_.for_each_masked_layer(f);
    }
    template <class F>
    void for_each_masked_layer(F&& f) const {
        net_.for_each_masked_layer(f);
    }
    template <class V>
    void visit_state(V&& v) {
        net_.visit_state(v);
    }
    network& layers() { return net_; }
    const network& layers() const { return net_; }

private:
    network net_;
};

/// Spec: the layers Specs... in a row, as one layer.
template <class... Specs>
struct chain {
    static_assert(sizeof...(Specs) > 0, "chain<...>: give at least one layer");
    template <class In>
    using bind = chain_layer<In, Specs...>;
};

template <class In>
class identity_layer {
public:
    using input_shape = In;
    using output_shape = In;
    static std::string describe() { return "identity"; }
    void initialize(rng&) {}
    void forward(const matrix& x, matrix& y, bool) {
        ensure_shape(y, x.shape(0), x.shape(1));
        std::copy(x.begin(), x.end(), y.begin());
    }
    void backward(const matrix&, const matrix&, const matrix& dy, matrix* dx) {
        if (dx == nullptr) return;
        ensure_shape(*dx, dy.shape(0), dy.shape(1));
        std::copy(dy.begin(), dy.end(), dx->begin());
    }
    template <class F>
    void for_each_parameter(F&&) {}
};

/// Spec: y = x (the shortcut of a residual block whose shape does not change).
struct identity {
    template <class In>
    using bind = identity_layer<In>;
};

namespace detail {
template <class Spec, class In>
struct body_network {  // any spec: a one-layer network
    using type = chain_network<In, Spec>;
};
template <class... Specs, class In>
struct body_network<chain<Specs...>, In> {  // a chain's layers, without the copy of chain_layer
    using type = chain_network<In, Specs...>;
};
}  // namespace detail

template <class In, class Body, class Shortcut>
class residual_layer {
    using body_type = typename detail::body_network<Body, In>::type;
    static constexpr bool identity_shortcut = std::is_same_v<Shortcut, identity>;
    using shortcut_type = typename Shortcut::template bind<In>;
    static_assert(std::is_same_v<typename body_type::output_shape, typename shortcut_type::output_shape>,
                  "residual<Body, Shortcut>: the body's output shape differs from the shortcut's; "
                  "when the body changes channels or stride, use a shortcut with the same output, "
                  "e.g. masked_conv2d<C_out, 1, Stride> (identity only keeps the input shape)");

public:
    static constexpr bool composite = true;
    using input_shape = In;
    using output_shape = typename body_type::output_shape;
    static std::string describe() {
        return "residual(" + body_type::describe_inline() + " + " + shortcut_type::describe() + ")";
    }
    static constexpr std::size_t masked_layer_count() {
        return body_type::masked_layer_count() + detail::masked_count_of<shortcut_type>();
    }

    void initialize(rng& gen) {
        body_.initialize(gen);
        shortcut_.initialize(gen);
    }

    void forward(const matrix& x, matrix& y, bool training) {
        const matrix& b = body_.forward(x, training);
        ensure_shape(y, b.shape(0), b.shape(1));
        const matrix* s = &x;
        if constexpr (!identity_shortcut) {
            shortcut_.forward(x, shortcut_out_, training);
            s = &shortcut_out_;
        }
        const float* bp = b.data();
        const float* sp = s->data();
        float* yp = y.data();
        parallel_for(y.size(), [&](std::size_t, std::size_t lo, std::size_t hi) {
            for (std::size_t i = lo; i < hi; ++i) yp[i] = bp[i] + sp[i];
        }, parallel_grain_elements);
    }

    /// dL/d(body output) = dL/d(shortcut output) = dy; dx is the sum of both paths.
    void backward(const matrix& x, const matrix& /*y*/, const matrix& dy, matrix* dx) {
        body_.backward(dy, dx);
        const matrix* s = &dy;
        if constexpr (!identity_shortcut) {
            shortcut_.backward(x, shortcut_out_, dy, dx != nullptr ? &shortcut_dx_ : nullptr);
            s = &shortcut_dx_;
        }
        if (dx == nullptr) return;
        const float* sp = s->data();
        float* dp = dx->data();
        parallel_for(dx->size(), [&](std::size_t, std::size_t lo, std::size_t hi) {
            for (std::size_t i = lo; i < hi; ++i) dp[i] += sp[i];
        }, parallel_grain_elements);
    }

    template <class F>
    void for_each_parameter(F&& f) {
        body_.for_each_parameter(f);
        shortcut_.for_each_parameter(f);
    }
    template <class F>
    void for_each_masked_layer(F&& f) {
        body_.for_each_masked_layer(f);
        visit_shortcut(shortcut_, f);
    }
    template <class F>
    void for_each_masked_layer(F&& f) const {
        body_.for_each_masked_layer(f);
        visit_shortcut(shortcut_, f);
    }
    /// State protocol: the body's layers' state, then the shortcut's.
    template <class V>
    void visit_state(V&& v) {
        body_.visit_state(v);
        if constexpr (requires { shortcut_.visit_state(v); }) shortcut_.visit_state(v);
    }

    body_type& body() { return body_; }
    shortcut_type& shortcut() { return shortcut_; }

private:
    template <class S, class F>
    static void visit_shortcut(S& s, F& f) {
        using L = std::remove_cvref_t<S>;
        if constexpr (MaskedLayer<L>)
            f(s, std::size_t{0});
        else if constexpr (detail::CompositeLayer<L>)
            s.for_each_masked_layer(f);
    }

    body_type body_;
    shortcut_type shortcut_;
    matrix shortcut_out_, shortcut_dx_;
};

/// Spec: y = body(x) + shortcut(x).
template <class Body, class Shortcut = identity>
struct residual {
    template <class In>
    struct binder {
        static_assert(LayerSpecFor<Body, In>, "residual<Body, Shortcut>: Body must be a layer spec, "
                                              "e.g. chain<masked_conv2d<16, 3, 1, 1>, batch_norm, relu>");
        static_assert(LayerSpecFor<Shortcut, In>,
                      "residual<Body, Shortcut>: Shortcut must be a layer spec (identity, or a 1x1 "
                      "convolution)");
        using type = residual_layer<In, Body, Shortcut>;
    };
    template <class In>
    using bind = typename binder<In>::type;
};

}  // namespace dynsparse
