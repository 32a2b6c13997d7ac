// The MPI tests (built with -DDYNSPARSE_WITH_MPI=ON, run by ctest under
// `mpirun -np 2`): data-parallel DST on two ranks against one process, the divergence
// guard, the batch-size check, resuming across rank counts. Its own main: MPI_Init before
// doctest, and the exit status agreed by all ranks.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <dynsparse/distributed/mpi.hpp>
#include <dynsparse/dynsparse.hpp>

#include <cmath>
#include <string>
#include <vector>

namespace ds = dynsparse;
namespace dd = dynsparse::distributed;

namespace {

// Every layer kind the trainer treats differently: masked and plain convolution, batch
// norm, pooling, dropout, masked and plain dense layers.
struct every_kind : ds::sequential<ds::input<2, 6, 6>, ds::masked_conv2d<4, 3, 1, 1, ds::long_tailed, ds::per_filter, ds::no_bias>,
                                   ds::batch_norm, ds::relu, ds::max_pool2d<2>, ds::conv2d<3, 2>, ds::tanh,
                                   ds::flatten, ds::masked_dense<8>, ds::relu, ds::dropout<20>, ds::dense<6>,
                                   ds::relu, ds::masked_dense<3>> {};
// No per-batch statistics and no dropout: one process and two ranks compute the same
// gradients up to the order of the float sums over the batch.
struct conv_dense : ds::sequential<ds::input<2, 6, 6>, ds::masked_conv2d<4, 3, 1, 1>, ds::relu,
                                   ds::max_pool2d<2>, ds::flatten, ds::masked_dense<8>, ds::relu,
                                   ds::masked_dense<3>> {};
struct recurrent : ds::sequential<ds::sequence_input<6, 12>, ds::masked_lstm<6>, ds::last_step,
                                  ds::masked_dense<3>> {};

ds::dataset labelled_noise(std::size_t n, std::size_t features, std::uint64_t seed) {
    ds::rng gen(seed);
    ds::dataset d;
    d.classes = 3;
    d.images = ds::make_matrix(n, features);
    d.labels.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        const auto c = static_cast<std::uint8_t>(gen.below(3));
        d.labels[i] = c;
        for (std::size_t f = 0; f < features; ++f)
            d.images(i, f) = (f % 3 == c ? 1.0f : 0.0f) + gen.uniform(-1.0f, 1.0f);
    }
    return d;
}

ds::train_config config(std::size_t epochs, std::size_t batch) {
    ds::train_config c;
    c.epochs = epochs;
    c.batch_size = batch;
    c.progress = false;
    c.log = nullptr;
    c.alpha = 5e-3f;
    c.schedule = ds::constant_lr(0.05f);
    c.seed = 7;
    return c;
}

template <class Net>
std::vector<float> values(Net& net) {
    std::vector<float> v;
    net.for_each_parameter([&](const ds::parameter& p) { v.insert(v.end(), p.value.begin(), p.value.end()); });
    return v;
}

ds::sgd momentum_sgd() {
    ds::sgd::options o;
    o.momentum = 0.9f;  // optimizer state that a resume must carry
    return ds::sgd(o);
}

dd::mpi_communicator& world() {
    static dd::mpi_communicator w;
    return w;
}

/// Largest |a - b| / (1 + |a|).
double max_relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        m = std::max(m, std::abs(double(a[i]) - double(b[i])) / (1.0 + std::abs(double(a[i]))));
    return m;
}

/// One process and N ranks on the same global batches: close parameters, same masks.
template <class Net>
void compare_with_one_process(std::size_t features, std::size_t epochs) {
    const ds::dataset data = labelled_noise(96, features, 3);
    Net single, parallel;
    single.initialize(5);
    parallel.initialize(world().rank() == 0 ? 5 : 99);  // rank 0's broadcast must win
    ds::trainer t1(single, ds::softmax_cross_entropy{}, ds::sgd{}, config(epochs, 16));
    ds::trainer tn(parallel, ds::softmax_cross_entropy{}, ds::sgd{}, config(epochs, 16));
    dd::attach(tn, world());
    CHECK(tn.data_parallel().ranks == world().size());
    std::vector<ds::epoch_report> r1, rn;
    for (std::size_t e = 0; e < epochs; ++e) {
        r1.push_back(t1.train_epoch(data));
        rn.push_back(tn.train_epoch(data));
    }
    CHECK(tn.global_step() == t1.global_step());
    // Float sums over a batch split in two and added differ from one sum over the batch in
    // the last bits; a few steps keep that far below 1e-4.
    CHECK(max_relative_difference(values(single), values(parallel)) < 1e-4);
    for (std::size_t e = 0; e < epochs; ++e)
        CHECK(std::abs(r1[e].train_loss - rn[e].train_loss) < 1e-4 * (1 + r1[e].train_loss));
    const auto l1 = ds::layer_reports(t1.masked_layers()), ln = ds::layer_reports(tn.masked_layers());
    REQUIRE(l1.size() == ln.size());
    for (std::size_t i = 0; i < l1.size(); ++i) CHECK(l1[i].stats.kept == ln[i].stats.kept);
    // Evaluation split across ranks and summed: the same accuracy, the loss to rounding.
    const ds::evaluation e1 = t1.evaluate(data), en = tn.evaluate(data);
    CHECK(en.samples == e1.samples);
    CHECK(en.accuracy == doctest::Approx(e1.accuracy));
    CHECK(en.loss == doctest::Approx(e1.loss).epsilon(1e-5));
}

}  // namespace

