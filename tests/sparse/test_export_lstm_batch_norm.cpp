// Export of recurrent networks (lstm, masked_lstm, last_step) and of batch norm (folded
// into the convolution or dense layer before it): the engine computes what the network
// computes in evaluation mode, with every kernel; bad LSTM records are refused.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "dynsparse/sparse/export.hpp"
#include "dynsparse/layers/activations.hpp"
#include "dynsparse/layers/batch_norm.hpp"
#include "dynsparse/layers/dense.hpp"
#include "dynsparse/layers/lstm.hpp"
#include "dynsparse/layers/masked_conv2d.hpp"
#include "dynsparse/layers/masked_dense.hpp"
#include "dynsparse/layers/masked_lstm.hpp"
#include "dynsparse/layers/pooling.hpp"
#include "dynsparse/layers/reshape.hpp"
#include "dynsparse/models/vgg16_cifar.hpp"
#include "dynsparse/models/wide_resnet.hpp"
#include "dynsparse/sparse/model.hpp"

namespace ds = dynsparse;

namespace {

// Two stacked LSTMs, last step, a head: masked (unmasked or masked head) and plain.
struct masked_lstm_net : ds::sequential<ds::sequence_input<5, 3>, ds::masked_lstm<6>, ds::masked_lstm<4>,
                                        ds::last_step, ds::dense<3>> {};
struct masked_lstm_head_net : ds::sequential<ds::sequence_input<5, 3>, ds::masked_lstm<6>, ds::masked_lstm<4>,
                                             ds::last_step, ds::masked_dense<3>> {};
struct scalar_lstm_net : ds::sequential<ds::sequence_input<4, 7>, ds::masked_lstm<5, ds::long_tailed, ds::scalar>,
                                        ds::last_step, ds::relu, ds::masked_dense<2>> {};
struct plain_lstm_net : ds::sequential<ds::sequence_input<5, 3>, ds::lstm<6>, ds::lstm<4>, ds::last_step,
                                       ds::dense<3>> {};

// Batch norm after a convolution without bias (VGG's pattern), after a masked dense layer,
// with dropout in between (the identity at inference).
struct bn_net : ds::sequential<ds::input<2, 6, 6>, ds::masked_conv2d<4, 3, 1, 1, ds::long_tailed, ds::per_filter, ds::no_bias>,
                               ds::batch_norm, ds::relu, ds::max_pool2d<2>, ds::conv2d<3, 2>, ds::batch_norm, ds::tanh,
                               ds::flatten, ds::masked_dense<5>, ds::batch_norm, ds::relu, ds::dropout<20>,
                               ds::masked_dense<3>> {};
using small_vgg = ds::models::vgg16_cifar<ds::long_tailed, ds::per_filter, ds::per_neuron, 16>;
using small_vgg_dense = ds::models::vgg16_cifar_dense<16>;

// Batch norms the engine cannot fold: refused at compile time.
struct bn_first : ds::sequential<ds::input<4>, ds::batch_norm, ds::dense<2>> {};
struct bn_after_relu : ds::sequential<ds::input<4>, ds::dense<3>, ds::relu, ds::batch_norm, ds::dense<2>> {};
static_assert(!ds::ExportableNetwork<bn_first>);
static_assert(!ds::ExportableNetwork<bn_after_relu>);
static_assert(!ds::ExportableNetwork<ds::models::wide_resnet_16<1>>);  // residual blocks
static_assert(ds::ExportableNetwork<bn_net>);
static_assert(ds::ExportableNetwork<small_vgg>);

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

std::size_t argmax_row(const ds::matrix& y, std::size_t r) {
    std::size_t best = 0;
    for (std::size_t c = 1; c < y.shape(1); ++c)
        if (y(r, c) > y(r, best)) best = c;
    return best;
}

/// Random weights and biases; thresholds that mask about half the weights; the first
/// masked layer also gets a unit with no incoming weights (for an LSTM: all four gate rows).
template <class Net>
void sparsify(Net& net, std::uint64_t seed) {
    net.initialize(seed);
    ds::rng gen(seed + 1);
    bool first = true;
    net.for_each_masked_layer([&](auto& layer, std::size_t) {
        auto& w = layer.weight();
        const std::size_t rows = w.shape(0), cols = w.shape(1);
        float largest = 0;
        for (float v : w) largest = std::max(largest, std::fabs(v));
        for (auto& v : layer.threshold()) v = gen.uniform(0.3f, 0.7f) * largest;
        for (auto& b : layer.bias()) b = gen.uniform(-0.5f, 0.5f);
        if (first) {
            constexpr bool lstm = requires { std::remove_cvref_t<decltype(layer)>::gate_rows; };
            const std::size_t unit_rows = lstm ? 4 : 1;  // an LSTM unit has a row in each gate
            for (std::size_t g = 0; g < unit_rows; ++g)
                for (std::size_t j = 0; j < cols; ++j) w(g * (rows / unit_rows), j) = 0.0f;
        }
        first = false;
    });
}

/// Non-trivial evaluation statistics and affine parameters for every batch norm.
template <class Net>
void randomise_batch_norms(Net& net, std::uint64_t seed) {
    ds::rng gen(seed);
    net.for_each_layer([&](auto& layer, std::size_t) {
        if constexpr (requires { layer.running_var(); layer.gamma(); }) {
            for (auto& v : layer.gamma()) v = gen.uniform(0.5f, 1.5f);
            for (auto& v : layer.beta()) v = gen.uniform(-0.5f, 0.5f);
            for (auto& v : layer.running_mean()) v = gen.uniform(-0.5f, 0.5f);
            for (auto& v : layer.running_var()) v = gen.uniform(0.5f, 2.0f);
        }
    });
}

/// The exported model (and its file round trip) gives the network's evaluation outputs and
/// argmax at batch 1, 3 (gathered row dots) and 17 (feature-major), with every kernel.
template <class Net>
void check_export_matches(Net& net) {
    ds::sparse_model model = ds::export_sparse(net);
    ds::sparse_model loaded = ds::parse_sparse_model(ds::sparse_model_bytes(model), "m.dsm");
    CHECK(loaded.summary() == model.summary());
    for (std::size_t batch : {1, 3, 17}) {
        CAPTURE(batch);
        const ds::matrix x = random_batch(batch, Net::input_shape::size, batch + 100);
        const ds::matrix expected = net.forward(x, false);
        for (auto choice : {ds::kernel_choice::automatic, ds::kernel_choice::sparse, ds::kernel_choice::dense}) {
            CAPTURE(static_cast<int>(choice));
            const ds::matrix& y = model.run(x, choice);
            check_close(y, expected);
            for (std::size_t r = 0; r < batch; ++r) CHECK(argmax_row(y, r) == argmax_row(expected, r));
        }
        check_close(loaded.run(x), expected);
    }
}

}  // namespace

