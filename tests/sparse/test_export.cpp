// Export (sparse/export.hpp) and the sparse inference engine (sparse/): the exported model
// computes what the masked network computes, with either kernel, after dead neurons and
// filters are removed; its file round-trips; bad files are refused with clear messages.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "dynsparse/io/checkpoint.hpp"
#include "dynsparse/sparse/export.hpp"
#include "dynsparse/layers/activations.hpp"
#include "dynsparse/layers/dense.hpp"
#include "dynsparse/layers/masked_conv2d.hpp"
#include "dynsparse/layers/masked_dense.hpp"
#include "dynsparse/layers/pooling.hpp"
#include "dynsparse/layers/reshape.hpp"
#include "dynsparse/models/vgg16_cifar.hpp"
#include "dynsparse/sparse/model.hpp"
#include "dynsparse/train/trainer.hpp"
#include "support/fixtures.hpp"

namespace ds = dynsparse;

namespace {

// Convolutions without padding, so dead filters are folded and removed.
struct conv_net : ds::sequential<ds::input<2, 9, 9>, ds::masked_conv2d<5, 3>, ds::relu, ds::max_pool2d<2, 1>,
                                 ds::masked_conv2d<4, 2, 2>, ds::relu, ds::flatten, ds::masked_dense<7>,
                                 ds::relu, ds::masked_dense<3>> {};
// Padded convolutions (a dead filter with a non-zero output cannot be folded), tanh,
// sigmoid, average pooling and an unmasked dense layer.
struct padded_net : ds::sequential<ds::input<1, 6, 6>, ds::masked_conv2d<4, 3, 1, 1>, ds::tanh,
                                   ds::masked_conv2d<3, 3, 1, 1>, ds::sigmoid, ds::avg_pool2d<2>, ds::flatten,
                                   ds::dense<5>, ds::relu, ds::masked_dense<2>> {};

/// Random weights, thresholds that mask about half of them, one unit with no incoming
/// weights and one with no outgoing weights in every masked layer but the last.
template <class Net>
void sparsify(Net& net, std::uint64_t seed) {
    net.initialize(seed);
    ds::rng gen(seed + 1);
    std::size_t index = 0;
    net.for_each_masked_layer([&](auto& layer, std::size_t) {
        auto& w = layer.weight();
        auto& t = layer.threshold();
        const std::size_t rows = w.shape(0), cols = w.shape(1);
        for (auto& v : t) v = gen.uniform(0.2f, 0.8f) / std::sqrt(static_cast<float>(cols));
        for (auto& b : layer.bias()) b = gen.uniform(-0.3f, 0.3f);
        if (index + 1 < Net::masked_layer_count()) {
            for (std::size_t j = 0; j < cols; ++j) w(rows - 1, j) = 0.0f;  // no inputs
        }
        if (index > 0) {
            for (std::size_t i = 0; i < rows; ++i) w(i, 0) = 0.0f;  // input 0 (of unit 0 before) unused
        }
        ++index;
    });
}

ds::matrix random_batch(std::size_t batch, std::size_t features, std::uint64_t seed) {
    ds::rng gen(seed);
    ds::matrix x = ds::make_matrix(batch, features);
    for (auto& v : x) v = gen.uniform(-1.0f, 1.0f);
    return x;
}

void check_close(const ds::matrix& a, const ds::matrix& b) {
    REQUIRE(a.shape(0) == b.shape(0));
    REQUIRE(a.shape(1) == b.shape(1));
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(a.data()[i] == doctest::Approx(b.data()[i]).epsilon(1e-4).scale(1.0));
}

}  // namespace

TEST_CASE_TEMPLATE("an exported model computes the masked network's outputs with every kernel", Net, conv_net,
                   padded_net, ds::testing::tiny_dst) {
    Net net;
    sparsify(net, 11);
    ds::sparse_model model = ds::export_sparse(net);
    CHECK(model.nonzeros() > 0);
    for (std::size_t batch : {1, 3, 17}) {
        const ds::matrix x = random_batch(batch, Net::input_shape::size, batch);
        const ds::matrix expected = net.forward(x, false);
        for (auto choice : {ds::kernel_choice::automatic, ds::kernel_choice::sparse, ds::kernel_choice::dense}) {
            CAPTURE(batch);
            check_close(model.run(x, choice), expected);
        }
    }
    // The file round-trips to the same results.
    ds::sparse_model loaded = ds::parse_sparse_model(ds::sparse_model_bytes(model), "m.dsm");
    const ds::matrix x = random_batch(5, Net::input_shape::size, 42);
    check_close(loaded.run(x), model.run(x));
    CHECK(loaded.summary() == model.summary());
}

