#pragma once
// The exported model's file format: sparse_model_bytes / parse_sparse_model and the
// save / load wrappers.
//
// File: io/binary.hpp's frame (magic "DSMODEL", version, size, CRC-32) around
//   input shape (3 x u32), operation count (u64), then per operation: kind (u8), input and
//   output shapes (6 x u32), kernel, stride, padding (3 x u32); dense, conv and lstm add the bias
//   (float array) and the weights: format (u8: 0 dense, 1 CSR with u16 columns, 2 CSR with
//   u32 columns), rows, cols (u32), then the dense values, or nnz (u32), row starts,
//   columns and values. The writer picks the smaller format per layer. The loader checks
//   every shape against the previous operation and every index against its bounds, and the
//   work and activations per sample the shapes declare against detail::max_model_work and
//   detail::max_model_activations (sparse/op.hpp).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "dynsparse/core/error.hpp"
#include "dynsparse/io/atomic_file.hpp"
#include "dynsparse/io/binary.hpp"
#include "dynsparse/sparse/engine.hpp"
#include "dynsparse/sparse/op.hpp"
#include "dynsparse/sparse/prune.hpp"

namespace dynsparse {

namespace detail {

inline void write_matrix(byte_writer& out, const csr_matrix& m) {
    const std::size_t nnz = m.nonzeros();
    const bool narrow = m.cols <= 65536;
    const std::size_t csr_bytes = 4 * (m.rows + 1) + nnz * ((narrow ? 2 : 4) + 4) + 4;
    const bool as_dense = m.rows * m.cols * 4 <= csr_bytes;
    out.u8(as_dense ? 0 : narrow ? 1 : 2);
    out.u32(static_cast<std::uint32_t>(m.rows));
    out.u32(static_cast<std::uint32_t>(m.cols));
    if (as_dense) {
        const std::vector<float> d = m.to_dense();
        out.raw(std::span<const float>(d));
        return;
    }
    out.u32(static_cast<std::uint32_t>(nnz));
    out.raw(std::span<const std::uint32_t>(m.row_start));
    if (narrow) {
        std::vector<std::uint16_t> c(m.column.size());
        for (std::size_t i = 0; i < c.size(); ++i) c[i] = static_cast<std::uint16_t>(m.column[i]);
        out.raw(std::span<const std::uint16_t>(c));
    } else {
        out.raw(std::span<const std::uint32_t>(m.column));
    }
    out.raw(std::span<const float>(m.value));
}

inline csr_matrix read_matrix(byte_reader& in, const std::string& where) {
    const std::uint8_t format = in.u8("weight format");
    if (format > 2) in.fail(where + ": unknown weight format " + std::to_string(format));
    csr_matrix m;
    m.rows = in.u32("rows");
    m.cols = in.u32("cols");
    if (m.rows == 0 || m.cols == 0 || m.rows > max_model_dim || m.cols > max_model_dim ||
        m.rows * m.cols > max_model_elements)
        in.fail(where + ": unsupported weight shape " + std::to_string(m.rows) + " x " + std::to_string(m.cols));
    if (format == 0) {
        if (m.rows * m.cols * 4 > in.remaining()) in.fail(where + ": truncated dense weights");
        std::vector<float> d(m.rows * m.cols);
        in.raw_into(std::span<float>(d), "dense weights");
        return csr_matrix::from_dense(d.data(), m.rows, m.cols);
    }
    const std::size_t nnz = in.u32("non-zero count");
    if (nnz > m.rows * m.cols) in.fail(where + ": " + std::to_string(nnz) + " non-zeros in a " +
                                       std::to_string(m.rows) + " x " + std::to_string(m.cols) + " matrix");
    if ((m.rows + 1) * 4 + nnz * (format == 1 ? 6 : 8) > in.remaining()) in.fail(where + ": truncated sparse weights");
    m.row_start.resize(m.rows + 1);
    in.raw_into(std::span<std::uint32_t>(m.row_start), "row starts");
    m.column.resize(nnz);
    if (format == 1) {
        std::vector<std::uint16_t> c(nnz);
        in.raw_into(std::span<std::uint16_t>(c), "columns");
        std::copy(c.begin(), c.end(), m.column.begin());
    } else {
        in.raw_into(std::span<std::uint32_t>(m.column), "columns");
    }
    m.value.resize(nnz);
    in.raw_into(std::span<float>(m.value), "values");
    if (m.row_start[0] != 0 || m.row_start[m.rows] != nnz) in.fail(where + ": row starts do not span the non-zeros");
    for (std::size_t i = 0; i < m.rows; ++i)
        if (m.row_start[i + 1] < m.row_start[i]) in.fail(where + ": row starts decrease at row " + std::to_string(i));
    for (std::size_t k = 0; k < nnz; ++k)
        if (m.column[k] >= m.cols)
            in.fail(where + ": column " + std::to_string(m.column[k]) + " out of range (" + std::to_string(m.cols) +
                    " columns)");
    return m;
}

inline dims3 read_dims(byte_reader& in, const std::string& where) {
    dims3 d;
    d.c = in.u32("shape");
    d.h = in.u32("shape");
    d.w = in.u32("shape");
    if (d.c == 0 || d.h == 0 || d.w == 0 || d.c > max_model_dim || d.h > max_model_dim || d.w > max_model_dim ||
        d.size() > max_model_elements)
        in.fail(where + ": unsupported shape " + d.str());
    return d;
}

/// The output shape an operation must have, or a failure naming what is wrong.
inline dims3 expected_output(const sparse_op& op, byte_reader& in, const std::string& where) {
    const dims3 d = op.in;
    auto window = [&](std::size_t pad) {
        if (op.kernel == 0 || op.stride == 0 || op.kernel > 64 || op.stride > 64 || pad > 64 ||
            op.kernel > d.h + 2 * pad || op.kernel > d.w + 2 * pad)
            in.fail(where + ": window " + std::to_string(op.kernel) + ", stride " + std::to_string(op.stride) +
                    ", padding " + std::to_string(pad) + " does not fit the input " + d.str());
        return dims3{d.c, (d.h + 2 * pad - op.kernel) / op.stride + 1, (d.w + 2 * pad - op.kernel) / op.stride + 1};
    };
    switch (op.kind) {
        case op_kind::dense:
            if (op.cols() != d.size())
                in.fail(where + ": " + std::to_string(op.cols()) + " weight columns for an input of " + d.str());
            return {op.rows(), 1, 1};
        case op_kind::conv: {
            dims3 o = window(op.padding);
            if (op.cols() != d.c * op.kernel * op.kernel)
                in.fail(where + ": " + std::to_string(op.cols()) + " weight columns for " + std::to_string(d.c) +
                        " channels and a " + std::to_string(op.kernel) + "x" + std::to_string(op.kernel) + " kernel");
            if (op.cols() * o.h * o.w > max_model_elements) in.fail(where + ": unfolded input too large");
            o.c = op.rows();
            return o;
        }
        case op_kind::max_pool:
        case op_kind::avg_pool:
            if (op.padding != 0) in.fail(where + ": pooling has no padding");
            return window(0);
        case op_kind::reshape:
            if (op.out.size() != d.size()) in.fail(where + ": reshape changes the size of " + d.str());
            return op.out;
        case op_kind::lstm: {
            if (d.w != 1) in.fail(where + ": the input " + d.str() + " is not a sequence (steps, features, 1)");
            const std::size_t hidden = op.rows() / 4;
            if (op.rows() % 4 != 0 || op.cols() != d.h + hidden)
                in.fail(where + ": " + std::to_string(op.rows()) + " x " + std::to_string(op.cols()) +
                        " weights are not the 4H x (F + H) of an LSTM reading " + std::to_string(d.h) + " features");
            if (d.c * op.rows() * op.cols() > 4 * max_model_elements) in.fail(where + ": sequence too long for its weights");
            return {d.c, hidden, 1};
        }
        case op_kind::last_step:
            if (d.w != 1) in.fail(where + ": the input " + d.str() + " is not a sequence (steps, features, 1)");
            return {d.h, 1, 1};
        default: return d;
    }
}

}  // namespace detail

/// The exported model as bytes (the file's content).
inline std::string sparse_model_bytes(const sparse_model& m) {
    byte_writer out;
    auto dims = [&](const dims3& d) {
        out.u32(static_cast<std::uint32_t>(d.c));
        out.u32(static_cast<std::uint32_t>(d.h));
        out.u32(static_cast<std::uint32_t>(d.w));
    };
    dims(m.input);
    out.u64(m.ops.size());
    for (const auto& op : m.ops) {
        out.u8(static_cast<std::uint8_t>(op.kind));
        dims(op.in);
        dims(op.out);
        out.u32(static_cast<std::uint32_t>(op.kernel));
        out.u32(static_cast<std::uint32_t>(op.stride));
        out.u32(static_cast<std::uint32_t>(op.padding));
        if (!op.has_weights()) continue;
        out.floats(op.bias);
        detail::write_matrix(out, op.csr);
    }
    return frame(exported_model_kind.magic, exported_model_kind.version, out.bytes());
}

/// Parses and checks an exported model; `file` names the bytes in messages.
inline sparse_model parse_sparse_model(std::string_view bytes, const std::string& file) {
    byte_reader in(unframe(bytes, file, exported_model_kind, known_file_kinds), file);
    sparse_model m;
    m.input = detail::read_dims(in, "input");
    const std::uint64_t count = in.length("operation count", 37);
    if (count == 0) in.fail("the model has no operations");
    dims3 cur = m.input;
    std::uint64_t work = 0, outputs = 0, scratch = 0;  // per sample, for the bounds in sparse/op.hpp
    bool buffered = false;
    for (std::uint64_t i = 0; i < count; ++i) {
        sparse_op op;
        const std::string where = "operation " + std::to_string(i);
        const std::uint8_t kind = in.u8("operation kind");
        if (kind < 1 || kind > last_op_kind) in.fail(where + ": unknown operation kind " + std::to_string(kind));
        op.kind = static_cast<op_kind>(kind);
        op.in = detail::read_dims(in, where);
        op.out = detail::read_dims(in, where);
        op.kernel = in.u32("kernel");
        op.stride = in.u32("stride");
        op.padding = in.u32("padding");
        const std::string named = where + " (" + op_name(op.kind) + ")";
        if (!(op.in == cur)) in.fail(named + ": input shape " + op.in.str() + ", but the previous output is " + cur.str());
        if (op.has_weights()) {
            op.bias = in.floats("bias");
            op.csr = detail::read_matrix(in, named);
            if (op.bias.size() != op.rows())
                in.fail(named + ": " + std::to_string(op.bias.size()) + " biases for " + std::to_string(op.rows()) +
                        " outputs");
        }
        const dims3 expected = detail::expected_output(op, in, named);
        if (!(op.out == expected)) in.fail(named + ": output shape " + op.out.str() + ", expected " + expected.str());
        // Each figure is below 2^49 (shapes are bounded above) and the totals stop at the bounds: no overflow.
        const std::uint64_t cost = detail::op_work(op);
        work += cost;
        if (work > detail::max_model_work)
            in.fail(named + ": the model declares too much work per sample: " + std::to_string(cost) +
                    " arithmetic operations here bring the total to " + std::to_string(work) + ", above the limit of " +
                    std::to_string(detail::max_model_work) + " (dynsparse::detail::max_model_work)");
        // Outputs as the engine buffers them: a reshape changes nothing and an elementwise
        // operation runs in place once an earlier operation has produced a buffer.
        const bool elementwise = op.kind == op_kind::relu || op.kind == op_kind::tanh || op.kind == op_kind::sigmoid;
        if (op.kind != op_kind::reshape && !(elementwise && buffered)) outputs += op.out.size();
        buffered = buffered || op.kind != op_kind::reshape;
        scratch = std::max(scratch, detail::op_scratch(op));
        if (outputs + scratch > detail::max_model_activations)
            in.fail(named + ": the model declares too large activations per sample: " +
                    std::to_string(outputs + scratch) + " floats with this operation's output " + op.out.str() +
                    ", above the limit of " + std::to_string(detail::max_model_activations) +
                    " (dynsparse::detail::max_model_activations)");
        cur = op.out;
        m.ops.push_back(std::move(op));
    }
    in.expect_end();
    m.prepare();
    return m;
}

/// force: replace an existing file even if it is not an exported model (io/atomic_file.hpp).
inline void save_sparse_model(const sparse_model& m, const std::filesystem::path& path, bool force = false) {
    write_file_atomically(path, sparse_model_bytes(m), "exported model", exported_model_kind.magic, force);
}

inline sparse_model load_sparse_model(const std::filesystem::path& path) {
    return parse_sparse_model(read_binary_file(path), path.string());
}

}  // namespace dynsparse
