#pragma once
// The LSTM recurrence and its backpropagation through time, shared by lstm and
// masked_lstm. Gates in PyTorch's order (i, f, g, o):
//
//   z_t = W_ih x_t + W_hh h_{t-1} + b                   (4H values)
//   i = s(z_i), f = s(z_f), g = tanh(z_g), o = s(z_o)   (s: the logistic function)
//   c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t),   h_0 = c_0 = 0
//
// Storage: activations are batch-major (sample b's step t is row b*T + t of a
// (B*T) x width matrix), and the weights are one 4H x (F + H) matrix W = [W_ih | W_hh]
// (row r is gate r / H of hidden unit r % H). So the input projection of the whole
// sequence is one GEMM (B*T x F times F x 4H), each time step adds one GEMM for the
// recurrent part (strided over the batch), and the weight gradients are two GEMMs over
// the whole sequence, with h_{t-1} kept in a shifted copy of the output.
#include <algorithm>
#include <cstddef>

#include "dynsparse/core/blas.hpp"
#include "dynsparse/core/select.hpp"
#include "dynsparse/core/tensor.hpp"
#include "dynsparse/detail/fast_exp.hpp"  // detail::vector_friendly_exp
#include "dynsparse/detail/sparse_linear.hpp"

namespace dynsparse::detail {

/// Logistic and tanh through the branch-free exp, so the gate loops vectorise.
inline float fast_sigmoid(float x) { return 1.0f / (1.0f + vector_friendly_exp(-x)); }
inline float fast_tanh(float x) { return 2.0f / (1.0f + vector_friendly_exp(-2.0f * x)) - 1.0f; }

/// What the forward pass keeps for the backward pass, allocated once per batch size.
struct lstm_buffers {
    matrix gates;      ///< B*T x 4H: after forward, the activated gates i, f, g, o
    matrix cell;       ///< B*T x H: c_t
    matrix cell_tanh;  ///< B*T x H: tanh(c_t)
    matrix h_prev;     ///< B*T x H: h_{t-1} (zero at t = 0)
    matrix d_gates;    ///< B*T x 4H: dL/dz_t
    matrix dh, dc;     ///< B x H: gradients carried from step t+1 to step t
};

/// The four products of an LSTM layer with its gate matrices [W_ih | W_hh] (4H x (F+H)),
/// on row-major batches with row strides: dense_gates runs them as GEMMs on w;
/// kept_gates on the kept weights of each half (detail/sparse_linear.hpp).
///   input(x, ldx, n, z, ldz)          z += x W_ih^T      (n rows)
///   recurrent(h, ldh, n, z, ldz)      z += h W_hh^T
///   input_gradient(dz, ldz, n, dx, ldx)     dx = dz W_ih
///   recurrent_gradient(dz, ldz, n, dh, ldh) dh = dz W_hh
template <std::size_t F, std::size_t H>
struct dense_gates {
    static constexpr std::size_t G = 4 * H, ld = F + H;
    const float* w;
    void input(const float* x, std::size_t ldx, std::size_t n, float* z, std::size_t ldz) const {
        gemm(transpose::no, transpose::yes, n, G, F, 1.0f, x, ldx, w, ld, 1.0f, z, ldz);
    }
    void recurrent(const float* h, std::size_t ldh, std::size_t n, float* z, std::size_t ldz) const {
        gemm(transpose::no, transpose::yes, n, G, H, 1.0f, h, ldh, w + F, ld, 1.0f, z, ldz);
    }
    void input_gradient(const float* dz, std::size_t ldz, std::size_t n, float* dx, std::size_t ldx) const {
        gemm(transpose::no, transpose::no, n, F, G, 1.0f, dz, ldz, w, ld, 0.0f, dx, ldx);
    }
    void recurrent_gradient(const float* dz, std::size_t ldz, std::size_t n, float* dh, std::size_t ldh) const {
        gemm(transpose::no, transpose::no, n, H, G, 1.0f, dz, ldz, w + F, ld, 0.0f, dh, ldh);
    }
};

template <std::size_t F, std::size_t H>
struct kept_gates {
    static constexpr std::size_t G = 4 * H;
    const kept_rows* ih;  ///< columns [0, F) of W*M
    const kept_rows* hh;  ///< columns [F, F + H), indices from 0
    void input(const float* x, std::size_t ldx, std::size_t n, float* z, std::size_t ldz) const {
        sparse_linear_forward_rows<true>(x, ldx, n, *ih, nullptr, G, F, z, ldz);
    }
    void recurrent(const float* h, std::size_t ldh, std::size_t n, float* z, std::size_t ldz) const {
        sparse_linear_forward_rows<true>(h, ldh, n, *hh, nullptr, G, H, z, ldz);
    }
    void input_gradient(const float* dz, std::size_t ldz, std::size_t n, float* dx, std::size_t ldx) const {
        sparse_linear_input_gradient_rows(dz, ldz, n, *ih, G, F, dx, ldx);
    }
    void recurrent_gradient(const float* dz, std::size_t ldz, std::size_t n, float* dh, std::size_t ldh) const {
        sparse_linear_input_gradient_rows(dz, ldz, n, *hh, G, H, dh, ldh);
    }
};

/// y (B x T*H) = the hidden states h_1..h_T for x (B x T*F); w is the 4H x (F+H) matrix
/// [W_ih | W_hh] (through its products `gates`), b the 4H biases.
template <std::size_t T, std::size_t F, std::size_t H, class Gates>
void lstm_forward_with(const matrix& x, const Gates& gates, const float* b, lstm_buffers& buf, matrix& y) {
    constexpr std::size_t G = 4 * H;
    const std::size_t batch = x.shape(0), rows = batch * T;
    ensure_shape(buf.gates, rows, G);
    ensure_shape(buf.cell, rows, H);
    ensure_shape(buf.cell_tanh, rows, H);
    ensure_shape(buf.h_prev, rows, H);
    ensure_shape(y, batch, T * H);
    float* z = buf.gates.data();
    for (std::size_t r = 0; r < rows; ++r) std::copy(b, b + G, z + r * G);
    // Input projection of every step at once.
    gates.input(x.data(), F, rows, z, G);

    float* hp = buf.h_prev.data();
    float* c = buf.cell.data();
    float* ct = buf.cell_tanh.data();
    float* h = y.data();
    for (std::size_t s = 0; s < batch; ++s) std::fill(hp + s * T * H, hp + s * T * H + H, 0.0f);
    for (std::size_t t = 0; t < T; ++t) {
        if (t > 0)  // z_t += h_{t-1} W_hh^T, rows b*T + t
            gates.recurrent(hp + t * H, T * H, batch, z + t * G, T * G);
        for (std::size_t s = 0; s < batch; ++s) {
            const std::size_t r = s * T + t;
            float* __restrict zr = z + r * G;
            for (std::size_t j = 0; j < 2 * H; ++j) zr[j] = fast_sigmoid(zr[j]);
            for (std::size_t j = 2 * H; j < 3 * H; ++j) zr[j] = fast_tanh(zr[j]);
            for (std::size_t j = 3 * H; j < G; ++j) zr[j] = fast_sigmoid(zr[j]);
            float* __restrict cr = c + r * H;
            // The previous cell's term is selected away at t = 0 (cv then points at any
            // readable row): a pointer test in the loop would keep it from vectorising.
            const bool first = t == 0;
            const float* cv = first ? zr : c + (r - 1) * H;
            for (std::size_t j = 0; j < H; ++j)
                cr[j] = select(first, 0.0f, zr[H + j] * cv[j]) + zr[j] * zr[2 * H + j];
            float* __restrict tr = ct + r * H;
            for (std::size_t j = 0; j < H; ++j) tr[j] = fast_tanh(cr[j]);
            float* __restrict hr = h + r * H;
            for (std::size_t j = 0; j < H; ++j) hr[j] = zr[3 * H + j] * tr[j];
            if (t + 1 < T) std::copy(hr, hr + H, hp + (r + 1) * H);
        }
    }
}

template <std::size_t T, std::size_t F, std::size_t H>
void lstm_forward(const matrix& x, const float* w, const float* b, lstm_buffers& buf, matrix& y) {
    lstm_forward_with<T, F, H>(x, dense_gates<F, H>{w}, b, buf, y);
}

/// Backpropagation through time after lstm_forward with the same x and buffers: from
/// dy (B x T*H, dL/dh_t of every step) writes dL/dW into grad_w (4H x (F+H)), dL/db into
/// grad_b and, unless dx is null, dL/dx. The weight gradient is always dense GEMMs.
template <std::size_t T, std::size_t F, std::size_t H, class Gates>
void lstm_backward_with(const matrix& x, const matrix& dy, const Gates& gates, lstm_buffers& buf,
                        float* grad_w, float* grad_b, matrix* dx) {
    constexpr std::size_t G = 4 * H, ld = F + H;
    const std::size_t batch = x.shape(0), rows = batch * T;
    ensure_shape(buf.d_gates, rows, G);
    ensure_shape(buf.dh, batch, H);
    ensure_shape(buf.dc, batch, H);
    buf.dh.fill(0.0f);
    buf.dc.fill(0.0f);
    const float* z = buf.gates.data();
    const float* c = buf.cell.data();
    const float* ct = buf.cell_tanh.data();
    const float* d_out = dy.data();
    float* dz = buf.d_gates.data();
    float* dh = buf.dh.data();
    float* dc = buf.dc.data();
    for (std::size_t t = T; t-- > 0;) {
        if (t + 1 < T)  // dL/dh_t through the recurrence: dz_{t+1} W_hh
            gates.recurrent_gradient(dz + (t + 1) * G, T * G, batch, dh, H);
        for (std::size_t s = 0; s < batch; ++s) {
            const std::size_t r = s * T + t;
            const float* __restrict zr = z + r * G;
            const float* __restrict tr = ct + r * H;
            const float* __restrict dyr = d_out + r * H;
            const bool first = t == 0;
            const float* cv = first ? zr : c + (r - 1) * H;  // as in lstm_forward
            float* __restrict dhr = dh + s * H;
            float* __restrict dcr = dc + s * H;
            float* __restrict dzr = dz + r * G;
            for (std::size_t j = 0; j < H; ++j) {
                const float i = zr[j], f = zr[H + j], g = zr[2 * H + j], o = zr[3 * H + j];
                const float tc = tr[j];
                const float dhj = dyr[j] + dhr[j];
                const float dcj = dcr[j] + dhj * o * (1.0f - tc * tc);
                dzr[j] = dcj * g * i * (1.0f - i);
                dzr[H + j] = select(first, 0.0f, dcj * cv[j]) * f * (1.0f - f);
                dzr[2 * H + j] = dcj * i * (1.0f - g * g);
                dzr[3 * H + j] = dhj * tc * o * (1.0f - o);
                dcr[j] = dcj * f;
            }
        }
    }
    // Weight gradients over the whole sequence: dW_ih = dz^T x, dW_hh = dz^T h_prev.
    gemm(transpose::yes, transpose::no, G, F, rows, 1.0f, dz, G, x.data(), F, 0.0f, grad_w, ld);
    gemm(transpose::yes, transpose::no, G, H, rows, 1.0f, dz, G, buf.h_prev.data(), H, 0.0f,
         grad_w + F, ld);
    std::fill(grad_b, grad_b + G, 0.0f);
    for (std::size_t r = 0; r < rows; ++r) {
        const float* __restrict dzr = dz + r * G;
        for (std::size_t j = 0; j < G; ++j) grad_b[j] += dzr[j];
    }
    if (dx != nullptr) {
        ensure_shape(*dx, batch, T * F);
        gates.input_gradient(dz, G, rows, dx->data(), F);
    }
}

template <std::size_t T, std::size_t F, std::size_t H>
void lstm_backward(const matrix& x, const matrix& dy, const float* w, lstm_buffers& buf,
                   float* grad_w, float* grad_b, matrix* dx) {
    lstm_backward_with<T, F, H>(x, dy, dense_gates<F, H>{w}, buf, grad_w, grad_b, dx);
}

}  // namespace dynsparse::detail