TEST_CASE("export removes units without inputs or outputs and drops the masked weights") {
    conv_net net;
    sparsify(net, 3);
    const ds::sparse_model model = ds::export_sparse(net);
    // Each masked layer but the last lost its unit without inputs; conv 1 and the first dense
    // layer also lost unit 0, whose outgoing weights are zero in the next layer.
    REQUIRE(model.ops.size() == 9);
    CHECK(model.ops[0].rows() < 5);
    CHECK(model.ops[3].rows() < 4);
    CHECK(model.ops[6].rows() < 7);
    CHECK(model.ops[8].rows() == 3);
    CHECK(model.ops[3].in.c == model.ops[0].rows());
    std::size_t kept = 0;
    net.for_each_masked_layer([&](const auto& l, std::size_t) { kept += l.statistics().kept; });
    CHECK(model.nonzeros() < kept);  // pruning removed more than the mask
}

TEST_CASE("the CSR kernels equal a dense product") {
    ds::rng gen(5);
    const std::size_t rows = 9, cols = 13, n = 6;
    std::vector<float> w(rows * cols), x(cols * n), b(rows);
    for (auto& v : w) v = gen.uniform01() < 0.3f ? gen.uniform(-1.0f, 1.0f) : 0.0f;
    for (auto& v : x) v = gen.uniform(-1.0f, 1.0f);
    for (auto& v : b) v = gen.uniform(-1.0f, 1.0f);
    const ds::csr_matrix m = ds::csr_matrix::from_dense(w.data(), rows, cols);
    CHECK(m.to_dense() == w);
    std::vector<float> y(rows * n), y1(rows), column(cols);
    ds::csr_times_columns(m, b.data(), x.data(), n, n, y.data(), n);
    for (std::size_t j = 0; j < n; ++j) {
        for (std::size_t k = 0; k < cols; ++k) column[k] = x[k * n + j];
        ds::csr_rows_dot(m, b.data(), column.data(), y1.data());
        for (std::size_t i = 0; i < rows; ++i) {
            double expected = b[i];
            for (std::size_t k = 0; k < cols; ++k) expected += double{w[i * cols + k]} * x[k * n + j];
            CHECK(y[i * n + j] == doctest::Approx(expected).epsilon(1e-5));
            CHECK(y1[i] == doctest::Approx(expected).epsilon(1e-5));
        }
    }
}

TEST_CASE("a bad exported model is refused with a clear message") {
    conv_net net;
    sparsify(net, 7);
    const ds::sparse_model model = ds::export_sparse(net);
    const std::string good = ds::sparse_model_bytes(model);
    auto refused = [](const std::string& bytes, const char* message) {
        CHECK_THROWS_WITH_AS(ds::parse_sparse_model(bytes, "m.dsm"), doctest::Contains(message), ds::data_error);
    };
    auto edited = [&](auto edit) {
        ds::sparse_model m = model;
        edit(m);
        return ds::sparse_model_bytes(m);
    };
    SUBCASE("truncated") { refused(good.substr(0, good.size() - 5), "m.dsm: truncated"); }
    SUBCASE("corrupted") {
        std::string bad = good;
        bad[40] ^= 1;
        refused(bad, "m.dsm: checksum mismatch");
    }
    SUBCASE("wrong version") {
        std::string bad = good;
        bad[8] = 2;
        refused(bad, "unsupported dynsparse exported model version 2");
    }
    SUBCASE("a checkpoint instead") {
        ds::trainer<conv_net> tr(net, {}, ds::sgd(), {});
        refused(ds::checkpoint_bytes(tr), "m.dsm: this is a dynsparse checkpoint, not a dynsparse exported model");
    }
    SUBCASE("a column out of range") {
        REQUIRE(model.ops[6].density() < 0.5);  // written as CSR
        refused(edited([](ds::sparse_model& m) { m.ops[6].csr.column[0] = 999; }), "column 999 out of range");
    }
    SUBCASE("shapes that do not chain") {
        refused(edited([](ds::sparse_model& m) { m.ops[1].in.c += 1; }),
                "operation 1 (relu): input shape");
    }
    SUBCASE("a wrong output shape") {
        refused(edited([](ds::sparse_model& m) { m.ops[2].out.h += 1; }), "operation 2 (max_pool): output shape");
    }
    SUBCASE("row starts out of order") {
        refused(edited([](ds::sparse_model& m) { std::swap(m.ops[6].csr.row_start[1], m.ops[6].csr.row_start[2]); }),
                "row starts decrease");
    }
    SUBCASE("a bias of the wrong length") {
        refused(edited([](ds::sparse_model& m) { m.ops[8].bias.pop_back(); }), "2 biases for 3 outputs");
    }
    SUBCASE("an input of the wrong width is refused by the engine") {
        ds::sparse_model m = model;
        CHECK_THROWS_AS(m.run(ds::make_matrix(2, 5)), ds::invalid_argument);
    }
}

