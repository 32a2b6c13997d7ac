// Epoch callbacks that control a run (train/epoch_control.hpp): reduce_on_plateau scales
// the learning rate of the epochs after a plateau, early_stopping ends the run.
#include <doctest/doctest.h>

#include <utility>
#include <vector>

#include "dynsparse/io/checkpoint.hpp"
#include "dynsparse/train/epoch_control.hpp"
#include "dynsparse/train/trainer.hpp"
#include "support/fixtures.hpp"

namespace ds = dynsparse;

namespace {

ds::epoch_report with_loss(double loss) {
    ds::epoch_report r;
    r.eval.loss = loss;
    return r;
}

}  // namespace

TEST_CASE("reduce_on_plateau scales the schedule after `patience` epochs without improvement") {
    ds::reduce_on_plateau plateau(ds::constant_lr(0.1f), {.factor = 0.5f, .patience = 2, .min_delta = 0.01});
    const ds::lr_schedule lr = plateau.schedule();
    CHECK(lr(0, 10) == 0.1f);
    for (double loss : {1.0, 0.9, 0.895, 0.95}) plateau(with_loss(loss));  // 0.895: within min_delta
    CHECK(plateau.reductions() == 1);
    CHECK(plateau.scale() == 0.5f);
    CHECK(lr(4, 10) == 0.05f);  // the copy in a train_config sees the new scale
    plateau(with_loss(0.99));
    CHECK(plateau.reductions() == 1);  // waits `patience` epochs again
    plateau(with_loss(0.99));
    CHECK(plateau.scale() == 0.25f);
    plateau(with_loss(0.5));
    plateau(with_loss(0.6));
    CHECK(plateau.scale() == 0.25f);  // improved, then one bad epoch
    CHECK_THROWS_AS(ds::reduce_on_plateau(ds::constant_lr(0.1f), {.factor = 1.0f}), ds::invalid_argument);
    CHECK_THROWS_AS(ds::reduce_on_plateau(ds::constant_lr(0.1f), {.patience = 0}), ds::invalid_argument);
}

TEST_CASE("early_stopping stops once the loss stalls for `patience` epochs") {
    ds::early_stopping stop({.patience = 2});
    CHECK(stop(with_loss(1.0)) == ds::epoch_action::proceed);
    CHECK(stop(with_loss(1.1)) == ds::epoch_action::proceed);
    CHECK(stop(with_loss(0.8)) == ds::epoch_action::proceed);
    CHECK(stop(with_loss(0.8)) == ds::epoch_action::proceed);
    CHECK(stop(with_loss(0.9)) == ds::epoch_action::stop);
    CHECK(stop.best_loss() == 0.8);
}

TEST_CASE("a trainer runs its next epochs at the reduced rate, and early stopping ends it") {
    const auto data = ds::testing::blobs(48, 1);
    ds::testing::tiny_dst net;
    net.initialize(2);
    ds::reduce_on_plateau plateau(ds::constant_lr(0.05f), {.factor = 0.5f, .patience = 1, .min_delta = 0.02});
    ds::train_config cfg;
    cfg.epochs = 30;
    cfg.batch_size = 16;
    cfg.progress = false;
    cfg.schedule = plateau.schedule();
    ds::trainer<ds::testing::tiny_dst> tr(net, {}, ds::sgd(), cfg);
    ds::early_stopping stop({.patience = 3, .min_delta = 0.02});
    std::vector<float> scale_after;
    const auto history = tr.fit(data, data, [&](const ds::epoch_report& r) {
        plateau(r);
        scale_after.push_back(plateau.scale());
        return stop(r);
    });
    REQUIRE(history.size() >= 2);
    CHECK(history.size() < 30);  // blobs converge: the loss stalls
    CHECK(plateau.reductions() > 0);
    for (std::size_t e = 1; e < history.size(); ++e)
        CHECK(history[e].learning_rate == 0.05f * scale_after[e - 1]);
}

TEST_CASE("a checkpoint saved after a reduction is refused by a run at the base rate") {
    const auto data = ds::testing::blobs(32, 2);
    auto make_config = [](ds::lr_schedule s) {
        ds::train_config cfg;
        cfg.epochs = 4;
        cfg.batch_size = 16;
        cfg.progress = false;
        cfg.schedule = std::move(s);
        return cfg;
    };
    // min_delta 1e9: no epoch after the first counts as an improvement.
    ds::reduce_on_plateau plateau(ds::constant_lr(0.05f), {.factor = 0.5f, .patience = 1, .min_delta = 1e9});
    ds::testing::tiny_dst net;
    net.initialize(1);
    ds::trainer<ds::testing::tiny_dst> tr(net, {}, ds::sgd(), make_config(plateau.schedule()));
    tr.fit(data, data, plateau, 2);
    REQUIRE(plateau.scale() == 0.5f);  // reduced after epoch 2
    const auto bytes = ds::checkpoint_bytes(tr);

    ds::testing::tiny_dst again;
    ds::trainer<ds::testing::tiny_dst> fresh(again, {}, ds::sgd(), make_config(ds::constant_lr(0.05f)));
    CHECK_THROWS_WITH(ds::restore_checkpoint(fresh, bytes, "plateau.ckpt"),
                      doctest::Contains("would train epoch 3 at learning rate 0.025000, this one at 0.050000"));
    ds::trainer<ds::testing::tiny_dst> same(again, {}, ds::sgd(), make_config(plateau.schedule()));
    ds::restore_checkpoint(same, bytes, "plateau.ckpt");
    CHECK(same.epoch() == 2);
}
