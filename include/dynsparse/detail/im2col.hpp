#pragma once
// Kernels shared by conv2d and masked_conv2d: im2col / col2im and the convolution as one
// GEMM per sample on the unfolded input.
//
// Layout: a sample (C, H, W) is C*H*W contiguous floats, channel-major; a filter bank is
// the row-major matrix W (c_out x c_in*k*k), row o = filter o as (c_in, kh, kw). The
// unfolded input of one sample, col (c_in*k*k x oh*ow), has row (c, i, j) holding
// x[c, oy*s - p + i, ox*s - p + j] (0 outside the image) at column oy*ow + ox, so
//   y_sample (c_out x oh*ow) = W col + b       (already the channel-major output layout)
//   dL/dW += dy_sample col^T,   dcol = W^T dy_sample,   dx_sample = col2im(dcol).
// One GEMM per sample, writing straight into the sample's output row; each sample is
// unfolded into its own block of col, which stays in cache from im2col to the GEMM and is
// kept for the backward pass. Measured against one GEMM for the whole batch (samples
// unfolded side by side, c_in*k*k x batch*oh*ow, then the output and dy copied between
// the GEMM's channel-major layout and the sample-major rows): a LeNet-5-Caffe DST step at
// batch 64 took 17.8 ms per sample against 23.5 ms batched (lenet5_caffe_step, same run).
// The big GEMMs are efficient, but their 8 MiB operands leave the cache. Groups of
// samples side by side (so a group's unfolded input is 256 KiB to 4 MiB) were no faster
// than single samples either. At CIFAR size the small maps (2x2, 4x4) are grouped and the
// unfolded input is no longer kept for the whole batch: see conv_settings below.
#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>

#include "dynsparse/core/blas.hpp"
#include "dynsparse/core/parallel.hpp"
#include "dynsparse/core/tensor.hpp"
#include "dynsparse/detail/reduce.hpp"
#include "dynsparse/detail/sparse_linear.hpp"

namespace dynsparse::detail {

/// The static geometry of a 2-D convolution or pooling window.
struct conv_geometry {
    std::size_t channels, height, width;  // input sample
    std::size_t kernel, stride, padding;
    std::size_t out_height, out_width;
    constexpr std::size_t cols() const { return channels * kernel * kernel; }    // rows of col
    constexpr std::size_t positions() const { return out_height * out_width; }  // columns of col
    constexpr std::size_t in_size() const { return channels * height * width; }

