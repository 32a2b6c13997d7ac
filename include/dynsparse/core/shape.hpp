#pragma once
// Compile-time per-sample shapes.
#include <array>
#include <cstddef>

namespace dynsparse {

/// The shape of one sample, e.g. `shape<784>` (a vector) or `shape<1, 28, 28>` (C,H,W).
template <std::size_t... Dims>
struct shape {
    static_assert(sizeof...(Dims) > 0, "a shape needs at least one dimension");
    static_assert(((Dims > 0) && ...), "every dimension of a shape must be positive");
    static constexpr std::size_t rank = sizeof...(Dims);
    static constexpr std::size_t size = (Dims * ...);
    static constexpr std::array<std::size_t, rank> dims{Dims...};
};

namespace detail {
template <class T>
struct is_shape : std::false_type {};
template <std::size_t... D>
struct is_shape<shape<D...>> : std::true_type {};
}  // namespace detail

template <class T>
concept Shape = detail::is_shape<T>::value;

/// The first element of every network: the shape of one input sample.
template <std::size_t... Dims>
struct input {
    using shape_type = shape<Dims...>;
};

}  // namespace dynsparse
