// The generic trainer: determinism, divergence detection, the regulariser's effect, and
// a short learning test on real Fashion-MNIST that must show learning and pruning.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>

#include "dynsparse/data/dataset.hpp"
#include "dynsparse/layers/activations.hpp"
#include "dynsparse/layers/dense.hpp"
#include "dynsparse/layers/masked_dense.hpp"
#include "dynsparse/train/trainer.hpp"

namespace ds = dynsparse;

namespace {

struct tiny_dst : ds::sequential<ds::input<8>, ds::masked_dense<16>, ds::relu, ds::masked_dense<3>> {};

/// Three Gaussian blobs in 8 dimensions: learnable in a few steps.
ds::dataset blobs(std::size_t n, std::uint64_t seed) {
    ds::rng gen(seed);
    ds::dataset d;
    d.classes = 3;
    d.images = ds::make_matrix(n, 8);
    d.labels.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<std::uint8_t>(gen.below(3));
        d.labels[i] = c;
        for (std::size_t f = 0; f < 8; ++f)
            d.images(i, f) = (f % 3 == c ? 1.5f : 0.0f) + gen.uniform(-0.5f, 0.5f);
    }
    return d;
}

ds::train_config quiet_config(std::size_t epochs, float alpha, std::uint64_t seed = 1) {
    ds::train_config c;
    c.epochs = epochs;
    c.batch_size = 16;
    c.alpha = alpha;
    c.schedule = ds::constant_lr(0.05f);
    c.seed = seed;
    c.progress = false;
    return c;
}

template <class Net>
std::vector<float> all_parameters(Net& net) {
    std::vector<float> out;
    net.for_each_parameter([&](const ds::parameter& p) { out.insert(out.end(), p.value.begin(), p.value.end()); });
    return out;
}

}  // namespace

TEST_CASE("training is deterministic for a seed") {
    const auto data = blobs(200, 1);
    auto run = [&](std::uint64_t shuffle_seed) {
        tiny_dst net;
        net.initialize(3);
        ds::trainer<tiny_dst> tr(net, {}, ds::sgd({.momentum = 0.9f}), quiet_config(2, 1e-3f, shuffle_seed));
        tr.fit(data, data);
        return all_parameters(net);
    };
    const auto a = run(1), b = run(1), c = run(2);
    CHECK(a == b);
    CHECK(a != c);
}

TEST_CASE("the trainer learns separable data and the regulariser raises thresholds") {
    const auto train = blobs(600, 2), test = blobs(300, 3);
    tiny_dst net;
    net.initialize(1);
    ds::trainer<tiny_dst> tr(net, {}, ds::sgd({.momentum = 0.9f}), quiet_config(5, 2e-2f));
    const auto before = tr.evaluate(test);
    const auto history = tr.fit(train, test);
    REQUIRE(history.size() == 5);
    CHECK(history.back().eval.accuracy > 90.0);
    CHECK(history.back().eval.accuracy > before.accuracy);
    float mean_t = 0;
    net.for_each_masked_layer([&](auto& l, std::size_t) { mean_t += l.statistics().threshold_mean; });
    CHECK(mean_t > 0.0f);  // started at 0, pushed up by alpha * exp(-t)
    CHECK(history.back().remaining < 1.0);
    CHECK(history.back().layers.size() == 2);
    CHECK(history.back().train_seconds > 0.0);
}

TEST_CASE("a non-finite loss stops training with a message naming the step") {
    auto data = blobs(64, 4);
    data.images(40, 2) = std::numeric_limits<float>::quiet_NaN();  // in the 3rd batch of 16
    tiny_dst net;
    net.initialize(1);
    auto cfg = quiet_config(1, 0.0f);
    ds::trainer<tiny_dst> tr(net, {}, ds::sgd(), cfg);
    try {
        tr.fit(data, data);
        FAIL("expected training_diverged");
    } catch (const ds::training_diverged& e) {
        const std::string msg = e.what();
        CHECK(msg.find("epoch 1, step") != std::string::npos);
        CHECK(msg.find("of 4") != std::string::npos);
        CHECK(msg.find("nan") != std::string::npos);
    }
}

TEST_CASE("the trainer rejects data that does not fit the network") {
    auto data = blobs(10, 5);
    struct wide : ds::sequential<ds::input<9>, ds::dense<3>> {};
    wide net;
    net.initialize(1);
    ds::trainer<wide> tr(net, {}, ds::sgd(), quiet_config(1, 0.0f));
    CHECK_THROWS_WITH_AS(tr.fit(data, data), doctest::Contains("8 features per sample but the network's input takes 9"),
                         ds::invalid_argument);
}

TEST_CASE("learning test: DST LeNet-300-100 on a Fashion-MNIST subset learns and prunes") {
    const char* env = std::getenv("DYNSPARSE_DATA_DIR");
    const std::filesystem::path dir = env ? env : ds::default_fashion_mnist_directory;
    if (!std::filesystem::exists(dir)) {
        MESSAGE("Fashion-MNIST not found at " << dir.string() << "; install dataset-fashion-mnist");
        return;
    }
    struct lenet : ds::sequential<ds::input<784>, ds::masked_dense<300>, ds::relu,
                                  ds::masked_dense<100>, ds::relu, ds::masked_dense<10>> {};
    ds::train_test data = ds::load_mnist_directory(dir);
    ds::standardize(data);
    const ds::dataset train = ds::take(data.train, 0, 12000);
    const ds::dataset test = ds::take(data.test, 0, 2000);

    lenet net;
    net.initialize(1);
    ds::train_config cfg;
    cfg.epochs = 3;
    cfg.batch_size = 64;
    cfg.alpha = 2e-3f;  // stronger than the paper's 5e-4 so pruning shows in a short run
    cfg.schedule = ds::constant_lr(0.01f);
    cfg.progress = false;
    ds::trainer<lenet> tr(net, {}, ds::sgd({.momentum = 0.9f}), cfg);
    const double chance = tr.evaluate(test).accuracy;
    const auto history = tr.fit(train, test);
    const auto& last = history.back();
    MESSAGE("accuracy " << chance << "% -> " << last.eval.accuracy << "%, remaining "
                        << 100 * last.remaining << "%");
    CHECK(last.eval.accuracy > 78.0);
    CHECK(last.eval.accuracy > chance + 50.0);
    CHECK(last.remaining < 0.6);                        // pruned
    CHECK(history[0].remaining > last.remaining);       // and still pruning
    CHECK(last.layers[0].stats.remaining() < last.layers[2].stats.remaining());  // input layer first
    CHECK(std::isfinite(last.train_loss));
}
