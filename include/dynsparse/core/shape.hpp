#pragma once
// Compile-time per-sample shapes.
#include <array>
#include <cstddef>
#include <type_traits>

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

/// The per-sample shape of a sequence: Steps time steps of Features values each, stored
/// step after step (row-major (T, F)). A distinct type from shape<T, F> so that layers
/// can tell a sequence from other data: recurrent layers read and write sequences,
/// dense layers refuse them (put last_step or flatten in between).
template <std::size_t Steps, std::size_t Features>
struct sequence {
    static_assert(Steps > 0, "sequence<Steps, Features>: Steps must be positive");
    static_assert(Features > 0, "sequence<Steps, Features>: Features must be positive");
    static constexpr std::size_t steps = Steps;
    static constexpr std::size_t features = Features;
    static constexpr std::size_t rank = 2;
    static constexpr std::size_t size = Steps * Features;
    static constexpr std::array<std::size_t, rank> dims{Steps, Features};
};

namespace detail {
template <std::size_t T, std::size_t F>
struct is_shape<sequence<T, F>> : std::true_type {};
template <class T>
struct is_sequence : std::false_type {};
template <std::size_t T, std::size_t F>
struct is_sequence<sequence<T, F>> : std::true_type {};
}  // namespace detail

template <class T>
concept Shape = detail::is_shape<T>::value;

template <class T>
concept SequenceShape = detail::is_sequence<T>::value;

/// The first element of every network: the shape of one input sample.
template <std::size_t... Dims>
struct input {
    using shape_type = shape<Dims...>;
};

/// The first element of a recurrent network: each sample is a sequence of Steps time
/// steps of Features values (an MNIST image read row by row is sequence_input<28, 28>).
template <std::size_t Steps, std::size_t Features>
struct sequence_input {
    using shape_type = sequence<Steps, Features>;
};

}  // namespace dynsparse
