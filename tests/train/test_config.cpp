// train/config.hpp: every setting of a run and of the optimizers is checked, and the
// message names the field and its value.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "dynsparse/train/config.hpp"
#include "dynsparse/train/trainer.hpp"
#include "support/fixtures.hpp"

namespace ds = dynsparse;

TEST_CASE("train_config::validate names the field and the value") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    ds::train_config ok;
    ok.validate();
    auto bad = [&](auto change, const char* text) {
        ds::train_config c;
        change(c);
        CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains(text), ds::invalid_argument);
    };
    bad([&](ds::train_config& c) { c.alpha = nan; }, "alpha = nan");
    bad([](ds::train_config& c) { c.alpha = -1; }, "alpha = -1");
    bad([](ds::train_config& c) { c.alpha = std::numeric_limits<float>::infinity(); }, "alpha = inf");
    bad([](ds::train_config& c) { c.schedule = ds::constant_lr(-1); }, "learning rate (schedule at epoch 0) = -1");
    bad([](ds::train_config& c) { c.schedule = ds::constant_lr(0); }, "= 0 is invalid");
    bad([&](ds::train_config& c) { c.schedule = ds::constant_lr(nan); }, "learning rate");
    bad([](ds::train_config& c) { c.epochs = 0; }, "epochs = 0");
    bad([](ds::train_config& c) { c.epochs = ds::train_config::max_epochs + 1; }, "epochs = 1e+06");
    bad([](ds::train_config& c) { c.batch_size = 0; }, "batch_size = 0");
}

TEST_CASE("optimizer options are validated") {
    CHECK_THROWS_WITH_AS(ds::validate(ds::sgd::options{.momentum = 5}), doctest::Contains("sgd: momentum = 5"),
                         ds::invalid_argument);
    CHECK_THROWS_AS(ds::validate(ds::sgd::options{.momentum = 1}), ds::invalid_argument);
    CHECK_THROWS_AS(ds::validate(ds::sgd::options{.momentum = -0.1f}), ds::invalid_argument);
    CHECK_THROWS_WITH_AS(ds::validate(ds::sgd::options{.momentum = 0.9f, .weight_decay = -5}),
                         doctest::Contains("sgd: weight_decay = -5"), ds::invalid_argument);
    ds::validate(ds::sgd::options{.momentum = 0.9f, .nesterov = true, .weight_decay = 1e-4f});
    CHECK_THROWS_WITH_AS(ds::validate(ds::adam::options{.beta1 = 1.0f}), doctest::Contains("adam: beta1 = 1"),
                         ds::invalid_argument);
    CHECK_THROWS_AS(ds::validate(ds::adam::options{.epsilon = 0}), ds::invalid_argument);
    CHECK_THROWS_AS(ds::validate(ds::adam::options{.weight_decay = std::nanf("")}), ds::invalid_argument);
    ds::validate(ds::adam::options{});
}

TEST_CASE("milestones and validation fractions are checked") {
    ds::validate_milestones({80, 120});
    CHECK_THROWS_WITH_AS(ds::validate_milestones({2, 1}), doctest::Contains("2 then 1"), ds::invalid_argument);
    CHECK_THROWS_AS(ds::validate_milestones({5, 5}), ds::invalid_argument);
    ds::validate_val_fraction(0.1f);
    CHECK_THROWS_AS(ds::validate_val_fraction(-0.5f), ds::invalid_argument);
    CHECK_THROWS_AS(ds::validate_val_fraction(std::nanf("")), ds::invalid_argument);
    CHECK_THROWS_AS(ds::validate_val_fraction(1.0f), ds::invalid_argument);
}

TEST_CASE("the trainer refuses an invalid configuration or SGD options on construction") {
    ds::testing::tiny_dst net;
    net.initialize(1);
    ds::train_config cfg;
    cfg.alpha = -1;
    using tr = ds::trainer<ds::testing::tiny_dst>;
    CHECK_THROWS_WITH_AS(tr(net, {}, ds::sgd{}, cfg), doctest::Contains("alpha = -1"), ds::invalid_argument);
    CHECK_THROWS_WITH_AS(tr(net, {}, ds::sgd({.momentum = 5}), ds::train_config{}), doctest::Contains("momentum = 5"),
                         ds::invalid_argument);
}