    /// The output positions [lo, hi) along one axis whose input index o*s - p + k lies in
    /// [0, n).
    constexpr void valid_range(std::size_t k, std::size_t n, std::size_t out, std::size_t& lo,
                               std::size_t& hi) const {
        // o*s + k >= p  <=>  o >= ceil((p - k) / s)
        lo = k >= padding ? 0 : (padding - k + stride - 1) / stride;
        // o*s + k - p <= n - 1  <=>  o <= (n - 1 + p - k) / s
        hi = n - 1 + padding < k ? 0 : (n - 1 + padding - k) / stride + 1;
        hi = std::min(hi, out);
        lo = std::min(lo, hi);
    }
    /// valid_range for kernel row i and kernel column j, as constants.
    constexpr std::pair<std::size_t, std::size_t> y_range(std::size_t i) const {
        std::size_t lo = 0, hi = 0;
        valid_range(i, height, out_height, lo, hi);
        return {lo, hi};
    }
    constexpr std::pair<std::size_t, std::size_t> x_range(std::size_t j) const {
        std::size_t lo = 0, hi = 0;
        valid_range(j, width, out_width, lo, hi);
        return {lo, hi};
    }
};

/// Calls f(std::integral_constant<std::size_t, J>{}) for J = 0, ..., N-1.
template <std::size_t N, class F>
inline void for_each_constant(F&& f) {
    [&]<std::size_t... J>(std::index_sequence<J...>) {
        (f(std::integral_constant<std::size_t, J>{}), ...);
    }(std::make_index_sequence<N>{});
}

/// Calls f(c, i, j) for every input channel c and kernel offset (i, j) of g in im2col's row
/// order, the offsets as integral constants so that their valid ranges are constants too.
template <conv_geometry g, class F>
inline void for_each_kernel_tap(F&& f) {
    for (std::size_t c = 0; c < g.channels; ++c)
        for_each_constant<g.kernel>([&](auto kernel_row) {
            for_each_constant<g.kernel>([&](auto kernel_column) { f(c, kernel_row, kernel_column); });
        });
}

/// Unfolds one sample x (C*H*W) into col (C*k*k x oh*ow, rows `ld` floats apart).
/// The geometry is a template argument and the kernel offsets (i, j) constants
/// (for_each_constant), so every row copy and fill has a fixed length and compiles to a few vector moves. (With the
/// column range known only at run time GCC emitted `rep movs` for each 7- or 8-float
/// row of an 8x8 map, whose start-up cost made im2col 14% of a VGG-16 step.)
template <conv_geometry g>
inline void im2col(const float* __restrict x, float* __restrict col, std::size_t ld) {
    constexpr std::size_t k = g.kernel, s = g.stride, p = g.padding;
    constexpr std::size_t oh = g.out_height, ow = g.out_width, hw = g.height * g.width;
    for_each_kernel_tap<g>([&](std::size_t c, auto kernel_row, auto kernel_column) {
        constexpr std::size_t i = decltype(kernel_row)::value, j = decltype(kernel_column)::value;
        constexpr std::size_t ylo = g.y_range(i).first, yhi = g.y_range(i).second;
        constexpr std::size_t xlo = g.x_range(j).first, xhi = g.x_range(j).second;
        float* __restrict row = col + ((c * k + i) * k + j) * ld;
        for (std::size_t e = 0; e < ylo * ow; ++e) row[e] = 0.0f;
        for (std::size_t oy = ylo; oy < yhi; ++oy) {
            float* __restrict r = row + oy * ow;
            const float* __restrict src = x + c * hw + (oy * s + i - p) * g.width + j - p;
            for (std::size_t ox = 0; ox < xlo; ++ox) r[ox] = 0.0f;
            for (std::size_t ox = xlo; ox < xhi; ++ox) r[ox] = src[ox * s];
            for (std::size_t ox = xhi; ox < ow; ++ox) r[ox] = 0.0f;
        }
        for (std::size_t e = yhi * ow; e < oh * ow; ++e) row[e] = 0.0f;
    });
}

/// Folds col (C*k*k x oh*ow, rows `ld` floats apart) back into one sample dx (C*H*W),
/// summing overlaps; dx is overwritten. Fixed-length rows as in im2col.
template <conv_geometry g>
inline void col2im(const float* __restrict col, float* __restrict dx, std::size_t ld) {
    constexpr std::size_t k = g.kernel, s = g.stride, p = g.padding;
    constexpr std::size_t ow = g.out_width, hw = g.height * g.width;
    std::fill(dx, dx + g.in_size(), 0.0f);
    for_each_kernel_tap<g>([&](std::size_t c, auto kernel_row, auto kernel_column) {
        constexpr std::size_t i = decltype(kernel_row)::value, j = decltype(kernel_column)::value;
        constexpr std::size_t ylo = g.y_range(i).first, yhi = g.y_range(i).second;
        constexpr std::size_t xlo = g.x_range(j).first, xhi = g.x_range(j).second;
        const float* __restrict row = col + ((c * k + i) * k + j) * ld;
        for (std::size_t oy = ylo; oy < yhi; ++oy) {
            const float* __restrict r = row + oy * ow;
            float* __restrict dst = dx + c * hw + (oy * s + i - p) * g.width + j - p;
            for (std::size_t ox = xlo; ox < xhi; ++ox) dst[ox * s] += r[ox];
        }
    });
}

/// Tuning of the convolution kernels (process-wide; read at every forward/backward).
///  - group_columns: samples whose output has fewer than this many positions (oh*ow) are
///    unfolded side by side in groups of ceil(group_columns / positions), one GEMM per
///    group, so a 2x2 or 4x4 map (VGG's last stages) does not become a matrix-vector
///    product per sample. Maps with at least this many positions keep one GEMM per sample
///    (LeNet-5-Caffe's 24x24 and 8x8 maps; the path measured fastest there).
///  - large_kernel_bytes, large_kernel_group_columns: kernels of at least this size (W does
///    not stay in L2 between GEMMs; BLAS packs it again for every GEMM) are grouped up to
///    large_kernel_group_columns instead. Measured at 1 thread, forward + backward of a
///    VGG-16 layer, batch 64 (benchmark in docs/benchmarks.md): 256 channels on 8x8
///    (W 2.4 MB) 176 -> 126 ms, 512 on 4x4 203 -> 176 ms; LeNet-5-Caffe's second layer
///    (W 100 KB) was 5-10% slower grouped, so small kernels keep group_columns.
///  - keep_unfolded_bytes: the unfolded input of the whole batch is kept from forward to
///    backward when it fits in this many bytes; otherwise backward unfolds each group again
///    (at CIFAR size the unfolded batch of one 3x3 layer is 150-300 MB).
///  - min_groups: a batch is cut into at least this many groups, so that threads have
///    groups to share (2x2 maps would otherwise make one group of the batch). It does not
///    depend on the thread count, so the groups and hence the outputs are the same on any.
struct conv_settings {
    std::size_t group_columns = 64;
    std::size_t keep_unfolded_bytes = std::size_t{64} << 20;
    std::size_t large_kernel_bytes = std::size_t{1} << 20;
    std::size_t large_kernel_group_columns = 256;
    std::size_t min_groups = 4;
};
inline conv_settings& conv_tuning() {
    static conv_settings settings;
    return settings;
}

/// Scratch of one chunk of samples (one thread's share of a batch).
struct conv_chunk_scratch {
    matrix col;       // one group's unfolded input, when the batch's is not kept
    matrix dcol;      // one group's dL/dcol (or unfolded dy for the input gradient)
    matrix gathered;  // one group's output or dy, channel-major (c_out x group*positions)
};

/// Scratch of a convolution layer, allocated once per batch size and thread count.
struct conv_buffers {
    matrix col;        // the whole batch's unfolded input, when kept for backward
    std::vector<conv_chunk_scratch> chunks;
    matrix grad_part;  // weight and bias gradients of chunks 1.. (chunks-1 x c_out*(cols+1))
    matrix flipped;    // the kernel transposed and flipped, for the input gradient
    std::size_t group = 1;
    bool kept = false;
};

namespace conv_detail {
inline std::size_t group_size(std::size_t positions, std::size_t batch, std::size_t kernel_floats) {
    const conv_settings& s = conv_tuning();
    const std::size_t target = kernel_floats * sizeof(float) >= s.large_kernel_bytes
                                   ? s.large_kernel_group_columns
                                   : s.group_columns;
    if (positions >= target || batch == 0) return 1;
    const std::size_t groups = std::max<std::size_t>(s.min_groups, 1);
    const std::size_t most = (batch + groups - 1) / groups;
    return std::min(most, (target + positions - 1) / positions);
}

/// Runs body(chunk, scratch, s0, s1) over the batch's groups of `group` samples, shared out
/// between threads in contiguous runs of whole groups: samples [s0, s1) of chunk `chunk`.
template <class Body>
void for_group_chunks(std::size_t batch, std::size_t group, conv_buffers& buf, Body&& body) {
    const std::size_t groups = (batch + group - 1) / group;
    if (buf.chunks.size() < parallel_chunks(groups)) buf.chunks.resize(parallel_chunks(groups));
    parallel_for(groups, [&](std::size_t chunk, std::size_t g0, std::size_t g1) {
        body(chunk, buf.chunks[chunk], g0 * group, std::min(batch, g1 * group));
    });
}
}  // namespace conv_detail

/// The two products of a convolution with its filter bank W (c_out x kk) on an unfolded
/// group: out (c_out x ld) = init + W col, and dcol (kk x ld) = W^T d. dense_filters
/// runs them as GEMMs; kept_filters on W*M's kept weights (detail/sparse_linear.hpp).
struct dense_filters {
    static constexpr bool dense = true;
    const float* w;
    std::size_t out_channels, kk;

