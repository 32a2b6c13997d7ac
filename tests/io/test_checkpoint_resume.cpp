// Exact resume of a network with every kind of state (io/checkpoint.hpp): masked
// convolutions inside a residual block (reset counts), batch norm (running statistics),
// dropout (its generator) and crop/flip augmentation (the trainer's generator). N epochs
// straight and N/2 + checkpoint file + load into a fresh network and trainer + N/2 must
// agree bit for bit, and so must the epoch after that.
#include <doctest/doctest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "dynsparse/data/cifar10.hpp"
#include "dynsparse/io/checkpoint.hpp"
#include "dynsparse/layers/activations.hpp"
#include "dynsparse/layers/batch_norm.hpp"
#include "dynsparse/layers/dropout.hpp"
#include "dynsparse/layers/masked_conv2d.hpp"
#include "dynsparse/layers/masked_dense.hpp"
#include "dynsparse/layers/pooling.hpp"
#include "dynsparse/network/residual.hpp"
#include "dynsparse/train/trainer.hpp"

namespace ds = dynsparse;
namespace fs = std::filesystem;

namespace {

// Every stateful part once, two masked layers inside the residual block.
struct stateful_resnet
    : ds::sequential<ds::input<2, 6, 6>, ds::masked_conv2d<4, 3, 1, 1>, ds::batch_norm, ds::relu,
                     ds::residual<ds::chain<ds::masked_conv2d<4, 3, 1, 1>, ds::batch_norm, ds::relu,
                                            ds::dropout<25>, ds::masked_conv2d<4, 3, 1, 1>>>,
                     ds::batch_norm, ds::relu, ds::global_avg_pool, ds::masked_dense<3>> {};

ds::dataset images(std::size_t n) {
    ds::rng gen(5);
    ds::dataset d;
    d.classes = 3;
    d.images = ds::make_matrix(n, 72);
    for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<std::uint8_t>(gen.below(3));
        d.labels.push_back(c);
        for (std::size_t f = 0; f < 72; ++f)
            d.images(i, f) = (f % 3 == c ? 1.0f : 0.0f) + gen.uniform(-0.5f, 0.5f);
    }
    return d;
}

/// Every augmented training batch a trainer produced (its shuffled, cropped, flipped rows).
using batch_log = std::vector<std::vector<float>>;

ds::train_config config(std::size_t epochs, const std::shared_ptr<batch_log>& log) {
    ds::train_config c;
    c.epochs = epochs;
    c.batch_size = 8;
    c.alpha = 5e-2f;  // strong enough that the masks change
    c.schedule = ds::constant_lr(0.05f);
    c.seed = 11;
    c.progress = false;
    ds::crop_flip_augmentation crop;
    crop.channels = 2;
    crop.height = crop.width = 6;
    crop.pad = 1;
    c.augment = [crop, log](ds::matrix& batch, ds::rng& gen) {
        crop(batch, gen);
        log->emplace_back(batch.begin(), batch.end());
    };
    return c;
}

using trainer_t = ds::trainer<stateful_resnet>;
ds::sgd optimizer() { return ds::sgd({.momentum = 0.9f, .weight_decay = 1e-4f}); }

std::vector<float> parameters_of(stateful_resnet& net) {
    std::vector<float> out;
    net.for_each_parameter([&](const ds::parameter& p) { out.insert(out.end(), p.value.begin(), p.value.end()); });
    return out;
}
std::vector<float> masked_weights_of(const trainer_t& t) {
    std::vector<float> out;
    for (const auto& l : t.masked_layers()) out.insert(out.end(), l.masked_weight().begin(), l.masked_weight().end());
    return out;
}
std::vector<float> running_statistics_of(stateful_resnet& net) {
    std::vector<float> out;
    net.visit_state([&](std::string_view, auto&& field) {
        if constexpr (std::is_same_v<std::remove_cvref_t<decltype(field)>, std::span<float>>)
            out.insert(out.end(), field.begin(), field.end());
    });
    return out;
}

}  // namespace

TEST_CASE("a residual network with batch norm, dropout and augmentation resumes bit for bit") {
    const auto data = images(48);  // 6 steps per epoch
    const std::size_t epochs = 4;

    auto straight_log = std::make_shared<batch_log>();
    stateful_resnet straight;
    straight.initialize(3);
    trainer_t a(straight, {}, optimizer(), config(epochs, straight_log));
    const auto history = a.fit(data, data);

    const fs::path dir = fs::temp_directory_path() / "dynsparse_test_checkpoint_resume";
    fs::remove_all(dir);
    fs::create_directories(dir);
    auto first_log = std::make_shared<batch_log>();
    stateful_resnet stopped;
    stopped.initialize(3);
    trainer_t b(stopped, {}, optimizer(), config(epochs / 2, first_log));
    b.fit(data, data);
    ds::save_checkpoint(b, dir / "half.ckpt");

    auto resumed_log = std::make_shared<batch_log>();
    stateful_resnet resumed;
    resumed.initialize(77);  // a different start: everything must come from the file
    trainer_t c(resumed, {}, optimizer(), config(epochs, resumed_log));
    ds::load_checkpoint(c, dir / "half.ckpt");
    CHECK(c.epoch() == epochs / 2);
    const auto rest = c.fit(data, data);
    fs::remove_all(dir);

    REQUIRE(rest.size() == epochs / 2);
    // The batches of the second half (shuffling, crops, flips) are the straight run's.
    REQUIRE(straight_log->size() == 24);
    REQUIRE(resumed_log->size() == 12);
    CHECK(std::equal(resumed_log->begin(), resumed_log->end(), straight_log->begin() + 12));
    for (std::size_t e = 0; e < rest.size(); ++e) {
        CHECK(rest[e].train_loss == history[e + epochs / 2].train_loss);
        CHECK(rest[e].eval.loss == history[e + epochs / 2].eval.loss);
        CHECK(rest[e].remaining == history[e + epochs / 2].remaining);
    }
    CHECK(parameters_of(resumed) == parameters_of(straight));
    CHECK(masked_weights_of(c) == masked_weights_of(a));
    CHECK(running_statistics_of(resumed) == running_statistics_of(straight));
    CHECK(c.global_step() == a.global_step());
    // Everything a checkpoint holds: optimizer buffers, reset counts, all generators.
    CHECK(ds::checkpoint_bytes(c) == ds::checkpoint_bytes(a));

    // The next epoch too: the same shuffled, augmented batches and dropout masks.
    a.train_epoch(data);
    c.train_epoch(data);
    REQUIRE(straight_log->size() == 30);
    CHECK(std::equal(resumed_log->begin() + 12, resumed_log->end(), straight_log->begin() + 24));
    CHECK(parameters_of(resumed) == parameters_of(straight));

    CHECK(history.back().remaining < 1.0);  // the masks did change: the test means something
}

TEST_CASE("the state protocol reaches into residual blocks: reset counts, statistics, dropout") {
    stateful_resnet net;
    std::vector<std::string> names;
    net.visit_state([&](std::string_view name, auto&&) { names.emplace_back(name); });
    // conv, bn; inside the block: conv, bn, dropout, conv; then bn and the dense layer.
    CHECK(names == std::vector<std::string>{"resets", "running_mean", "running_var", "resets",
                                            "running_mean", "running_var", "mask_rng", "resets",
                                            "running_mean", "running_var", "resets"});
}