TEST_CASE("two ranks train like one process on the same global batches (convolution, dense)") {
    compare_with_one_process<conv_dense>(72, 3);
}

TEST_CASE("two ranks train like one process on the same global batches (LSTM)") {
    compare_with_one_process<recurrent>(72, 3);
}

TEST_CASE("the ranks stay bit identical over 50 steps of a network with every layer kind") {
    const ds::dataset data = labelled_noise(160, 72, 11);  // 10 steps per epoch
    every_kind net;
    net.initialize(world().rank() + 1);  // different on purpose: attach broadcasts rank 0's
    ds::trainer t(net, ds::softmax_cross_entropy{}, ds::sgd{}, config(5, 16));
    dd::attach(t, world());
    for (int e = 0; e < 5; ++e) CHECK_NOTHROW(t.train_epoch(data));  // the guard checks each epoch
    CHECK(t.global_step() == 50);
    // Checked once more here: the maximum of the checksums equals every rank's.
    std::vector<std::uint64_t> sums = dd::layer_checksums(ds::checkpoint_view_of(t)), top = sums;
    world().max(top);
    CHECK(top == sums);
}

TEST_CASE("the divergence guard names the first layer that differs") {
    conv_dense net;
    net.initialize(2);
    ds::trainer t(net, ds::softmax_cross_entropy{}, ds::sgd{}, config(1, 16));
    dd::attach(t, world());
    const ds::checkpoint_view view = ds::checkpoint_view_of(t);
    CHECK_NOTHROW(dd::check_replicas(view, world(), 0));
    // One weight of the masked dense layer (top-level layer 4) changed on the last rank.
    int i = 0;
    net.for_each_layer([&](auto& layer, std::size_t index) {
        if (index != 4) return;
        layer.for_each_parameter([&](const ds::parameter& p) {
            if (i++ == 0 && world().rank() + 1 == world().size()) p.value[3] += 1e-3f;
        });
    });
    CHECK_THROWS_WITH_AS(dd::check_replicas(view, world(), 4),
                         doctest::Contains("after epoch 4, layer 4 (masked_dense"), dd::replicas_diverged);
}

TEST_CASE("a global batch that does not divide by the ranks is refused") {
    conv_dense net;
    net.initialize(2);
    ds::trainer t(net, ds::softmax_cross_entropy{}, ds::sgd{}, config(1, 17));
    CHECK_THROWS_WITH_AS(dd::attach(t, world()),
                         doctest::Contains("the global batch size 17 does not divide by the 2 processes"),
                         ds::invalid_argument);
    // The last batch of an epoch may be smaller, but not smaller than the number of ranks.
    ds::trainer u(net, ds::softmax_cross_entropy{}, ds::sgd{}, config(1, 16));
    dd::attach(u, world());
    CHECK_THROWS_WITH_AS(u.train_epoch(labelled_noise(33, 72, 1)), doctest::Contains("the last batch of the epoch has 1 samples"),
                         ds::invalid_argument);
}

TEST_CASE("a one-process checkpoint resumes on two ranks and back") {
    const ds::dataset data = labelled_noise(96, 72, 4);
    // Two epochs straight in one process ...
    conv_dense a;
    a.initialize(8);
    ds::trainer ta(a, ds::softmax_cross_entropy{}, momentum_sgd(), config(3, 16));
    ta.train_epoch(data);
    const std::string after_one = ds::checkpoint_bytes(ta);
    ta.train_epoch(data);
    ta.train_epoch(data);
    // ... against one epoch, then the second on two ranks from the first's checkpoint
    // (read by rank 0 only), then the third in one process from the two ranks' checkpoint.
    conv_dense b;
    b.initialize(9);
    ds::trainer tb(b, ds::softmax_cross_entropy{}, momentum_sgd(), config(3, 16));
    if (world().rank() == 0) ds::restore_checkpoint(tb, after_one, "epoch 1");
    dd::attach(tb, world());
    CHECK(tb.epoch() == 1);
    tb.train_epoch(data);
    const std::string after_two = world().broadcast(world().rank() == 0 ? ds::checkpoint_bytes(tb) : std::string());
    conv_dense c;
    ds::trainer tc(c, ds::softmax_cross_entropy{}, momentum_sgd(), config(3, 16));
    ds::restore_checkpoint(tc, after_two, "epoch 2");
    CHECK(tc.epoch() == 2);
    CHECK(tc.global_step() == 12);
    tc.train_epoch(data);
    CHECK(max_relative_difference(values(a), values(c)) < 1e-4);
}

int main(int argc, char** argv) {
    dd::mpi_environment env(argc, argv);
    doctest::Context context(argc, argv);
    int failed = context.run();
    if (context.shouldExit()) return failed;
    // Any rank's failure fails the run.
    std::vector<double> f{static_cast<double>(failed != 0)};
    world().sum(f);
    return f[0] > 0 ? 1 : 0;
}
