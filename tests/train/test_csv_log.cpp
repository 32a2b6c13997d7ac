// The CSV training log: header and columns, step and epoch rows, revived/pruned counts
// that agree with the change in kept weights, and a clear error for a bad path.
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dynsparse/core/rng.hpp"
#include "dynsparse/layers/activations.hpp"
#include "dynsparse/layers/masked_dense.hpp"
#include "dynsparse/train/csv_log.hpp"
#include "dynsparse/train/trainer.hpp"
#include "support/fixtures.hpp"

namespace ds = dynsparse;

namespace {

using ds::testing::blobs;
using ds::testing::tiny_dst;

std::vector<std::string> split(const std::string& line) {
    std::vector<std::string> out;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) out.push_back(cell);
    if (!line.empty() && line.back() == ',') out.emplace_back();
    return out;
}

std::vector<std::vector<std::string>> read_csv(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::vector<std::vector<std::string>> rows;
    std::string line;
    while (std::getline(in, line)) rows.push_back(split(line));
    return rows;
}

std::size_t column(const std::vector<std::string>& header, const std::string& name) {
    for (std::size_t i = 0; i < header.size(); ++i)
        if (header[i] == name) return i;
    FAIL("no column " << name);
    return 0;
}

}  // namespace

TEST_CASE("csv_log writes step and epoch rows whose revived/pruned counts add up") {
    const auto path = std::filesystem::temp_directory_path() / "dynsparse_test_csv_log.csv";
    tiny_dst net;
    net.initialize(3);
    ds::train_config cfg;
    cfg.epochs = 3;
    cfg.batch_size = 16;
    cfg.alpha = 0.05f;  // strong, so the masks change between rows
    cfg.schedule = ds::constant_lr(0.05f);
    cfg.progress = false;
    ds::trainer<tiny_dst> tr(net, {}, ds::sgd({.momentum = 0.9f}), cfg);
    const ds::dataset train = blobs(160, 1), eval = blobs(60, 2);  // 10 steps per epoch
    {
        ds::csv_log log(path, "validation", 4);
        log.attach(tr);
        tr.fit(train, eval, [&](const ds::epoch_report& e) { log.record_epoch(net, e, 10); });
        CHECK(log.rows() == 7 + 3);  // step rows at steps 4, 8, ..., 28, and 3 epoch rows
    }
    const auto rows = read_csv(path);
    REQUIRE(rows.size() == 1 + 10);
    const auto& h = rows[0];
    CHECK(h.size() == 11 + 2 * 7);
    CHECK(h[0] == "kind");
    CHECK(h.back() == "l1_resets");
    const std::size_t kind = column(h, "kind"), step = column(h, "step"),
                      set = column(h, "eval_set"), acc = column(h, "eval_accuracy"),
                      alpha = column(h, "alpha");
    std::size_t steps = 0, epochs = 0;
    // Net change in kept weights between consecutive rows = revived - pruned, per layer.
    std::vector<double> kept_before = {1.0 * 8 * 16, 1.0 * 16 * 3};  // layers start dense
    bool changed = false;
    for (std::size_t i = 1; i < rows.size(); ++i) {
        const auto& r = rows[i];
        REQUIRE(r.size() == h.size());
        CHECK(std::stod(r[alpha]) == doctest::Approx(0.05));
        if (r[kind] == "step") {
            ++steps;
            CHECK(std::stoul(r[step]) % 4 == 0);
            CHECK(r[set].empty());
            CHECK(r[acc].empty());
        } else {
            REQUIRE(r[kind] == "epoch");
            ++epochs;
            CHECK(r[set] == "validation");
            CHECK(std::stod(r[acc]) > 50.0);
            CHECK(std::stoul(r[step]) == 10 * epochs);
        }
        for (std::size_t l = 0; l < 2; ++l) {
            const double total = l == 0 ? 8 * 16 : 16 * 3;
            const double kept = std::stod(r[column(h, "l" + std::to_string(l) + "_remaining")]) * total;
            const double revived = std::stod(r[column(h, "l" + std::to_string(l) + "_revived")]);
            const double pruned = std::stod(r[column(h, "l" + std::to_string(l) + "_pruned")]);
            CHECK(kept - kept_before[l] == doctest::Approx(revived - pruned).epsilon(1e-4));
            changed = changed || pruned > 0;
            kept_before[l] = kept;
        }
    }
    CHECK(steps == 7);
    CHECK(epochs == 3);
    CHECK(changed);  // the counts are not all zero
    std::filesystem::remove(path);
}

TEST_CASE("csv_log names the file it cannot open") {
    const std::string bad = "/nonexistent-dynsparse-dir/log.csv";
    try {
        ds::csv_log log(bad);
        FAIL("no exception");
    } catch (const ds::data_error& e) {
        CHECK(std::string(e.what()).find(bad) != std::string::npos);
    }
}

TEST_CASE("csv_log refuses a target that is not a regular file (device, directory)") {
    CHECK_THROWS_WITH_AS(ds::csv_log("/dev/null"),
                         doctest::Contains("/dev/null: refusing to write the CSV log over a character device"),
                         ds::data_error);
    CHECK(std::filesystem::is_character_file("/dev/null"));
    const auto dir = std::filesystem::temp_directory_path() / "dynsparse_test_csv_dir";
    std::filesystem::create_directories(dir);
    CHECK_THROWS_WITH_AS(ds::csv_log{dir}, doctest::Contains("refusing to write the CSV log over a directory"),
                         ds::data_error);
    CHECK(std::filesystem::is_directory(dir));
    std::filesystem::remove_all(dir);
}

TEST_CASE("csv_log in append mode keeps the earlier rows (a resumed run), and refuses a foreign file") {
    const auto path = std::filesystem::temp_directory_path() / "dynsparse_test_csv_append.csv";
    std::filesystem::remove(path);
    ds::train_config cfg;
    cfg.epochs = 1;
    cfg.batch_size = 16;
    cfg.progress = false;
    const ds::dataset train = blobs(64, 1), eval = blobs(32, 2);
    for (auto mode : {ds::csv_log::mode::append, ds::csv_log::mode::append}) {  // a missing file, then rows
        tiny_dst net;
        net.initialize(3);
        ds::trainer<tiny_dst> tr(net, {}, ds::sgd{}, cfg);
        ds::csv_log log(path, "test", 0, mode);
        tr.fit(train, eval, [&](const ds::epoch_report& e) { log.record_epoch(net, e, 4); });
    }
    const auto rows = read_csv(path);
    REQUIRE(rows.size() == 3);  // one header, an epoch row from each run
    CHECK(rows[0][0] == "kind");
    CHECK(rows[1][0] == "epoch");
    CHECK(rows[2][0] == "epoch");
    // create mode starts the log again
    { ds::csv_log log(path); }
    CHECK(std::filesystem::file_size(path) == 0);

    const auto foreign = std::filesystem::temp_directory_path() / "dynsparse_test_csv_foreign";
    { std::ofstream(foreign) << "label,pixel\n1,2\n"; }
    CHECK_THROWS_WITH_AS(ds::csv_log(foreign, "test", 0, ds::csv_log::mode::append),
                         doctest::Contains("refusing to replace an existing file that is not a CSV log"),
                         ds::data_error);
    CHECK_THROWS_AS(ds::csv_log{foreign}, ds::data_error);
    { ds::csv_log log(foreign, "test", 0, ds::csv_log::mode::create, /*force=*/true); }
    CHECK(std::filesystem::file_size(foreign) == 0);
    std::filesystem::remove(path);
    std::filesystem::remove(foreign);
}