TEST_CASE_TEMPLATE("an exported LSTM network computes the network's outputs", Net, masked_lstm_net,
                   masked_lstm_head_net, scalar_lstm_net) {
    Net net;
    sparsify(net, 21);
    check_export_matches(net);
    // The masked weights are gone, and no LSTM unit was removed (not exact for an LSTM).
    const ds::sparse_model model = ds::export_sparse(net);
    std::size_t kept = 0;
    net.for_each_masked_layer([&](const auto& l, std::size_t) { kept += l.statistics().kept; });
    CHECK(model.nonzeros() <= kept + 3 * 4);  // plus the unmasked head's weights, if any
    CHECK(model.ops[0].kind == ds::op_kind::lstm);
    CHECK(model.ops[0].rows() == Net::template layer_type<0>::gate_rows);
}

TEST_CASE("an exported plain LSTM network computes the network's outputs") {
    plain_lstm_net net;
    net.initialize(5);
    check_export_matches(net);
    const ds::sparse_model model = ds::export_sparse(net);
    CHECK(model.ops[0].density() == 1.0);
    CHECK(model.ops[1].out == ds::dims3{5, 4, 1});
    CHECK(model.ops[2].kind == ds::op_kind::last_step);
}

TEST_CASE_TEMPLATE("batch norm folded into the layer before it gives the evaluation-mode outputs", Net, bn_net,
                   small_vgg, small_vgg_dense) {
    Net net;
    if constexpr (Net::masked_layer_count() > 0)
        sparsify(net, 9);
    else
        net.initialize(9);
    randomise_batch_norms(net, 10);
    check_export_matches(net);
    // No operation is left for the batch norms.
    const ds::sparse_model model = ds::export_sparse(net);
    std::size_t weighted = 0;
    for (const auto& op : model.ops) weighted += op.has_weights();
    CHECK(weighted == Net::masked_layer_count() + (std::is_same_v<Net, bn_net> ? 1 : 0) +
                          (std::is_same_v<Net, small_vgg_dense> ? 15 : 0));
}

TEST_CASE("export refuses a batch norm that does not follow a convolution or dense layer") {
    ds::batch_norm_layer<ds::shape<4>> bn;
    std::vector<ds::sparse_op> ops;
    CHECK_THROWS_WITH_AS(ds::detail::export_layer(ops, bn), doctest::Contains("must directly follow"),
                         ds::invalid_argument);
    ops.push_back(ds::sparse_op{});  // a relu
    ops.back().in = ops.back().out = {4, 1, 1};
    CHECK_THROWS_AS(ds::detail::export_layer(ops, bn), ds::invalid_argument);
}

