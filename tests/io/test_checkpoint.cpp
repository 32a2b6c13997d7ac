// Checkpoints (io/checkpoint.hpp): a resumed run continues bit for bit, and every kind of
// bad file is refused with a message naming the file and the problem, leaving the
// trainer untouched.
#include <doctest/doctest.h>

#include <cstring>
#include <functional>
#include <limits>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "dynsparse/io/checkpoint.hpp"
#include "dynsparse/sparse/export.hpp"
#include "dynsparse/layers/activations.hpp"
#include "dynsparse/layers/batch_norm.hpp"
#include "dynsparse/layers/masked_dense.hpp"
#include "dynsparse/train/target_sparsity.hpp"
#include "dynsparse/train/trainer.hpp"
#include "support/fixtures.hpp"

namespace ds = dynsparse;
namespace fs = std::filesystem;

namespace {

using ds::testing::blobs;
using ds::testing::tiny_dst;

struct other_dst : ds::sequential<ds::input<8>, ds::masked_dense<12>, ds::relu, ds::masked_dense<3>> {};
// Batch norm's running statistics are state outside the trainable tensors.
struct batch_norm_dst
    : ds::sequential<ds::input<8>, ds::masked_dense<16>, ds::batch_norm, ds::relu, ds::masked_dense<3>> {};

// A user layer whose extra state goes through a non-template visit_state.
template <class In>
class counting_layer {
public:
    using input_shape = In;
    using output_shape = In;
    static std::string describe() { return "counting"; }
    void initialize(ds::rng&) {}
    void forward(const ds::matrix& x, ds::matrix& y, bool training) {
        y = x;
        if (training) ++calls;
    }
    void backward(const ds::matrix&, const ds::matrix&, const ds::matrix& dy, ds::matrix* dx) {
        if (dx != nullptr) *dx = dy;
    }
    template <class F>
    void for_each_parameter(F&&) {}
    void visit_state(ds::field_visitor& v) { v("calls", calls); }
    std::size_t calls = 0;
};
struct counting {
    template <class In>
    using bind = counting_layer<In>;
};
struct counting_dst : ds::sequential<ds::input<8>, ds::masked_dense<12>, counting, ds::relu, ds::masked_dense<3>> {};

ds::train_config config(std::size_t epochs) {
    ds::train_config c;
    c.epochs = epochs;
    c.batch_size = 16;
    c.alpha = 2e-2f;  // strong enough that the masks change during the run
    c.schedule = ds::cosine_lr(0.05f);
    c.seed = 7;
    c.progress = false;
    return c;
}

template <class Net>
std::vector<float> all_parameters(Net& net) {
    std::vector<float> out;
    net.for_each_parameter([&](const ds::parameter& p) { out.insert(out.end(), p.value.begin(), p.value.end()); });
    return out;
}

struct stop_training : std::exception {};

/// Trains 5 epochs in one go, and again stopped after epoch 2 and resumed from the
/// checkpoint into a network initialised differently; both end bit for bit equal.
template <class Optimizer, class Net = tiny_dst>
void check_resume(Optimizer opt) {
    const auto data = blobs(160, 4);
    Net straight;
    straight.initialize(3);
    ds::trainer<Net, ds::softmax_cross_entropy, Optimizer> a(straight, {}, opt, config(5));
    const auto history = a.fit(data, data);

    Net stopped;
    stopped.initialize(3);
    ds::trainer<Net, ds::softmax_cross_entropy, Optimizer> b(stopped, {}, opt, config(5));
    std::string saved;
    CHECK_THROWS_AS(b.fit(data, data,
                          [&](const ds::epoch_report& r) {
                              if (r.epoch == 2) {
                                  saved = ds::checkpoint_bytes(b);
                                  throw stop_training{};
                              }
                          }),
                    stop_training);

    Net resumed;
    resumed.initialize(99);
    ds::trainer<Net, ds::softmax_cross_entropy, Optimizer> c(resumed, {}, opt, config(5));
    ds::restore_checkpoint(c, saved, "memory");
    CHECK(c.epoch() == 2);
    CHECK(c.global_step() == b.global_step());
    const auto rest = c.fit(data, data);
    REQUIRE(rest.size() == 3);
    CHECK(all_parameters(resumed) == all_parameters(straight));
    for (std::size_t e = 0; e < 3; ++e) {
        CHECK(rest[e].train_loss == history[e + 2].train_loss);
        CHECK(rest[e].remaining == history[e + 2].remaining);
        CHECK(rest[e].eval.loss == history[e + 2].eval.loss);  // evaluation mode: running statistics
    }
    CHECK(history.back().remaining < 1.0);  // the masks did change: the test means something
}

/// The checkpoint bytes with the payload changed by `edit`, re-framed with a valid checksum.
std::string reframed(const std::string& bytes, const std::function<void(std::string&)>& edit) {
    std::string payload(ds::unframe(bytes, "x", ds::checkpoint_kind));
    edit(payload);
    return ds::frame(ds::checkpoint_kind.magic, ds::checkpoint_kind.version, payload);
}

}  // namespace

