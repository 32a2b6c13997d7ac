#pragma once
// max_pool2d<K, Stride> and avg_pool2d<K, Stride>: K x K pooling over (C, H, W) samples,
// no padding, output size floor((H - K) / Stride) + 1 as in PyTorch.
// Max pooling remembers the winning input of every output in forward (the first
// maximum, as PyTorch) and routes dy there in backward.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "dynsparse/core/parallel.hpp"
#include "dynsparse/core/shape.hpp"
#include "dynsparse/layers/conv2d.hpp"
#include "dynsparse/layers/layer.hpp"

namespace dynsparse {

namespace detail {

template <class In, std::size_t K, std::size_t S, bool Max>
class pool2d_layer {
    using geo = window_shape<In, K, S, 0>;
    static constexpr std::size_t C = geo::channels, H = geo::height, W = geo::width;
    static constexpr std::size_t OH = geo::out_height, OW = geo::out_width;
    static constexpr std::size_t in_size = C * H * W, out_size = C * OH * OW;
    // Non-overlapping windows that cover the whole input (LeNet's 2x2 pooling).
    static constexpr bool tiled = S == K && H == OH * K && W == OW * K;

public:
    using input_shape = In;
    using output_shape = shape<C, OH, OW>;
    static std::string describe() {
        return std::string(Max ? "max_pool2d<" : "avg_pool2d<") + std::to_string(K) +
               (S != K ? ", " + std::to_string(S) : std::string()) + ">";
    }

    void initialize(rng&) {}

    void forward(const matrix& x, matrix& y, bool /*training*/) {
        const std::size_t batch = x.shape(0);
        ensure_shape(y, batch, out_size);
        if constexpr (Max) argmax_.resize(batch * out_size);
        parallel_for(batch, [&](std::size_t, std::size_t lo, std::size_t hi) { forward_rows(x, y, lo, hi); });
    }

    void backward(const matrix& /*x*/, const matrix& /*y*/, const matrix& dy, matrix* dx) {
        if (dx == nullptr) return;
        ensure_shape(*dx, dy.shape(0), in_size);
        parallel_for(dy.shape(0), [&](std::size_t, std::size_t lo, std::size_t hi) { backward_rows(dy, *dx, lo, hi); });
    }

    template <class F>
    void for_each_parameter(F&&) {}

private:
    void forward_rows(const matrix& x, matrix& y, std::size_t lo, std::size_t hi) {
        for (std::size_t r = lo; r < hi; ++r)
            for (std::size_t c = 0; c < C; ++c) {
                const float* xc = x.data() + r * in_size + c * H * W;
                float* yc = y.data() + r * out_size + c * OH * OW;
                for (std::size_t oy = 0; oy < OH; ++oy) {
                    // One output row at a time, the window offsets (i, j) outermost, so the
                    // inner loop runs along the row with selects and vectorises.
                    float* __restrict yr = yc + oy * OW;
                    const float* __restrict xr = xc + oy * S * W;
                    if constexpr (Max) {
                        // Local row buffers (compile-time length) stay in registers.
                        float best[OW];
                        std::uint32_t at[OW];
                        const auto base = static_cast<std::uint32_t>(c * H * W + oy * S * W);
                        for (std::size_t ox = 0; ox < OW; ++ox) {
                            best[ox] = xr[ox * S];
                            at[ox] = base + static_cast<std::uint32_t>(ox * S);
                        }
                        for (std::size_t i = 0; i < K; ++i)
                            for (std::size_t j = 0; j < K; ++j) {
                                if (i == 0 && j == 0) continue;
                                const float* __restrict xw = xr + i * W + j;
                                const auto off = base + static_cast<std::uint32_t>(i * W + j);
                                for (std::size_t ox = 0; ox < OW; ++ox) {
                                    // Branch-free (a scalar select here compiles to a
                                    // branch, mispredicted half the time): the first
                                    // maximum wins.
                                    const float v = xw[ox * S];
                                    const std::uint32_t m = 0u - static_cast<std::uint32_t>(v > best[ox]);
                                    best[ox] = std::max(best[ox], v);
                                    at[ox] = (at[ox] & ~m) | ((off + static_cast<std::uint32_t>(ox * S)) & m);
                                }
                            }
                        std::uint32_t* __restrict ar = argmax_.data() + r * out_size + c * OH * OW + oy * OW;
                        for (std::size_t ox = 0; ox < OW; ++ox) {
                            yr[ox] = best[ox];
                            ar[ox] = at[ox];
                        }
                    } else {
                        for (std::size_t ox = 0; ox < OW; ++ox) yr[ox] = 0.0f;
                        for (std::size_t i = 0; i < K; ++i)
                            for (std::size_t j = 0; j < K; ++j) {
                                const float* __restrict xw = xr + i * W + j;
                                for (std::size_t ox = 0; ox < OW; ++ox) yr[ox] += xw[ox * S];
                            }
                        for (std::size_t ox = 0; ox < OW; ++ox) yr[ox] *= 1.0f / static_cast<float>(K * K);
                    }
                }
            }
    }