TEST_CASE("a bad exported LSTM model is refused with a clear message") {
    masked_lstm_net net;
    sparsify(net, 4);
    const ds::sparse_model model = ds::export_sparse(net);
    REQUIRE(model.ops.size() == 4);
    const std::string good = ds::sparse_model_bytes(model);
    auto refused = [](const std::string& bytes, const char* message) {
        CHECK_THROWS_WITH_AS(ds::parse_sparse_model(bytes, "m.dsm"), doctest::Contains(message), ds::data_error);
    };
    auto edited = [&](auto edit) {
        ds::sparse_model m = model;
        edit(m);
        return ds::sparse_model_bytes(m);
    };
    SUBCASE("truncated file") { refused(good.substr(0, good.size() - 3), "m.dsm: truncated"); }
    SUBCASE("payload cut inside the LSTM records, with a valid checksum") {
        const std::string payload(ds::unframe(good, "m.dsm", ds::exported_model_kind));
        for (std::size_t cut : {payload.size() / 3, payload.size() / 2, payload.size() - 7}) {
            CAPTURE(cut);
            const std::string bad = ds::frame(ds::exported_model_kind.magic, ds::exported_model_kind.version,
                                              payload.substr(0, cut));
            refused(bad, "m.dsm");
            CHECK_THROWS_WITH(ds::parse_sparse_model(bad, "m.dsm"), doctest::Contains("truncated"));
        }
    }
    SUBCASE("weights that are not 4H x (F + H)") {
        refused(edited([](ds::sparse_model& m) {
                    m.ops[1].csr.cols += 1;
                }),
                "operation 1 (lstm): 16 x 11 weights are not the 4H x (F + H) of an LSTM reading 6 features");
    }
    SUBCASE("gate rows not a multiple of four") {
        refused(edited([](ds::sparse_model& m) {
                    m.ops[0].csr.rows -= 1;
                    m.ops[0].csr.row_start.pop_back();
                    m.ops[0].csr.row_start.back() = static_cast<std::uint32_t>(m.ops[0].csr.value.size());
                    m.ops[0].bias.pop_back();
                }),
                "are not the 4H x (F + H) of an LSTM");
    }
    SUBCASE("a wrong LSTM output shape") {
        refused(edited([](ds::sparse_model& m) { m.ops[0].out.h += 1; }), "operation 0 (lstm): output shape");
    }
    SUBCASE("a bias of the wrong length") {
        refused(edited([](ds::sparse_model& m) { m.ops[1].bias.pop_back(); }), "15 biases for 16 outputs");
    }
    SUBCASE("a last step of the wrong width") {
        refused(edited([](ds::sparse_model& m) { m.ops[2].out.c = 5; }), "operation 2 (last_step): output shape");
    }
    SUBCASE("an LSTM or last step on an input that is not a sequence") {
        ds::sparse_model m;
        m.input = {2, 3, 4};
        ds::sparse_op op;
        op.kind = ds::op_kind::last_step;
        op.in = m.input;
        op.out = {3, 1, 1};
        m.ops.push_back(op);
        refused(ds::sparse_model_bytes(m), "operation 0 (last_step): the input (2,3,4) is not a sequence");
        m.ops[0] = model.ops[0];
        m.ops[0].in = m.input;
        refused(ds::sparse_model_bytes(m), "operation 0 (lstm): the input (2,3,4) is not a sequence");
    }
}

TEST_CASE("csr_times_columns<true> adds W X to what the output holds") {
    ds::rng gen(8);
    const std::size_t rows = 5, cols = 7, n = 37;  // two 16-column blocks and a tail
    std::vector<float> w(rows * cols), x(cols * n), y(rows * n), before;
    for (auto& v : w) v = gen.uniform01() < 0.4f ? gen.uniform(-1.0f, 1.0f) : 0.0f;
    for (auto& v : x) v = gen.uniform(-1.0f, 1.0f);
    for (auto& v : y) v = gen.uniform(-1.0f, 1.0f);
    before = y;
    const ds::csr_matrix m = ds::csr_matrix::from_dense(w.data(), rows, cols);
    ds::csr_times_columns<true>(m, nullptr, x.data(), n, n, y.data(), n);
    for (std::size_t i = 0; i < rows; ++i)
        for (std::size_t j = 0; j < n; ++j) {
            double expected = before[i * n + j];
            for (std::size_t k = 0; k < cols; ++k) expected += double{w[i * cols + k]} * x[k * n + j];
            CHECK(y[i * n + j] == doctest::Approx(expected).epsilon(1e-5));
        }
}