TEST_CASE("a run resumed from a checkpoint continues bit for bit (SGD with momentum)") {
    check_resume(ds::sgd({.momentum = 0.9f}));
}

TEST_CASE("a run resumed from a checkpoint continues bit for bit (batch norm statistics)") {
    check_resume<ds::sgd, batch_norm_dst>(ds::sgd({.momentum = 0.9f}));
}

TEST_CASE("a run resumed from a checkpoint continues bit for bit (Adam)") {
    check_resume(ds::adam());
}

TEST_CASE("checkpoints go through files atomically and load back") {
    const fs::path dir = fs::temp_directory_path() / "dynsparse_test_checkpoint";
    fs::remove_all(dir);
    fs::create_directories(dir);
    const auto data = blobs(64, 1);
    tiny_dst net;
    net.initialize(1);
    ds::trainer<tiny_dst> tr(net, {}, ds::sgd({.momentum = 0.9f}), config(1));
    tr.fit(data, data);
    ds::save_checkpoint(tr, dir / "run.ckpt");
    CHECK_FALSE(fs::exists(dir / "run.ckpt.tmp"));
    // A device is refused (renaming over it would replace /dev/full by a file), and a
    // directory: the checkpoint saved before is still there.
    CHECK_THROWS_WITH_AS(ds::save_checkpoint(tr, "/dev/full"),
                         doctest::Contains("/dev/full: refusing to write the checkpoint over a character device"),
                         ds::data_error);
    CHECK(fs::is_character_file("/dev/full"));
    fs::create_directories(dir / "as_dir.ckpt");
    CHECK_THROWS_WITH_AS(ds::save_checkpoint(tr, dir / "as_dir.ckpt"),
                         doctest::Contains("as_dir.ckpt: refusing to write the checkpoint over a directory"),
                         ds::data_error);

    tiny_dst copy;
    copy.initialize(2);
    ds::trainer<tiny_dst> tr2(copy, {}, ds::sgd({.momentum = 0.9f}), config(1));
    ds::load_checkpoint(tr2, dir / "run.ckpt");
    CHECK(all_parameters(copy) == all_parameters(net));
    CHECK(tr2.epoch() == 1);
    CHECK_THROWS_WITH_AS(ds::load_checkpoint(tr2, dir / "missing.ckpt"),
                         doctest::Contains("missing.ckpt: cannot open: no such file"), ds::data_error);
    fs::remove_all(dir);
}