namespace {

// A model of `count` weightless operations of `kind` (window k, stride 1) on `input`.
ds::sparse_model weightless_chain(ds::dims3 input, ds::op_kind kind, std::size_t k, std::size_t count) {
    ds::sparse_model m;
    m.input = input;
    ds::dims3 cur = input;
    for (std::size_t i = 0; i < count; ++i) {
        ds::sparse_op op;
        op.kind = kind;
        op.in = cur;
        op.kernel = k;
        op.stride = 1;
        op.out = {cur.c, cur.h - k + 1, cur.w - k + 1};
        cur = op.out;
        m.ops.push_back(op);
    }
    return m;
}

}  // namespace

TEST_CASE("a small model file that declares too much work or too large activations is refused") {
    SUBCASE("work: one 64x64 max pooling on a 1087x1087 image, 4.3e9 comparisons per sample from 60 bytes") {
        const std::string bytes = ds::sparse_model_bytes(weightless_chain({1, 1087, 1087}, ds::op_kind::max_pool, 64, 1));
        CHECK(bytes.size() < 200);
        CHECK_THROWS_WITH_AS(ds::parse_sparse_model(bytes, "m.dsm"),
                             doctest::Contains("m.dsm: operation 0 (max_pool): the model declares too much work per "
                                               "sample: 4294967296 arithmetic operations here bring the total to 4294967296, "
                                               "above the limit of 1073741824"),
                             ds::data_error);
    }
    SUBCASE("work adds up over operations: 100 relu passes over 2^24 values") {
        ds::sparse_model m = weightless_chain({16, 1024, 1024}, ds::op_kind::relu, 1, 100);
        CHECK_THROWS_WITH_AS(ds::parse_sparse_model(ds::sparse_model_bytes(m), "m.dsm"),
                             doctest::Contains("m.dsm: operation 64 (relu): the model declares too much work"),
                             ds::data_error);
    }
    SUBCASE("activations: five 2^24-float outputs per sample") {
        const auto ok = weightless_chain({16, 1024, 1024}, ds::op_kind::avg_pool, 1, 4);  // exactly 2^26 floats
        CHECK(ds::parse_sparse_model(ds::sparse_model_bytes(ok), "m.dsm").ops.size() == 4);
        const auto bad = weightless_chain({16, 1024, 1024}, ds::op_kind::avg_pool, 1, 5);
        CHECK_THROWS_WITH_AS(ds::parse_sparse_model(ds::sparse_model_bytes(bad), "m.dsm"),
                             doctest::Contains("m.dsm: operation 4 (avg_pool): the model declares too large "
                                               "activations per sample: 83886080 floats with this operation's "
                                               "output (16,1024,1024), above the limit of 67108864"),
                             ds::data_error);
    }
    SUBCASE("a convolution is counted at its dense cost: 8 empty 3x3 convolutions of 64 channels on 64x64") {
        ds::sparse_model m;
        m.input = {64, 64, 64};
        for (std::size_t i = 0; i < 8; ++i) {
            ds::sparse_op op;
            op.kind = ds::op_kind::conv;
            op.in = op.out = m.input;
            op.kernel = 3;
            op.stride = 1;
            op.padding = 1;
            op.bias.assign(64, 0.0f);
            op.csr.rows = 64;
            op.csr.cols = 64 * 9;
            op.csr.row_start.assign(65, 0);
            m.ops.push_back(op);
        }
        // 65 * 576 * 4096 = 153,354,240 per convolution: the 8th passes 2^30.
        CHECK_THROWS_WITH_AS(ds::parse_sparse_model(ds::sparse_model_bytes(m), "m.dsm"),
                             doctest::Contains("m.dsm: operation 7 (conv): the model declares too much work per "
                                               "sample: 153354240 arithmetic operations here bring the total to 1226833920"),
                             ds::data_error);
        m.ops.resize(7);
        CHECK(ds::parse_sparse_model(ds::sparse_model_bytes(m), "m.dsm").ops.size() == 7);
    }
}

TEST_CASE("the largest shipped exportable model, VGG-16 on CIFAR-10, loads well within the bounds") {
    ds::models::vgg16_cifar<> net;
    net.initialize(3);
    const ds::sparse_model m = ds::parse_sparse_model(ds::sparse_model_bytes(ds::export_sparse(net)), "vgg.dsm");
    std::uint64_t work = 0, outputs = 0, scratch = 0;
    for (const auto& op : m.ops) {
        work += ds::detail::op_work(op);
        outputs += op.out.size();
        scratch = std::max(scratch, ds::detail::op_scratch(op));
    }
    INFO("work " << work << ", activations at most " << outputs + scratch);
    CHECK(work > 300000000);  // the dense count: 3.1e8 multiply-adds in its convolutions
    CHECK(3 * work < ds::detail::max_model_work);
    CHECK(10 * (outputs + scratch) < ds::detail::max_model_activations);
}