    void multiply(const float* col, std::size_t ld, float* out, const float* init) const {
        if (init != nullptr)
            for (std::size_t o = 0; o < out_channels; ++o) std::fill(out + o * ld, out + (o + 1) * ld, init[o]);
        gemm(transpose::no, transpose::no, out_channels, ld, kk, 1.0f, w, kk, col, ld, init != nullptr ? 1.0f : 0.0f,
             out, ld);
    }
    void multiply_transposed(const float* d, std::size_t ld, float* dcol) const {
        gemm(transpose::yes, transpose::no, kk, ld, out_channels, 1.0f, w, kk, d, ld, 0.0f, dcol, ld);
    }
};

struct kept_filters {
    static constexpr bool dense = false;
    const kept_rows* w;
    std::size_t out_channels, kk;

    void multiply(const float* col, std::size_t ld, float* out, const float* init) const {
        kept_rows_multiply(*w, out_channels, col, ld, out, init);
    }
    void multiply_transposed(const float* d, std::size_t ld, float* dcol) const {
        kept_rows_multiply_transposed(*w, out_channels, kk, d, ld, dcol);
    }
};

/// y (batch x c_out*oh*ow) = conv(x, w) + b (b may be null: no bias). Samples are unfolded
/// into col in groups (see conv_settings); a group of one sample is multiplied straight
/// into its row of y, a larger group into `gathered` and then scattered to its rows.
/// Groups are shared out between threads (parallel_for).
template <conv_geometry g, class Filters>
void conv_forward_with(const Filters& f, const matrix& x, const float* b, conv_buffers& buf, matrix& y) {
    const std::size_t out_channels = f.out_channels;
    const std::size_t batch = x.shape(0), n = g.positions(), kk = g.cols();
    const std::size_t out_size = out_channels * n;
    ensure_shape(y, batch, out_size);
    const std::size_t group = conv_detail::group_size(n, batch, out_channels * kk);
    buf.group = group;
    buf.kept = batch * kk * n * sizeof(float) <= conv_tuning().keep_unfolded_bytes;
    if (buf.kept) ensure_shape(buf.col, batch * kk, n);
    conv_detail::for_group_chunks(batch, group, buf, [&](std::size_t, conv_chunk_scratch& sc, std::size_t lo, std::size_t hi) {
        if (!buf.kept) ensure_shape(sc.col, group * kk, n);
        if (group > 1) ensure_shape(sc.gathered, out_channels, group * n);
        for (std::size_t s0 = lo; s0 < hi; s0 += group) {
            const std::size_t gs = std::min(group, hi - s0), ld = gs * n;
            float* c = buf.kept ? buf.col.data() + s0 * kk * n : sc.col.data();
            for (std::size_t i = 0; i < gs; ++i) im2col<g>(x.data() + (s0 + i) * g.in_size(), c + i * n, ld);
            if (gs == 1) {
                f.multiply(c, n, y.data() + s0 * out_size, b);
                continue;
            }
            float* out = sc.gathered.data();
            f.multiply(c, ld, out, nullptr);
            for (std::size_t i = 0; i < gs; ++i) {
                float* yr = y.data() + (s0 + i) * out_size;
                for (std::size_t o = 0; o < out_channels; ++o) {
                    const float bias = b != nullptr ? b[o] : 0.0f;
                    const float* src = out + o * ld + i * n;
                    for (std::size_t p = 0; p < n; ++p) yr[o * n + p] = src[p] + bias;
                }
            }
        }
    });
}

template <conv_geometry g>
void conv_forward(std::size_t out_channels, const matrix& x, const float* w, const float* b,
                  conv_buffers& buf, matrix& y) {
    conv_forward_with<g>(dense_filters{w, out_channels, g.cols()}, x, b, buf, y);
}

/// A stride-1 convolution whose output has the input's size (2*padding + 1 == kernel, e.g.
/// 3x3 with padding 1): its input gradient is itself such a convolution, of dy with the
/// kernel transposed (channels swapped) and flipped (rotated 180 degrees).
template <conv_geometry g>
inline constexpr bool same_size_stride_one = g.stride == 1 && 2 * g.padding + 1 == g.kernel;

/// dx = conv(dy, W flipped and transposed) for same_size_stride_one geometries: the unfolded
/// dy has c_out*k*k rows, so the GEMM's inner dimension is c_out*k*k instead of c_out (of
/// W^T dy, then col2im), and its output is dx in its final layout. At CIFAR size (c_out 64,
/// 32x32 maps) the W^T dy product with its short inner dimension and the col2im scatter
/// were the slowest part of the step.
template <conv_geometry g, std::size_t Out>
void conv_input_gradient_by_convolution(const float* w, const matrix& dy, conv_buffers& buf, matrix& dx) {
    static_assert(same_size_stride_one<g>);
    constexpr std::size_t k = g.kernel, C = g.channels;
    constexpr conv_geometry t{Out, g.out_height, g.out_width, k, 1, g.padding, g.height, g.width};
    constexpr std::size_t n = t.positions(), kk = t.cols(), out_size = Out * g.positions();
    const std::size_t batch = dy.shape(0);
    ensure_shape(dx, batch, g.in_size());
    ensure_shape(buf.flipped, C, kk);
    float* f = buf.flipped.data();
    parallel_for(C, [&](std::size_t, std::size_t c0, std::size_t c1) {
        for (std::size_t co = 0; co < Out; ++co)
            for (std::size_t ci = c0; ci < c1; ++ci)
                for (std::size_t i = 0; i < k; ++i)
                    for (std::size_t j = 0; j < k; ++j)
                        f[ci * kk + (co * k + (k - 1 - i)) * k + (k - 1 - j)] = w[co * g.cols() + (ci * k + i) * k + j];
    }, grain_for(kk));
    const std::size_t group = conv_detail::group_size(n, batch, C * kk);
    conv_detail::for_group_chunks(batch, group, buf, [&](std::size_t, conv_chunk_scratch& sc, std::size_t lo, std::size_t hi) {
        ensure_shape(sc.dcol, kk, group * n);
        if (group > 1) ensure_shape(sc.gathered, C, group * n);
        for (std::size_t s0 = lo; s0 < hi; s0 += group) {
            const std::size_t gs = std::min(group, hi - s0), ld = gs * n;
            float* c = sc.dcol.data();
            for (std::size_t i = 0; i < gs; ++i) im2col<t>(dy.data() + (s0 + i) * out_size, c + i * n, ld);
            if (gs == 1) {
                gemm(transpose::no, transpose::no, C, n, kk, 1.0f, f, kk, c, n, 0.0f, dx.data() + s0 * g.in_size(), n);
                continue;
            }
            float* out = sc.gathered.data();
            gemm(transpose::no, transpose::no, C, ld, kk, 1.0f, f, kk, c, ld, 0.0f, out, ld);
            for (std::size_t i = 0; i < gs; ++i)
                for (std::size_t ch = 0; ch < C; ++ch)
                    std::copy_n(out + ch * ld + i * n, n, dx.data() + (s0 + i) * g.in_size() + ch * n);
        }
    });
}

/// grad_w = sum over samples of dy_s col_s^T, grad_b (unless null) = sums of dy, and,
/// unless dx is null, dx = dL/dx: per sample col2im(W^T dy_s), or, for same-size stride-1
/// geometries, conv_input_gradient_by_convolution. x is the forward's input (unfolded
/// again when the forward did not keep col). Groups as in conv_forward; with several
/// threads each chunk of groups sums its own gradients, added up in chunk order after.
/// Filters give the input-gradient product (dense_filters or kept_filters; the kept
/// weights always go through dcol and col2im).
template <conv_geometry g, std::size_t Out, class Filters>
void conv_backward_with(const matrix& x, const Filters& f, const matrix& dy, float* grad_w, float* grad_b,
                        conv_buffers& buf, matrix* dx) {
    constexpr std::size_t out_channels = Out;
    constexpr bool by_convolution = Filters::dense && same_size_stride_one<g>;
    const std::size_t batch = dy.shape(0), n = g.positions(), kk = g.cols();
    const std::size_t out_size = out_channels * n, group = buf.group;
    const std::size_t grad_size = out_channels * (kk + 1);
    const std::size_t chunks = parallel_chunks((batch + group - 1) / group);
    if (chunks > 1) ensure_shape(buf.grad_part, chunks - 1, grad_size);
    if (dx != nullptr) ensure_shape(*dx, batch, g.in_size());
    conv_detail::for_group_chunks(batch, group, buf, [&](std::size_t chunk, conv_chunk_scratch& sc, std::size_t lo, std::size_t hi) {
        float* gw = chunk == 0 ? grad_w : buf.grad_part.data() + (chunk - 1) * grad_size;
        float* gb = chunk == 0 ? grad_b : gw + out_channels * kk;
        if (gb != nullptr) std::fill(gb, gb + out_channels, 0.0f);
        if (!buf.kept) ensure_shape(sc.col, group * kk, n);
        if (dx != nullptr && !by_convolution) ensure_shape(sc.dcol, kk, group * n);
        if (group > 1) ensure_shape(sc.gathered, out_channels, group * n);
        for (std::size_t s0 = lo; s0 < hi; s0 += group) {
            const std::size_t gs = std::min(group, hi - s0), ld = gs * n;
            float* c = buf.kept ? buf.col.data() + s0 * kk * n : sc.col.data();
            if (!buf.kept)
                for (std::size_t i = 0; i < gs; ++i) im2col<g>(x.data() + (s0 + i) * g.in_size(), c + i * n, ld);
            const float* d = dy.data() + s0 * out_size;
            if (gs > 1) {
                float* gd = sc.gathered.data();
                for (std::size_t i = 0; i < gs; ++i)
                    for (std::size_t o = 0; o < out_channels; ++o)
                        std::copy_n(dy.data() + (s0 + i) * out_size + o * n, n, gd + o * ld + i * n);
                d = gd;
            }
            gemm(transpose::no, transpose::yes, out_channels, kk, ld, 1.0f, d, ld, c, ld,
                 s0 == lo ? 0.0f : 1.0f, gw, kk);
            if (gb != nullptr)
                for (std::size_t o = 0; o < out_channels; ++o) gb[o] += sum_floats(d + o * ld, ld);
            if (dx != nullptr && !by_convolution) {
                f.multiply_transposed(d, ld, sc.dcol.data());
                for (std::size_t i = 0; i < gs; ++i)
                    col2im<g>(sc.dcol.data() + i * n, dx->data() + (s0 + i) * g.in_size(), ld);
            }
        }
    });
    // Chunk sums added in chunk order, element ranges shared between threads.
    if (chunks > 1)
        parallel_for(out_channels * kk, [&](std::size_t, std::size_t e0, std::size_t e1) {
            for (std::size_t c = 1; c < chunks; ++c) {
                const float* part = buf.grad_part.data() + (c - 1) * grad_size;
                for (std::size_t i = e0; i < e1; ++i) grad_w[i] += part[i];
            }
        }, parallel_grain_elements);
    if (grad_b != nullptr)
        for (std::size_t c = 1; c < chunks; ++c) {
            const float* part = buf.grad_part.data() + (c - 1) * grad_size + out_channels * kk;
            for (std::size_t o = 0; o < out_channels; ++o) grad_b[o] += part[o];
        }
    if constexpr (by_convolution)
        if (dx != nullptr) conv_input_gradient_by_convolution<g, Out>(f.w, dy, buf, *dx);
}

/// grad_w = sum over samples of dy_s col_s^T, grad_b (unless null) = sums of dy, and,
/// unless dx is null, dx = dL/dx (see conv_backward_with), for dense filters w.
template <conv_geometry g, std::size_t Out>
void conv_backward(const matrix& x, const float* w, const matrix& dy, float* grad_w, float* grad_b,
                   conv_buffers& buf, matrix* dx) {
    conv_backward_with<g, Out>(x, dense_filters{w, Out, g.cols()}, dy, grad_w, grad_b, buf, dx);
}

}  // namespace dynsparse::detail