TEST_CASE("a layer's non-template visit_state(field_visitor&) is saved and restored") {
    const auto data = blobs(64, 1);
    counting_dst net;
    net.initialize(1);
    ds::trainer<counting_dst> tr(net, {}, ds::sgd({.momentum = 0.9f}), config(1));
    tr.fit(data, data);
    REQUIRE(net.get<1>().calls == 4);  // 64 samples, batch 16
    const std::string bytes = ds::checkpoint_bytes(tr);
    counting_dst copy;
    copy.initialize(2);
    ds::trainer<counting_dst> tr2(copy, {}, ds::sgd({.momentum = 0.9f}), config(1));
    ds::restore_checkpoint(tr2, bytes, "counting.ckpt");
    CHECK(copy.get<1>().calls == 4);
    CHECK(all_parameters(copy) == all_parameters(net));
}

TEST_CASE("a bad checkpoint is refused with a clear message and changes nothing") {
    const auto data = blobs(64, 1);
    tiny_dst net;
    net.initialize(1);
    ds::trainer<tiny_dst> tr(net, {}, ds::sgd({.momentum = 0.9f}), config(1));
    tr.fit(data, data);
    const std::string good = ds::checkpoint_bytes(tr);

    tiny_dst target;
    target.initialize(5);
    ds::trainer<tiny_dst> into(target, {}, ds::sgd({.momentum = 0.9f}), config(3));
    const auto before = all_parameters(target);
    auto refused = [&](const std::string& bytes, const char* message) {
        CHECK_THROWS_WITH_AS(ds::restore_checkpoint(into, bytes, "run.ckpt"),
                             doctest::Contains(message), ds::data_error);
        CHECK(all_parameters(target) == before);
        CHECK(into.epoch() == 0);
    };

    SUBCASE("another network type") {
        other_dst other;
        other.initialize(1);
        ds::trainer<other_dst> wrong(other, {}, ds::sgd({.momentum = 0.9f}), config(1));
        CHECK_THROWS_WITH_AS(ds::restore_checkpoint(wrong, good, "run.ckpt"),
                             doctest::Contains("run.ckpt: the checkpoint was written for the network"),
                             ds::data_error);
    }
    SUBCASE("another optimizer") {
        tiny_dst n;
        ds::trainer<tiny_dst, ds::softmax_cross_entropy, ds::adam> wrong(n, {}, ds::adam(), config(1));
        CHECK_THROWS_WITH_AS(ds::restore_checkpoint(wrong, good, "run.ckpt"),
                             doctest::Contains("expected field 'adam.steps', found 'sgd.started'"),
                             ds::data_error);
    }
    SUBCASE("truncated") { refused(good.substr(0, good.size() - 9), "run.ckpt: truncated"); }
    SUBCASE("shorter than the frame") { refused(good.substr(0, 12), "run.ckpt: truncated"); }
    SUBCASE("empty") { refused("", "run.ckpt: not a dynsparse checkpoint"); }
    SUBCASE("one byte flipped") {
        std::string bad = good;
        bad[bad.size() / 2] ^= 0x10;
        refused(bad, "run.ckpt: checksum mismatch: the file is corrupted");
    }
    SUBCASE("wrong version") {
        std::string bad = good;
        bad[8] = 9;
        refused(bad, "run.ckpt: unsupported dynsparse checkpoint version 9 (this build reads version 2)");
    }
    SUBCASE("format version 1 (before the generators and block state were saved)") {
        std::string bad = good;
        bad[8] = 1;
        refused(bad, "run.ckpt: a dynsparse checkpoint of format version 1, written before checkpoints "
                     "held the augmentation and dropout generators");
    }
    SUBCASE("wrong magic") {
        std::string bad = good;
        bad[0] = 'X';
        refused(bad, "run.ckpt: not a dynsparse checkpoint (wrong magic number)");
    }
    SUBCASE("an exported model instead") {
        refused(ds::sparse_model_bytes(ds::export_sparse(net)),
                "run.ckpt: this is a dynsparse exported model, not a dynsparse checkpoint");
    }
    SUBCASE("trailing bytes") { refused(good + "x", "trailing bytes"); }
    // Values behind a valid checksum: the field named "alpha" is followed by its tag and a float.
    auto with_float = [&](std::string_view field, float value) {
        return reframed(good, [&](std::string& p) {
            const std::string key = std::string(1, static_cast<char>(field.size())) + std::string(7, '\0') +
                                    std::string(field);
            const std::size_t at = p.find(key);
            REQUIRE(at != std::string::npos);
            std::memcpy(p.data() + at + key.size() + 1, &value, sizeof value);
        });
    };
    SUBCASE("alpha = NaN behind a valid checksum") {
        refused(with_float("alpha", std::numeric_limits<float>::quiet_NaN()),
                "run.ckpt: trainer: field 'alpha' is nan, not a finite number");
    }
    SUBCASE("alpha = -1e30 behind a valid checksum") {
        refused(with_float("alpha", -1e30f), "run.ckpt: trainer: alpha is -1000000015");
    }
    SUBCASE("an infinite weight behind a valid checksum") {
        refused(reframed(good, [](std::string& p) {
                    const std::string key = std::string(1, '\6') + std::string(7, '\0') + "weight";
                    const std::size_t at = p.find(key);
                    REQUIRE(at != std::string::npos);
                    const float inf = std::numeric_limits<float>::infinity();
                    std::memcpy(p.data() + at + key.size() + 1 + 8 + 4 * 7, &inf, sizeof inf);  // tag, length
                }),
                "run.ckpt: layer 0 (masked_dense<16, long_tailed, per_neuron>): field 'weight' element 7 is inf");
    }
    SUBCASE("a valid checksum over a cut payload: the last field is missing") {
        refused(reframed(good, [](std::string& p) { p.resize(p.size() - 3); }),
                "run.ckpt: truncated trainer: field 'step callbacks with state: 0'");
    }
    SUBCASE("a valid checksum over a payload with extra bytes") {
        refused(reframed(good, [](std::string& p) { p += "zz"; }), "unexpected bytes after the last record");
    }
    SUBCASE("a valid checksum over a payload whose first layer is renamed") {
        refused(reframed(good,
                         [](std::string& p) {
                             const auto at = p.find("masked_dense<16");
                             p[at + 13] = '7';
                         }),
                "the checkpoint was written for the network");
    }
}