    void backward_rows(const matrix& dy, matrix& dx, std::size_t lo, std::size_t hi) {
        if constexpr (!(Max && tiled)) std::fill(dx.data() + lo * in_size, dx.data() + hi * in_size, 0.0f);
        for (std::size_t r = lo; r < hi; ++r) {
            const float* d = dy.data() + r * out_size;
            float* g = dx.data() + r * in_size;
            if constexpr (Max && tiled) {
                // Windows tile the input: every input gets dy or 0 from its one window.
                const std::uint32_t* a = argmax_.data() + r * out_size;
                for (std::size_t c = 0; c < C; ++c)
                    for (std::size_t oy = 0; oy < OH; ++oy)
                        for (std::size_t i = 0; i < K; ++i) {
                            const std::size_t row = c * H * W + (oy * K + i) * W;
                            for (std::size_t ox = 0; ox < OW; ++ox) {
                                const std::size_t k = (c * OH + oy) * OW + ox;
                                for (std::size_t j = 0; j < K; ++j) {
                                    const std::size_t at = row + ox * K + j;
                                    // multiply, not select: a scalar select branches
                                    g[at] = static_cast<float>(a[k] == at) * d[k];
                                }
                            }
                        }
            } else if constexpr (Max) {
                const std::uint32_t* a = argmax_.data() + r * out_size;
                for (std::size_t k = 0; k < out_size; ++k) g[a[k]] += d[k];
            } else {
                const float scale = 1.0f / static_cast<float>(K * K);
                for (std::size_t c = 0; c < C; ++c)
                    for (std::size_t oy = 0; oy < OH; ++oy)
                        for (std::size_t ox = 0; ox < OW; ++ox) {
                            const float v = d[(c * OH + oy) * OW + ox] * scale;
                            float* win = g + c * H * W + oy * S * W + ox * S;
                            for (std::size_t i = 0; i < K; ++i)
                                for (std::size_t j = 0; j < K; ++j) win[i * W + j] += v;
                        }
            }
        }
    }

    std::vector<std::uint32_t> argmax_;  // per output: index of its input within the sample
};

template <std::size_t K, std::size_t Stride, bool Max>
struct pool2d_spec {
    static_assert(K > 0, "pooling: the window K must be positive");
    static_assert(Stride > 0, "pooling: the stride must be positive");
    template <class In>
    using bind = pool2d_layer<In, K, Stride, Max>;
};

}  // namespace detail

/// Spec: K x K max pooling (stride K by default).
template <std::size_t K, std::size_t Stride = K>
struct max_pool2d : detail::pool2d_spec<K, Stride, true> {};

/// Spec: K x K average pooling (stride K by default).
template <std::size_t K, std::size_t Stride = K>
struct avg_pool2d : detail::pool2d_spec<K, Stride, false> {};

}  // namespace dynsparse

namespace dynsparse {

/// global_avg_pool: (C, H, W) -> (C), the mean of each channel's map.
template <class In>
class global_avg_pool_layer {
    static_assert(In::rank == 3, "global_avg_pool takes a (C, H, W) input");
    static constexpr std::size_t C = In::dims[0], HW = In::size / In::dims[0];

public:
    using input_shape = In;
    using output_shape = shape<C>;
    static std::string describe() { return "global_avg_pool"; }
    void initialize(rng&) {}

    void forward(const matrix& x, matrix& y, bool /*training*/) {
        const std::size_t batch = x.shape(0);
        ensure_shape(y, batch, C);
        for (std::size_t r = 0; r < batch; ++r)
            for (std::size_t c = 0; c < C; ++c) {
                const float* v = x.data() + r * In::size + c * HW;
                float s = 0.0f;
                for (std::size_t p = 0; p < HW; ++p) s += v[p];
                y(r, c) = s * (1.0f / static_cast<float>(HW));
            }
    }

    void backward(const matrix& /*x*/, const matrix& /*y*/, const matrix& dy, matrix* dx) {
        if (dx == nullptr) return;
        const std::size_t batch = dy.shape(0);
        ensure_shape(*dx, batch, In::size);
        for (std::size_t r = 0; r < batch; ++r)
            for (std::size_t c = 0; c < C; ++c) {
                const float v = dy(r, c) * (1.0f / static_cast<float>(HW));
                float* out = dx->data() + r * In::size + c * HW;
                std::fill(out, out + HW, v);
            }
    }

    template <class F>
    void for_each_parameter(F&&) {}
};

/// Spec: average over each channel's whole map.
struct global_avg_pool {
    template <class In>
    struct binder {
        static_assert(In::rank == 3, "global_avg_pool takes a (C, H, W) input");
        using type = global_avg_pool_layer<In>;
    };
    template <class In>
    using bind = typename binder<In>::type;
};

}  // namespace dynsparse
