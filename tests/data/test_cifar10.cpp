// CIFAR-10 binary reader (on synthetic files in the real format), per-channel
// normalisation, crop/flip augmentation and the trainer's augmentation hook.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "dynsparse/data/cifar10.hpp"
#include "dynsparse/train/trainer.hpp"
#include "support/cifar_files.hpp"
#include "support/fixtures.hpp"
#include "support/gradient_check.hpp"

namespace ds = dynsparse;
namespace fs = std::filesystem;

namespace {

struct temp_dir {
    fs::path path;
    explicit temp_dir(const char* name) : path(fs::temp_directory_path() / (std::string("dynsparse_") + name +
                                                                           "_" + std::to_string(::getpid()))) {
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

void write_bytes(const fs::path& p, const std::vector<unsigned char>& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

TEST_CASE("CIFAR-10 reader: records, labels, channel-major pixels scaled to [0, 1]") {
    temp_dir dir("cifar_read");
    ds::testing::write_synthetic_cifar_directory(dir.path, 3, 5);
    const ds::train_test data = ds::load_cifar10_directory(dir.path);
    REQUIRE(data.train.size() == 15);
    REQUIRE(data.test.size() == 5);
    CHECK(data.train.features() == 3072);
    // training record 4 is record 1 of data_batch_2.bin (salt 2)
    const auto rec = ds::testing::synthetic_cifar_record(1, 2);
    CHECK(data.train.labels[4] == rec[0]);
    for (std::size_t i : {0u, 1023u, 1024u, 2047u, 2048u, 3071u})
        CHECK(data.train.images(4, i) == doctest::Approx(rec[1 + i] / 255.0f));
    CHECK(data.test.labels[3] == ds::testing::synthetic_cifar_record(3, 0)[0]);
}

TEST_CASE("CIFAR-10 reader: bad input gives errors naming the file and the problem") {
    temp_dir dir("cifar_bad");
    const fs::path f = dir.path / "batch.bin";
    CHECK_THROWS_WITH_AS(ds::load_cifar10_batch(f), doctest::Contains("no such file"), ds::data_error);
    write_bytes(f, {});
    CHECK_THROWS_WITH_AS(ds::load_cifar10_batch(f), doctest::Contains("empty file"), ds::data_error);
    auto rec = ds::testing::synthetic_cifar_record(0, 0);
    rec.pop_back();  // truncated: 3072 bytes
    write_bytes(f, rec);
    CHECK_THROWS_WITH_AS(ds::load_cifar10_batch(f), doctest::Contains("not a whole number of 3073-byte"),
                         ds::data_error);
    auto two = ds::testing::synthetic_cifar_record(0, 0);
    auto bad = ds::testing::synthetic_cifar_record(1, 0);
    bad[0] = 10;
    two.insert(two.end(), bad.begin(), bad.end());
    write_bytes(f, two);
    CHECK_THROWS_WITH_AS(ds::load_cifar10_batch(f), doctest::Contains("record 1 has label 10"), ds::data_error);
    try {
        ds::load_cifar10_batch(f);
    } catch (const ds::data_error& e) {
        CHECK(std::string(e.what()).find(f.string()) == 0);
    }
    CHECK_THROWS_WITH_AS(ds::load_cifar10_batch(dir.path), doctest::Contains("directory"), ds::data_error);
    // a directory with a missing batch
    ds::testing::write_synthetic_cifar_directory(dir.path / "set", 1, 1);
    fs::remove(dir.path / "set" / "data_batch_3.bin");
    CHECK_THROWS_WITH_AS(ds::load_cifar10_directory(dir.path / "set"), doctest::Contains("data_batch_3.bin"),
                         ds::data_error);
    CHECK_THROWS_WITH_AS(ds::load_cifar10_directory(dir.path / "none"), doctest::Contains("does not exist"),
                         ds::data_error);
}

TEST_CASE("CIFAR-10 reader: a file above the record limit is refused before anything is allocated") {
    // A sparse file (all holes, nothing stored on disk) one record above the limit: the old
    // reader allocated four times its 184 MB and read zeros into it.
    temp_dir dir("cifar_sparse");
    const fs::path f = dir.path / "data_batch_1.bin";
    { std::ofstream touch(f, std::ios::binary); }
    const std::uintmax_t records = 60001;  // dynsparse::cifar10_max_records + 1
    fs::resize_file(f, ds::cifar10_record * records);
    const std::string size = std::to_string(ds::cifar10_record * records);
    CHECK_THROWS_WITH_AS(ds::load_cifar10_batch(f),
                         doctest::Contains((f.string() + ": size " + size + " bytes declares 60001 records, above "
                                                                           "the reader's limit of 60000")
                                               .c_str()),
                         ds::data_error);
    // The directory loader checks every training file before it allocates the training set.
    ds::testing::write_synthetic_cifar_directory(dir.path, 1, 1);
    fs::resize_file(dir.path / "data_batch_4.bin", ds::cifar10_record * records);
    CHECK_THROWS_WITH_AS(ds::load_cifar10_directory(dir.path), doctest::Contains("data_batch_4.bin: size"),
                         ds::data_error);
}

namespace {

// A field of /proc/self/status in kB ("VmRSS", "VmHWM"), or -1.
long proc_status_kb(const std::string& field) {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
    return -1;
}

}  // namespace

TEST_CASE("CIFAR-10 reader: the training files are read into the training set, not copied into it") {
    // Peak memory of loading five batches of 2000 records (123 MB as floats): the old loader
    // held the five per-file datasets and their concatenation at once, twice that.
    temp_dir dir("cifar_peak");
    ds::testing::write_synthetic_cifar_directory(dir.path, 2000, 1);
    {
        std::ofstream reset("/proc/self/clear_refs");  // "5" resets the peak (VmHWM) to the current RSS
        reset << "5";
        reset.flush();
        if (!reset || proc_status_kb("VmHWM") < 0) {
            MESSAGE("cannot reset the peak resident size here (/proc/self/clear_refs); check skipped");
            return;
        }
    }
    const long before = proc_status_kb("VmRSS");
    const ds::train_test data = ds::load_cifar10_directory(dir.path);
    const long peak = proc_status_kb("VmHWM");
    REQUIRE(data.train.size() == 10000);
    CHECK(data.train.images(4321, 17) ==
          doctest::Approx(ds::testing::synthetic_cifar_record(321, 3)[18] / 255.0f));  // record 321 of batch 3
    const double final_kb = static_cast<double>(data.train.images.size() + data.test.images.size()) * 4 / 1024;
    INFO("peak growth " << peak - before << " kB for " << final_kb << " kB of images");
    CHECK(static_cast<double>(peak - before) < 1.3 * final_kb);
}

TEST_CASE("per-channel statistics and normalisation") {
    ds::dataset d;
    d.images = {{0, 0, 1, 1, 2, 2}, {2, 2, 3, 3, 4, 4}};  // 3 channels of 2 pixels
    d.labels = {0, 1};
    const auto s = ds::compute_channel_statistics(d, 3);
    CHECK(s.mean == std::vector<float>{1, 2, 3});
    CHECK(s.stddev[1] == doctest::Approx(1.0f));
    ds::normalize_channels(d, s);
    CHECK(d.images(0, 2) == doctest::Approx(-1.0f));
    CHECK(d.images(1, 5) == doctest::Approx(1.0f));
    CHECK_THROWS_AS(ds::compute_channel_statistics(d, 4), ds::invalid_argument);
}

TEST_CASE("crop/flip augmentation: shifted windows of the padded sample, mirrored or not") {
    ds::rng gen(4);
    ds::crop_flip_augmentation none{.channels = 2, .height = 3, .width = 4, .pad = 0, .flip = false, .fill = {}};
    ds::matrix x = ds::testing::random_matrix(5, 24, gen);
    const ds::matrix original = x;
    none(x, gen);
    CHECK(x == original);  // no padding, no flip: identity

    ds::crop_flip_augmentation flip_only{.channels = 2, .height = 3, .width = 4, .pad = 0, .flip = true, .fill = {}};
    std::size_t mirrored = 0;
    for (int trial = 0; trial < 20; ++trial) {
        x = original;
        flip_only(x, gen);
        for (std::size_t r = 0; r < 5; ++r) {
            const bool same = x(r, 0) == original(r, 0);
            mirrored += !same;
            for (std::size_t c = 0; c < 2; ++c)
                for (std::size_t i = 0; i < 3; ++i)
                    for (std::size_t j = 0; j < 4; ++j)
                        CHECK(x(r, (c * 3 + i) * 4 + j) == original(r, (c * 3 + i) * 4 + (same ? j : 3 - j)));
        }
    }
    CHECK(mirrored > 20);
    CHECK(mirrored < 80);

    // pad 2, fill -7 / -9: every output pixel is an input pixel of its channel at a fixed
    // offset for the whole sample, or the channel's fill value
    ds::crop_flip_augmentation crop{.channels = 2, .height = 3, .width = 4, .pad = 2, .flip = false, .fill = {-7, -9}};
    x = original;
    crop(x, gen);
    for (std::size_t r = 0; r < 5; ++r) {
        bool found = false;
        for (int oy = -2; oy <= 2 && !found; ++oy)
            for (int ox = -2; ox <= 2 && !found; ++ox) {
                bool ok = true;
                for (std::size_t c = 0; c < 2; ++c)
                    for (int i = 0; i < 3; ++i)
                        for (int j = 0; j < 4; ++j) {
                            const int si = i + oy, sj = j + ox;
                            const float want = si >= 0 && si < 3 && sj >= 0 && sj < 4
                                                   ? original(r, (c * 3 + static_cast<std::size_t>(si)) * 4 +
                                                                     static_cast<std::size_t>(sj))
                                                   : (c == 0 ? -7.0f : -9.0f);
                            ok = ok && x(r, (c * 3 + static_cast<std::size_t>(i)) * 4 + static_cast<std::size_t>(j)) == want;
                        }
                found = ok;
            }
        CHECK(found);
    }
    ds::matrix wrong = ds::make_matrix(2, 5);
    CHECK_THROWS_AS(crop(wrong, gen), ds::invalid_argument);
}

TEST_CASE("trainer applies the augmentation to training batches only") {
    ds::testing::tiny_dst net;
    net.initialize(1);
    const ds::dataset d = ds::testing::blobs(32, 2);
    std::size_t calls = 0, rows = 0;
    ds::train_config cfg;
    cfg.epochs = 1;
    cfg.batch_size = 8;
    cfg.progress = false;
    cfg.augment = [&](ds::matrix& batch, ds::rng&) {
        ++calls;
        rows += batch.shape(0);
    };
    ds::trainer<ds::testing::tiny_dst> tr(net, {}, ds::sgd({.momentum = 0.9f}), cfg);
    tr.fit(d, d);
    CHECK(calls == 4);
    CHECK(rows == 32);
}
