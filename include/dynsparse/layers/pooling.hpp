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
#include "dynsparse/core/select.hpp"
#include "dynsparse/core/shape.hpp"
#include "dynsparse/detail/reduce.hpp"
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
    // Tiled 2x2 max pooling (LeNet-5, VGG) has its own vectorised kernels, see max2x2_forward.
    static constexpr bool max2x2 = Max && tiled && K == 2;

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
        if constexpr (max2x2) {
            winner_.resize(batch * out_size);
            pair_scratch(batch);
            parallel_for(batch, [&](std::size_t chunk, std::size_t lo, std::size_t hi) {
                max2x2_forward(x, y, pairs_.data() + chunk * 2 * pair_count, lo, hi);
            });
            return;
        }
        if constexpr (Max) argmax_.resize(batch * out_size);
        parallel_for(batch, [&](std::size_t, std::size_t lo, std::size_t hi) { forward_rows(x, y, lo, hi); });
    }

    void backward(const matrix& /*x*/, const matrix& /*y*/, const matrix& dy, matrix* dx) {
        if (dx == nullptr) return;
        ensure_shape(*dx, dy.shape(0), in_size);
        if constexpr (max2x2) {
            pair_scratch(dy.shape(0));
            parallel_for(dy.shape(0), [&](std::size_t chunk, std::size_t lo, std::size_t hi) {
                max2x2_backward(dy, *dx, pairs_.data() + chunk * 2 * pair_count, lo, hi);
            });
        } else
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

    // Tiled 2x2 max pooling in two passes per sample, each a loop that vectorises (the
    // general loops above run scalar on LeNet's 12-wide rows: 4x slower). Forward: the
    // maximum of each horizontal pair of inputs (one flat loop: pairs are adjacent floats),
    // then per output row the larger of the two pair maxima above each other. Ties go to
    // the left, then to the upper pair: the first maximum in row-major order wins, as in
    // the general path and PyTorch. The winner of each window is kept as a float code
    // 2 * row + column (floats, so the backward pass compares without conversions).
    // Backward mirrors it: per output row, dy into the upper or lower pair, then one flat
    // loop writes each pair's two inputs. `pairs_` is each chunk's scratch for the pass
    // between.
    static constexpr std::size_t pair_count = C * H * OW;  // horizontal input pairs per sample

    void pair_scratch(std::size_t batch) { pairs_.resize(parallel_chunks(batch) * 2 * pair_count); }

    void max2x2_forward(const matrix& x, matrix& y, float* scratch, std::size_t lo, std::size_t hi) {
        float* __restrict pmax = scratch;
        float* __restrict pright = scratch + pair_count;  // 1 where the right input won
        for (std::size_t r = lo; r < hi; ++r) {
            const float* __restrict xs = x.data() + r * in_size;
            for (std::size_t p = 0; p < pair_count; ++p) {
                const float a = xs[2 * p], b = xs[2 * p + 1];
                pmax[p] = std::max(a, b);
                pright[p] = select(b > a, 1.0f, 0.0f);
            }
            float* __restrict ys = y.data() + r * out_size;
            float* __restrict ws = winner_.data() + r * out_size;
            for (std::size_t row = 0; row < C * OH; ++row) {
                const float* __restrict top = pmax + 2 * row * OW;
                const float* __restrict bottom = top + OW;
                const float* __restrict top_right = pright + 2 * row * OW;
                const float* __restrict bottom_right = top_right + OW;
                // Not unrolled: fully unrolled (OW is a constant) the loop is not vectorised.
#pragma GCC unroll 1
                for (std::size_t ox = 0; ox < OW; ++ox) {
                    const bool lower = bottom[ox] > top[ox];
                    ys[row * OW + ox] = select(lower, bottom[ox], top[ox]);
                    ws[row * OW + ox] = select(lower, 2.0f + bottom_right[ox], top_right[ox]);
                }
            }
        }
    }

    void max2x2_backward(const matrix& dy, matrix& dx, float* scratch, std::size_t lo, std::size_t hi) {
        float* __restrict pd = scratch;                 // dy of each input pair's winner
        float* __restrict pright = scratch + pair_count;  // 1 where the right input won
        for (std::size_t r = lo; r < hi; ++r) {
            const float* __restrict d = dy.data() + r * out_size;
            const float* __restrict ws = winner_.data() + r * out_size;
            for (std::size_t row = 0; row < C * OH; ++row) {
                float* __restrict top = pd + 2 * row * OW;
                float* __restrict bottom = top + OW;
                float* __restrict top_right = pright + 2 * row * OW;
                float* __restrict bottom_right = top_right + OW;
#pragma GCC unroll 1
                for (std::size_t ox = 0; ox < OW; ++ox) {
                    const float w = ws[row * OW + ox], v = d[row * OW + ox];
                    const bool lower = w >= 2.0f;
                    top[ox] = select(lower, 0.0f, v);
                    bottom[ox] = select(lower, v, 0.0f);
                    top_right[ox] = select(w == 1.0f, 1.0f, 0.0f);
                    bottom_right[ox] = select(w == 3.0f, 1.0f, 0.0f);
                }
            }
            float* __restrict g = dx.data() + r * in_size;
            for (std::size_t p = 0; p < pair_count; ++p) {
                const bool right = pright[p] != 0.0f;
                g[2 * p] = select(right, 0.0f, pd[p]);
                g[2 * p + 1] = select(right, pd[p], 0.0f);
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
    std::vector<float> winner_;          // max2x2: per output, 2 * row + column of its input
    std::vector<float> pairs_;           // max2x2: per chunk, two floats per input pair
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
                y(r, c) = detail::sum_floats(x.data() + r * In::size + c * HW, HW) * (1.0f / static_cast<float>(HW));
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
