#pragma once
// reshape<Dims...> and flatten: change the per-sample shape, never the data (activations
// are stored one row per sample, so both are copies of x into y and dy into dx).
#include <algorithm>
#include <string>

#include "dynsparse/layers/layer.hpp"

namespace dynsparse {

namespace detail {

template <class In, class Out>
class reshape_layer {
public:
    using input_shape = In;
    using output_shape = Out;
    static std::string describe() {
        std::string s = "reshape<";
        for (std::size_t i = 0; i < Out::rank; ++i)
            s += (i ? ", " : "") + std::to_string(Out::dims[i]);
        return s + ">";
    }
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

}  // namespace detail

template <std::size_t... Dims>
struct reshape {
    template <class In>
    struct binder {
        // The compiler's note "required from binder<shape<...>>" shows the input shape.
        static_assert(In::size == shape<Dims...>::size,
                      "reshape<...>: the new shape must hold exactly as many elements as the "
                      "input shape");
        using type = detail::reshape_layer<In, shape<Dims...>>;
    };
    template <class In>
    using bind = typename binder<In>::type;
};

/// Flattens any per-sample shape into a vector.
struct flatten {
    template <class In>
    using bind = detail::reshape_layer<In, shape<In::size>>;
};

}  // namespace dynsparse