TEST_CASE("target-sparsity mode resumes its controller: alpha and the integral go on as straight") {
    const auto data = blobs(96, 2);
    ds::target_remaining_options t;
    t.target = 0.3;
    t.every = 2;
    // first epochs in one trainer, then (if rest > 0) the rest in another from its checkpoint
    auto train = [&](std::size_t first, std::size_t rest) {
        std::string saved;
        double integral = 0;
        {
            tiny_dst net;
            net.initialize(1);
            ds::trainer<tiny_dst> tr(net, {}, ds::sgd({.momentum = 0.9f}), config(4));
            const auto ctl = ds::attach_target_remaining(tr, t, data.size());
            for (std::size_t e = 0; e < first; ++e) tr.train_epoch(data);
            saved = ds::checkpoint_bytes(tr);
            integral = ctl->integral();
        }
        if (rest == 0) return std::make_pair(saved, integral);
        tiny_dst net;
        net.initialize(9);
        ds::trainer<tiny_dst> tr(net, {}, ds::sgd({.momentum = 0.9f}), config(4));
        const auto ctl = ds::attach_target_remaining(tr, t, data.size());
        ds::restore_checkpoint(tr, saved, "half.ckpt");
        CHECK(ctl->integral() == integral);
        for (std::size_t e = 0; e < rest; ++e) tr.train_epoch(data);
        return std::make_pair(ds::checkpoint_bytes(tr), ctl->integral());
    };
    const auto straight = train(4, 0), resumed = train(2, 2);
    CHECK(straight.second != 0);  // the controller did integrate
    CHECK(resumed.second == straight.second);
    CHECK(resumed.first == straight.first);

    // Into a trainer without the controller: its fields are left over.
    tiny_dst net;
    net.initialize(1);
    ds::trainer<tiny_dst> plain(net, {}, ds::sgd({.momentum = 0.9f}), config(4));
    CHECK_THROWS_WITH_AS(ds::restore_checkpoint(plain, straight.first, "target.ckpt"),
                         doctest::Contains("expected field 'step callbacks with state: 0', found 'step callbacks with state: 1'"),
                         ds::data_error);
}

