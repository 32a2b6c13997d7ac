// evaluate / predict / predict_proba on an exported model (sparse/evaluate.hpp): the
// batched loop users no longer write, checked against the trainer and the engine's run.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "dynsparse/sparse/evaluate.hpp"
#include "dynsparse/sparse/export.hpp"
#include "dynsparse/sparse/model.hpp"
#include "dynsparse/train/trainer.hpp"
#include "support/fixtures.hpp"

namespace ds = dynsparse;

TEST_CASE("evaluate(sparse_model) matches the trainer's evaluation, for any batch size") {
    const auto data = ds::testing::blobs(90, 4);
    ds::testing::tiny_dst net;
    net.initialize(3);
    ds::train_config cfg;
    cfg.epochs = 2;
    cfg.batch_size = 16;
    cfg.progress = false;
    cfg.alpha = 2e-2f;
    ds::trainer<ds::testing::tiny_dst> tr(net, {}, ds::sgd({.momentum = 0.9f}), cfg);
    tr.fit(data, data);
    const ds::evaluation want = tr.evaluate(data);

    ds::sparse_model m = ds::export_sparse(net);
    for (std::size_t batch : {1u, 7u, 1000u}) {
        CAPTURE(batch);
        const ds::evaluation got = ds::evaluate(m, data, batch);
        CHECK(got.samples == 90);
        CHECK(got.accuracy == doctest::Approx(want.accuracy));
        CHECK(got.loss == doctest::Approx(want.loss).epsilon(1e-4));

        const std::vector<std::size_t> k = ds::predict(m, data.images, batch);
        const ds::matrix p = ds::predict_proba(m, data.images, batch);
        const ds::matrix& y = m.run(data.images);
        REQUIRE(k.size() == 90);
        REQUIRE(p.shape(0) == 90);
        std::size_t correct = 0;
        for (std::size_t r = 0; r < 90; ++r) {
            const float* z = y.data() + r * 3;
            const auto top = static_cast<std::size_t>(std::max_element(z, z + 3) - z);
            CHECK(k[r] == top);
            correct += k[r] == data.labels[r];
            CHECK(p(r, 0) + p(r, 1) + p(r, 2) == doctest::Approx(1.0f));
            CHECK(p(r, top) >= p(r, (top + 1) % 3));
        }
        CHECK(100.0 * static_cast<double>(correct) / 90.0 == doctest::Approx(got.accuracy));
    }
}

TEST_CASE("evaluate(sparse_model) refuses data of the wrong width and a zero batch") {
    ds::testing::tiny_dst net;
    net.initialize(1);
    ds::sparse_model m = ds::export_sparse(net);
    ds::dataset wrong;
    wrong.images = ds::make_matrix(4, 5);
    wrong.labels.assign(4, 0);
    CHECK_THROWS_WITH_AS(ds::evaluate(m, wrong),
                         doctest::Contains("the model takes 8 inputs per sample, the data has 5"),
                         ds::invalid_argument);
    CHECK_THROWS_AS(ds::evaluate(m, ds::testing::blobs(4, 1), 0), ds::invalid_argument);
    CHECK(ds::evaluate(m, ds::dataset{}).samples == 0);
}
