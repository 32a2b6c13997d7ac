// The trainer's data-parallel path (train/data_parallel.hpp) without MPI: two "ranks" as
// two threads of this process, whose sum adds their buffers in a fixed order, against
// one process on the same global batches. Also the batch-size checks and the layer
// checksums of the divergence guard (distributed/checksum.hpp). The MPI version of these
// tests is tests/distributed/mpi_tests.cpp.
#include <doctest/doctest.h>

#include <barrier>
#include <cmath>
#include <thread>
#include <vector>

#include "dynsparse/distributed/checksum.hpp"
#include "dynsparse/io/checkpoint.hpp"
#include "dynsparse/train/trainer.hpp"
#include "support/fixtures.hpp"

namespace ds = dynsparse;

namespace {

/// Two threads summing buffers: both see slot 0 + slot 1, computed in that order.
struct thread_pair {
    std::barrier<> sync{2};
    std::vector<float> slot[2];
    std::vector<double> dslot[2];

    template <class T>
    void sum(std::vector<T> (&slots)[2], std::size_t rank, std::span<T> v) {
        slots[rank].assign(v.begin(), v.end());
        sync.arrive_and_wait();
        for (std::size_t i = 0; i < v.size(); ++i) v[i] = slots[0][i] + slots[1][i];
        sync.arrive_and_wait();
    }
    ds::data_parallel_hooks hooks(std::size_t rank) {
        ds::data_parallel_hooks h;
        h.rank = rank;
        h.ranks = 2;
        h.sum = [this, rank](std::span<float> v) { sum(slot, rank, v); };
        h.sum_doubles = [this, rank](std::span<double> v) { sum(dslot, rank, v); };
        return h;
    }
};

ds::train_config config(std::size_t batch) {
    ds::train_config c;
    c.batch_size = batch;
    c.progress = false;
    c.alpha = 5e-3f;
    c.schedule = ds::constant_lr(0.05f);
    return c;
}

std::vector<float> values(ds::testing::tiny_dst& net) {
    std::vector<float> v;
    net.for_each_parameter([&](const ds::parameter& p) { v.insert(v.end(), p.value.begin(), p.value.end()); });
    return v;
}

}  // namespace

TEST_CASE("share_of splits a batch into contiguous shares") {
    CHECK(ds::share_of(64, 0, 2).first == 0);
    CHECK(ds::share_of(64, 1, 2).first == 32);
    CHECK(ds::share_of(64, 1, 2).count == 32);
    CHECK(ds::share_of(7, 0, 3).count == 3);  // the first ranks take the remainder
    CHECK(ds::share_of(7, 1, 3).first == 3);
    CHECK(ds::share_of(7, 2, 3).first == 5);
    CHECK(ds::share_of(7, 2, 3).count == 2);
}

TEST_CASE("two data-parallel ranks train like one process on the same global batches") {
    const ds::dataset data = ds::testing::blobs(100, 3);  // a last batch of 4
    ds::testing::tiny_dst single, r0, r1;
    single.initialize(5);
    r0.initialize(5);
    r1.initialize(5);
    ds::trainer t(single, ds::softmax_cross_entropy{}, ds::sgd{}, config(16));
    ds::trainer t0(r0, ds::softmax_cross_entropy{}, ds::sgd{}, config(16));
    ds::trainer t1(r1, ds::softmax_cross_entropy{}, ds::sgd{}, config(16));
    thread_pair pair;
    t0.set_data_parallel(pair.hooks(0));
    t1.set_data_parallel(pair.hooks(1));
    std::size_t epochs_seen = 0;
    ds::data_parallel_hooks h1 = pair.hooks(1);
    h1.end_of_epoch = [&] { ++epochs_seen; };
    t1.set_data_parallel(h1);
    ds::epoch_report rep, rep0, rep1;
    ds::evaluation ev, ev0, ev1;
    for (int e = 0; e < 3; ++e) {
        rep = t.train_epoch(data);
        std::thread other([&] { rep1 = t1.train_epoch(data); ev1 = t1.evaluate(data); });
        rep0 = t0.train_epoch(data);
        ev0 = t0.evaluate(data);
        other.join();
    }
    ev = t.evaluate(data);
    CHECK(epochs_seen == 3);
    const auto a = values(single), b = values(r0), c = values(r1);
    CHECK(b == c);  // the replicas are bit identical
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        worst = std::max(worst, std::abs(double(a[i]) - double(b[i])) / (1 + std::abs(double(a[i]))));
    CHECK(worst < 1e-4);  // float sums over half batches, added: not bitwise one process's
    CHECK(worst > 0);     // (if it were, this test would not see the reassociation)
    CHECK(rep0.train_loss == rep1.train_loss);
    CHECK(rep0.train_loss == doctest::Approx(rep.train_loss).epsilon(1e-5));
    CHECK(ev0.accuracy == ev1.accuracy);
    CHECK(ev0.accuracy == doctest::Approx(ev.accuracy));
    CHECK(ev0.loss == doctest::Approx(ev.loss).epsilon(1e-5));
    CHECK(t0.global_step() == t.global_step());
}

TEST_CASE("data-parallel training refuses a batch that does not divide by the ranks") {
    ds::testing::tiny_dst net;
    net.initialize(1);
    thread_pair pair;
    ds::trainer t(net, ds::softmax_cross_entropy{}, ds::sgd{}, config(15));
    CHECK_THROWS_WITH_AS(t.set_data_parallel(pair.hooks(0)),
                         doctest::Contains("the global batch size 15 does not divide by the 2 processes"),
                         ds::invalid_argument);
    ds::trainer u(net, ds::softmax_cross_entropy{}, ds::sgd{}, config(16));
    u.set_data_parallel(pair.hooks(0));
    CHECK_THROWS_WITH_AS(u.train_epoch(ds::testing::blobs(17, 1)),
                         doctest::Contains("the last batch of the epoch has 1 samples, fewer than the 2"),
                         ds::invalid_argument);
    ds::data_parallel_hooks no_sum;
    no_sum.ranks = 2;
    CHECK_THROWS_AS(u.set_data_parallel(no_sum), ds::invalid_argument);
}

TEST_CASE("layer checksums tell equal replicas from a changed parameter, and name its layer") {
    ds::testing::tiny_dst a, b;
    a.initialize(3);
    b.initialize(3);
    ds::trainer ta(a, ds::softmax_cross_entropy{}, ds::sgd{}, config(16));
    ds::trainer tb(b, ds::softmax_cross_entropy{}, ds::sgd{}, config(16));
    const auto va = ds::checkpoint_view_of(ta), vb = ds::checkpoint_view_of(tb);
    CHECK(ds::distributed::layer_checksums(va) == ds::distributed::layer_checksums(vb));
    int seen = 0;
    b.for_each_layer([&](auto& layer, std::size_t i) {
        if (i == 2) layer.for_each_parameter([&](const ds::parameter& p) { if (seen++ == 0) p.value[0] += 1e-6f; });
    });
    const auto sa = ds::distributed::layer_checksums(va), sb = ds::distributed::layer_checksums(vb);
    REQUIRE(sa.size() == 3);
    CHECK(sa[0] == sb[0]);
    CHECK(sa[1] == sb[1]);
    CHECK(sa[2] != sb[2]);
    CHECK(ds::distributed::layer_label(vb, 2).find("layer 2 (masked_dense<3") == 0);
}
