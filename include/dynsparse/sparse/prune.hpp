#pragma once
// Dead-unit pruning of an exported model and compress(), which builds the CSR copies.
#include <cstdint>
#include <vector>

#include "dynsparse/sparse/engine.hpp"
#include "dynsparse/sparse/op.hpp"

namespace dynsparse {

namespace detail {

inline bool keeps_channels(op_kind k) {
    return k == op_kind::relu || k == op_kind::tanh || k == op_kind::sigmoid || k == op_kind::max_pool ||
           k == op_kind::avg_pool || k == op_kind::reshape;
}

inline float apply_elementwise(op_kind k, float v) {
    switch (k) {
        case op_kind::relu: return relu_fn::value(v);
        case op_kind::tanh: return tanh_fn::value(v);
        case op_kind::sigmoid: return sigmoid_fn::value(v);
        default: return v;  // pooling a constant map gives the constant
    }
}

/// The next weighted operation after `p` if only channel-preserving operations lie
/// between (and every reshape flattens); its columns for unit r are [r*g, (r+1)*g).
inline bool find_consumer(const std::vector<sparse_op>& ops, std::size_t p, std::size_t& q, std::size_t& g) {
    for (q = p + 1; q < ops.size(); ++q) {
        const sparse_op& op = ops[q];
        if (op.kind == op_kind::lstm) return false;  // see prune_dead_units
        if (op.has_weights()) {
            const std::size_t units = ops[p].out.c;
            if (units == 0 || op.cols() % units != 0) return false;
            g = op.cols() / units;
            return op.kind == op_kind::dense || op.in.c == units;
        }
        if (!keeps_channels(op.kind)) return false;
        if (op.kind == op_kind::reshape && (op.out.h != 1 || op.out.w != 1)) return false;
    }
    return false;
}

/// Removes the units `drop` of ops[p] (its rows) and their columns in ops[q], folding the
/// constant output `constant[r]` of a unit without incoming weights into ops[q]'s bias.
inline void remove_units(std::vector<sparse_op>& ops, std::size_t p, std::size_t q, std::size_t g,
                         const std::vector<char>& drop, const std::vector<float>& constant) {
    sparse_op& prod = ops[p];
    sparse_op& cons = ops[q];
    const std::size_t units = prod.rows(), prod_cols = prod.cols(), cons_rows = cons.rows(), cons_cols = cons.cols();
    std::size_t kept = 0;
    for (std::size_t r = 0; r < units; ++r) kept += !drop[r];
    for (std::size_t r = 0; r < units; ++r)
        if (drop[r] && constant[r] != 0.0f)
            for (std::size_t o = 0; o < cons_rows; ++o) {
                float s = 0;
                for (std::size_t j = r * g; j < (r + 1) * g; ++j) s += cons.dense[o * cons_cols + j];
                cons.bias[o] += s * constant[r];
            }
    std::vector<float> pw, pb, cw;
    pw.reserve(kept * prod_cols);
    for (std::size_t r = 0; r < units; ++r)
        if (!drop[r]) {
            pw.insert(pw.end(), prod.dense.begin() + static_cast<std::ptrdiff_t>(r * prod_cols),
                      prod.dense.begin() + static_cast<std::ptrdiff_t>((r + 1) * prod_cols));
            pb.push_back(prod.bias[r]);
        }
    cw.reserve(cons_rows * kept * g);
    for (std::size_t o = 0; o < cons_rows; ++o)
        for (std::size_t r = 0; r < units; ++r)
            if (!drop[r])
                for (std::size_t j = r * g; j < (r + 1) * g; ++j) cw.push_back(cons.dense[o * cons_cols + j]);
    prod.dense = std::move(pw);
    prod.bias = std::move(pb);
    prod.csr.rows = kept;
    prod.out.c = kept;
    for (std::size_t i = p + 1; i < q; ++i) {
        ops[i].in.c = kept;
        if (ops[i].kind == op_kind::reshape)
            ops[i].out = {kept * ops[i].in.h * ops[i].in.w, 1, 1};
        else
            ops[i].out.c = kept;
    }
    cons.dense = std::move(cw);
    cons.csr.cols = kept * g;
    if (cons.kind == op_kind::dense)
        cons.in = {kept * g, 1, 1};
    else
        cons.in.c = kept;
}

/// Removes, until nothing changes, every unit (neuron or filter) whose incoming weights
/// are all zero (its constant output is folded into the next layer's bias) or whose
/// outgoing weights are all zero. Works on the dense copies; call before compressing.
/// LSTM units are kept: one without incoming weights still has a cell driven by its
/// biases, so its output changes from step to step and no constant bias can replace it.
inline void prune_dead_units(std::vector<sparse_op>& ops) {
    for (bool changed = true; changed;) {
        changed = false;
        for (std::size_t p = 0; p < ops.size(); ++p) {
            std::size_t q = 0, g = 0;
            const bool producer = ops[p].kind == op_kind::dense || ops[p].kind == op_kind::conv;
            if (!producer || !find_consumer(ops, p, q, g)) continue;
            const sparse_op& prod = ops[p];
            const sparse_op& cons = ops[q];
            const std::size_t units = prod.rows(), cols = prod.cols();
            std::vector<char> drop(units, 0);
            std::vector<float> constant(units, 0.0f);
            std::size_t dropped = 0;
            for (std::size_t r = 0; r < units; ++r) {
                const bool no_inputs = std::all_of(prod.dense.begin() + static_cast<std::ptrdiff_t>(r * cols),
                                                   prod.dense.begin() + static_cast<std::ptrdiff_t>((r + 1) * cols),
                                                   [](float v) { return v == 0.0f; });
                bool no_outputs = true;
                for (std::size_t o = 0; o < cons.rows() && no_outputs; ++o)
                    for (std::size_t j = r * g; j < (r + 1) * g; ++j)
                        if (cons.dense[o * cons.cols() + j] != 0.0f) {
                            no_outputs = false;
                            break;
                        }
                float c = prod.bias[r];
                for (std::size_t i = p + 1; i < q; ++i) c = apply_elementwise(ops[i].kind, c);
                // A padded convolution sees the constant map next to zeros: not foldable.
                const bool foldable = c == 0.0f || cons.kind == op_kind::dense || cons.padding == 0;
                if (no_outputs || (no_inputs && foldable && std::isfinite(c))) {
                    drop[r] = 1;
                    constant[r] = no_outputs ? 0.0f : c;
                    ++dropped;
                }
            }
            if (dropped == units) {  // keep one unit so every shape stays non-empty
                drop[0] = 0;
                --dropped;
            }
            if (dropped == 0) continue;
            remove_units(ops, p, q, g, drop, constant);
            changed = true;
        }
    }
}

}  // namespace detail

/// Builds each weighted operation's CSR from its dense copy, then keeps the dense copy only
/// where the engine will use it.
inline void compress(sparse_model& m) {
    for (auto& op : m.ops)
        if (op.has_weights()) op.csr = csr_matrix::from_dense(op.dense.data(), op.csr.rows, op.csr.cols);
    m.prepare();
}

}  // namespace dynsparse