TEST_CASE("resuming with another recipe is refused, naming what changed") {
    const auto data = blobs(64, 1);
    tiny_dst net;
    net.initialize(1);
    ds::trainer<tiny_dst> tr(net, {}, ds::sgd({.momentum = 0.9f}), config(3));
    tr.train_epoch(data);
    const std::string saved = ds::checkpoint_bytes(tr);

    tiny_dst target;
    target.initialize(5);
    auto cfg = config(3);
    SUBCASE("another batch size") {
        cfg.batch_size = 32;
        ds::trainer<tiny_dst> into(target, {}, ds::sgd({.momentum = 0.9f}), cfg);
        CHECK_THROWS_WITH_AS(ds::restore_checkpoint(into, saved, "run.ckpt"),
                             doctest::Contains("run.ckpt: the run was trained with batch size 16, this one has 32"),
                             ds::data_error);
        CHECK(into.epoch() == 0);  // rolled back
    }
    SUBCASE("another learning rate") {
        cfg.schedule = ds::cosine_lr(0.5f);
        ds::trainer<tiny_dst> into(target, {}, ds::sgd({.momentum = 0.9f}), cfg);
        CHECK_THROWS_WITH_AS(ds::restore_checkpoint(into, saved, "run.ckpt"),
                             doctest::Contains("would train epoch 2 at learning rate"), ds::data_error);
        CHECK(into.epoch() == 0);
    }
    SUBCASE("another training set size") {
        ds::trainer<tiny_dst> into(target, {}, ds::sgd({.momentum = 0.9f}), cfg);
        ds::restore_checkpoint(into, saved, "run.ckpt");
        CHECK_THROWS_WITH_AS(into.train_epoch(blobs(48, 1)),
                             doctest::Contains("trained on 64 samples per epoch, this training set has 48"),
                             ds::invalid_argument);
        CHECK(into.epoch() == 1);
    }
    SUBCASE("accepted when asked for") {
        cfg.batch_size = 32;
        cfg.accept_recipe_change = true;
        ds::trainer<tiny_dst> into(target, {}, ds::sgd({.momentum = 0.9f}), cfg);
        ds::restore_checkpoint(into, saved, "run.ckpt");
        into.train_epoch(blobs(48, 1));
        CHECK(into.epoch() == 2);
    }
}

TEST_CASE("a resumed trainer's history holds the epochs before the resume") {
    const auto data = blobs(64, 1);
    auto cfg = config(2);
    cfg.schedule = ds::constant_lr(0.05f);
    tiny_dst net;
    net.initialize(1);
    ds::trainer<tiny_dst> first(net, {}, ds::sgd({.momentum = 0.9f}), cfg);
    first.fit(data, data);
    REQUIRE(first.history().size() == 2);

    cfg.epochs = 3;
    tiny_dst again;
    again.initialize(2);
    ds::trainer<tiny_dst> resumed(again, {}, ds::sgd({.momentum = 0.9f}), cfg);
    ds::restore_checkpoint(resumed, ds::checkpoint_bytes(first), "two.ckpt");
    resumed.fit(data, data);
    REQUIRE(resumed.history().size() == 3);
    for (std::size_t e = 0; e < 2; ++e) {
        CHECK(resumed.history()[e].epoch == e + 1);
        CHECK(resumed.history()[e].eval_accuracy == first.history()[e].eval_accuracy);
        CHECK(resumed.history()[e].remaining == first.history()[e].remaining);
        CHECK(resumed.history()[e].resets == first.history()[e].resets);
    }
    CHECK(resumed.history()[2].epoch == 3);
}
