// Tests for the IDX reader and the dataset helpers: small IDX files (plain and gzip) are
// written to a temporary directory, read back, and broken in every way the reader checks.
#include <doctest/doctest.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "dynsparse/data/dataset.hpp"
#include "dynsparse/data/idx.hpp"
#include "support/fixtures.hpp"

namespace fs = std::filesystem;
using bytes = std::vector<std::uint8_t>;

namespace {

// A fresh directory under the system temp directory, removed with its contents on exit.
struct temp_dir {
    fs::path path;
    temp_dir() {
        std::random_device rd;
        const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
        path = fs::temp_directory_path() /
               ("dynsparse_test_idx_" + std::to_string(stamp) + "_" + std::to_string(rd()));
        fs::create_directories(path);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    fs::path operator/(const std::string& name) const { return path / name; }
};

void put_be32(bytes& b, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(v >> shift));
}

bytes image_file(std::uint32_t count, std::uint32_t rows, std::uint32_t cols, const bytes& pixels,
                 std::uint32_t magic = 0x803) {
    bytes b;
    put_be32(b, magic);
    put_be32(b, count);
    put_be32(b, rows);
    put_be32(b, cols);
    b.insert(b.end(), pixels.begin(), pixels.end());
    return b;
}

bytes label_file(const bytes& labels, std::uint32_t magic = 0x801) {
    bytes b;
    put_be32(b, magic);
    put_be32(b, static_cast<std::uint32_t>(labels.size()));
    b.insert(b.end(), labels.begin(), labels.end());
    return b;
}

void write_plain(const fs::path& p, const bytes& b) {
    std::ofstream out(p, std::ios::binary);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    REQUIRE(out.good());
}

void write_gz(const fs::path& p, const bytes& b) {
    gzFile f = gzopen(p.string().c_str(), "wb");
    REQUIRE(f != nullptr);
    if (!b.empty())
        REQUIRE(gzwrite(f, b.data(), static_cast<unsigned>(b.size())) == static_cast<int>(b.size()));
    REQUIRE(gzclose(f) == Z_OK);
}

bytes read_raw(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Deterministic test content: count images of rows x cols and labels below classes.
bytes some_pixels(std::size_t n, std::uint32_t salt = 0) {
    bytes p(n);
    for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>((i * 37 + salt * 11 + 5) % 256);
    return p;
}

bytes some_labels(std::size_t n, std::size_t classes = 10) {
    bytes l(n);
    for (std::size_t i = 0; i < n; ++i) l[i] = static_cast<std::uint8_t>((i * 7 + 3) % classes);
    return l;
}

// Runs f, expects a data_error, and returns its message.
template <class F>
std::string data_error_message(F&& f) {
    try {
        f();
    } catch (const dynsparse::data_error& e) {
        return e.what();
    } catch (const std::exception& e) {
        FAIL("expected dynsparse::data_error, got another exception: " << e.what());
        return {};
    }
    FAIL("expected dynsparse::data_error, nothing was thrown");
    return {};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The message must start with the file path and contain every key word.
void check_message(const std::string& msg, const fs::path& file, std::initializer_list<const char*> words) {
    INFO("message: " << msg);
    CHECK(msg.rfind(file.string(), 0) == 0);
    for (const char* w : words) CHECK(contains(msg, w));
}

}  // namespace

TEST_CASE("idx: good files round-trip exactly, plain and gzip") {
    temp_dir dir;
    const bytes pixels = some_pixels(5 * 3 * 4);
    const bytes labels = some_labels(5);
    for (const bool gz : {false, true}) {
        CAPTURE(gz);
        const auto img = dir / (gz ? "img.gz" : "img");
        const auto lab = dir / (gz ? "lab.gz" : "lab");
        (gz ? write_gz : write_plain)(img, image_file(5, 3, 4, pixels));
        (gz ? write_gz : write_plain)(lab, label_file(labels));
        const auto images = dynsparse::read_idx_images(img);
        CHECK(images.count == 5);
        CHECK(images.rows == 3);
        CHECK(images.cols == 4);
        CHECK(images.pixels == pixels);
        CHECK(dynsparse::read_idx_labels(lab) == labels);

        const auto d = dynsparse::load_idx_pair(img, lab);
        REQUIRE(d.size() == 5);
        REQUIRE(d.features() == 12);
        CHECK(d.classes == 10);
        CHECK(d.labels == labels);
        for (std::size_t i = 0; i < pixels.size(); ++i)
            CHECK(d.images.data()[i] == doctest::Approx(pixels[i] / 255.0f));
    }
}

TEST_CASE("idx: a payload larger than one read chunk round-trips") {
    temp_dir dir;
    const bytes pixels = some_pixels(300 * 70 * 60, 3);  // 1.26 MB, more than one 1 MiB chunk
    write_gz(dir / "big.gz", image_file(300, 70, 60, pixels));
    CHECK(dynsparse::read_idx_images(dir / "big.gz").pixels == pixels);
}

TEST_CASE("idx: wrong magic numbers") {
    temp_dir dir;
    const auto img = dir / "img";
    write_plain(img, image_file(2, 2, 2, some_pixels(8), 0x12345678));
    check_message(data_error_message([&] { (void)dynsparse::read_idx_images(img); }), img,
                  {"magic", "0x00000803", "0x12345678", "not an IDX file"});

    const auto lab = dir / "lab";
    write_plain(lab, label_file(some_labels(4), 0x00000802));
    check_message(data_error_message([&] { (void)dynsparse::read_idx_labels(lab); }), lab,
                  {"magic", "0x00000801", "0x00000802"});
}

TEST_CASE("idx: swapped image and label files are recognised") {
    temp_dir dir;
    const auto img = dir / "img.gz", lab = dir / "lab.gz";
    write_gz(img, image_file(4, 2, 2, some_pixels(16)));
    write_gz(lab, label_file(some_labels(20)));
    check_message(data_error_message([&] { (void)dynsparse::read_idx_images(lab); }), lab,
                  {"magic", "0x00000803", "0x00000801", "label file"});
    check_message(data_error_message([&] { (void)dynsparse::read_idx_labels(img); }), img,
                  {"magic", "0x00000801", "0x00000803", "image file"});
    CHECK_THROWS_WITH_AS((void)dynsparse::load_idx_pair(lab, img), doctest::Contains("label file"),
                         dynsparse::data_error);
}

TEST_CASE("idx: truncated header") {
    temp_dir dir;
    bytes full = image_file(2, 2, 2, some_pixels(8));
    const auto img = dir / "img";
    write_plain(img, bytes(full.begin(), full.begin() + 10));
    check_message(data_error_message([&] { (void)dynsparse::read_idx_images(img); }), img,
                  {"too short", "header", "16", "found 10"});

    const auto empty = dir / "empty.gz";
    write_gz(empty, {});
    check_message(data_error_message([&] { (void)dynsparse::read_idx_labels(empty); }), empty,
                  {"too short", "header", "found 0"});

    const auto lab = dir / "lab";
    write_plain(lab, bytes{0, 0, 8, 1, 0, 0});
    check_message(data_error_message([&] { (void)dynsparse::read_idx_labels(lab); }), lab,
                  {"too short", "8 bytes", "found 6"});
}

TEST_CASE("idx: zero and absurd dimensions") {
    temp_dir dir;
    const auto zero = dir / "zero";
    write_plain(zero, image_file(3, 0, 28, {}));
    check_message(data_error_message([&] { (void)dynsparse::read_idx_images(zero); }), zero, {"zero"});

    // 2^32-1 images of 2^32-1 x 2^32-1 overflows 64 bits; it must be rejected before allocation.
    const auto huge = dir / "huge";
    write_plain(huge, image_file(0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, some_pixels(16)));
    check_message(data_error_message([&] { (void)dynsparse::read_idx_images(huge); }), huge, {"absurd"});

    const auto big = dir / "big";  // 65536 * 256 * 257 bytes: just over 4 GiB
    write_plain(big, image_file(65536, 256, 257, some_pixels(16)));
    check_message(data_error_message([&] { (void)dynsparse::read_idx_images(big); }), big, {"absurd"});

    const auto no_labels = dir / "nolab.gz";
    write_gz(no_labels, label_file({}));
    check_message(data_error_message([&] { (void)dynsparse::read_idx_labels(no_labels); }), no_labels,
                  {"zero"});
}

TEST_CASE("idx: a header announcing far more data than present fails cleanly") {
    temp_dir dir;
    const auto img = dir / "img.gz";  // claims 784 MB (under the limit), holds 100 bytes
    write_gz(img, image_file(1000000, 28, 28, some_pixels(100)));
    check_message(data_error_message([&] { (void)dynsparse::read_idx_images(img); }), img,
                  {"truncated payload", "784000000", "found 100"});
}

TEST_CASE("idx: a header declaring more than the documented limit is refused before reading") {
    temp_dir dir;
    // 2,048,000,000 bytes: under the old 4 GiB bound, which let a 4 MB gzip file of zeros
    // inflate to gigabytes; above idx_max_payload (1 GiB).
    CHECK(dynsparse::detail::idx_max_payload == 1073741824);
    const auto img = dir / "img.gz";
    write_gz(img, image_file(2000000, 32, 32, some_pixels(100)));
    check_message(data_error_message([&] { (void)dynsparse::read_idx_images(img); }), img,
                  {"2000000 images of 32x32", "2048000000 bytes", "limit of 1073741824"});
    // Exactly at the limit the header passes (and the short file is then truncated).
    const auto at = dir / "at.gz";
    write_gz(at, image_file(1024, 1024, 1024, some_pixels(100)));
    check_message(data_error_message([&] { (void)dynsparse::read_idx_images(at); }), at,
                  {"truncated payload", "1073741824", "found 100"});
}

TEST_CASE("idx: the payload buffer never grows beyond the declared size") {
    // 68,224,000 bytes of zeros (a 66 KB gzip file), past the 64 MiB up to which the old
    // reader reserved at once and beyond which std::vector doubled its capacity to 128 MiB.
    temp_dir dir;
    const auto img = dir / "zeros.gz";
    write_gz(img, image_file(65, 1024, 1025, bytes(std::size_t{65} * 1024 * 1025)));
    const auto got = dynsparse::read_idx_images(img);
    REQUIRE(got.pixels.size() == std::size_t{65} * 1024 * 1025);
    CHECK(got.pixels.capacity() == got.pixels.size());
}

TEST_CASE("idx: a long tail after the payload is not inflated to the end to count it") {
    temp_dir dir;
    const auto lab = dir / "lab.gz";  // 4 labels, then 16 MiB of zeros
    bytes l = label_file(some_labels(4));
    l.resize(l.size() + (std::size_t{16} << 20));
    write_gz(lab, l);
    check_message(data_error_message([&] { (void)dynsparse::read_idx_labels(lab); }), lab,
                  {"more than 1048576 trailing bytes", "expected 12 bytes"});
}

TEST_CASE("idx: truncated payload") {
    temp_dir dir;
    for (const bool gz : {false, true}) {
        CAPTURE(gz);
        const auto img = dir / (gz ? "img.gz" : "img");
        const auto lab = dir / (gz ? "lab.gz" : "lab");
        (gz ? write_gz : write_plain)(img, image_file(3, 2, 2, some_pixels(11)));
        bytes l = label_file(some_labels(6));
        l.pop_back();
        (gz ? write_gz : write_plain)(lab, l);
        check_message(data_error_message([&] { (void)dynsparse::read_idx_images(img); }), img,
                      {"truncated payload", "12 bytes", "found 11"});
        check_message(data_error_message([&] { (void)dynsparse::read_idx_labels(lab); }), lab,
                      {"truncated payload", "6 bytes", "found 5"});
    }
}

TEST_CASE("idx: trailing bytes after the payload") {
    temp_dir dir;
    for (const bool gz : {false, true}) {
        CAPTURE(gz);
        const auto img = dir / (gz ? "img.gz" : "img");
        const auto lab = dir / (gz ? "lab.gz" : "lab");
        (gz ? write_gz : write_plain)(img, image_file(3, 2, 2, some_pixels(15)));
        bytes l = label_file(some_labels(6));
        l.push_back(1);
        (gz ? write_gz : write_plain)(lab, l);
        check_message(data_error_message([&] { (void)dynsparse::read_idx_images(img); }), img,
                      {"3 trailing bytes"});
        check_message(data_error_message([&] { (void)dynsparse::read_idx_labels(lab); }), lab,
                      {"1 trailing bytes"});
    }
}

TEST_CASE("idx: label out of range") {
    temp_dir dir;
    const auto lab = dir / "lab.gz";
    bytes l = some_labels(8);
    l[5] = 10;
    write_gz(lab, label_file(l));
    check_message(data_error_message([&] { (void)dynsparse::read_idx_labels(lab); }), lab,
                  {"out of range", "item 5", "label 10"});
    // With more classes the same file is valid; with fewer, the first label >= 4 fails.
    CHECK(dynsparse::read_idx_labels(lab, 11) == l);
    check_message(data_error_message([&] { (void)dynsparse::read_idx_labels(lab, 4); }), lab,
                  {"out of range", "item 2", "label 7"});
    CHECK_THROWS_AS((void)dynsparse::read_idx_labels(lab, 0), dynsparse::invalid_argument);
}

TEST_CASE("idx: image/label count mismatch in load_idx_pair") {
    temp_dir dir;
    const auto img = dir / "img", lab = dir / "lab.gz";
    write_plain(img, image_file(4, 2, 3, some_pixels(24)));
    write_gz(lab, label_file(some_labels(5)));
    const std::string msg = data_error_message([&] { (void)dynsparse::load_idx_pair(img, lab); });
    check_message(msg, img, {"mismatch", "4 images", "5 labels"});
    CHECK(contains(msg, lab.string()));
}

TEST_CASE("idx: missing file and directory given as a file") {
    temp_dir dir;
    const auto nothing = dir / "does-not-exist.gz";
    check_message(data_error_message([&] { (void)dynsparse::read_idx_images(nothing); }), nothing,
                  {"cannot open", "no such file"});
    check_message(data_error_message([&] { (void)dynsparse::read_idx_labels(nothing); }), nothing,
                  {"cannot open", "no such file"});
    check_message(data_error_message([&] { (void)dynsparse::read_idx_labels(dir.path); }), dir.path,
                  {"cannot open", "directory"});
}

TEST_CASE("idx: corrupt gzip stream") {
    temp_dir dir;
    // A valid gzip member header (deflate, no flags, mtime 0, OS unix) followed by garbage.
    bytes garbage{0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03};
    for (int i = 0; i < 64; ++i) garbage.push_back(static_cast<std::uint8_t>(0xFF - i));
    const auto bad = dir / "bad.gz";
    write_plain(bad, garbage);
    check_message(data_error_message([&] { (void)dynsparse::read_idx_images(bad); }), bad,
                  {"corrupt gzip stream"});

    // A real gzip file cut in the middle of its compressed data.
    const auto whole = dir / "whole.gz", cut = dir / "cut.gz";
    write_gz(whole, image_file(50, 20, 20, some_pixels(20000)));
    const bytes compressed = read_raw(whole);
    REQUIRE(compressed.size() > 40);
    write_plain(cut, bytes(compressed.begin(),
                           compressed.begin() + static_cast<std::ptrdiff_t>(compressed.size() / 2)));
    check_message(data_error_message([&] { (void)dynsparse::read_idx_images(cut); }), cut,
                  {"corrupt gzip stream"});
}

namespace {

// Writes an MNIST-style directory: train has n_train samples, test n_test, images rows x cols.
void write_mnist_dir(const fs::path& dir, bool gz, std::size_t n_train, std::size_t n_test,
                     std::uint32_t rows = 4, std::uint32_t cols = 3, std::uint32_t test_rows = 4) {
    const auto w = gz ? write_gz : write_plain;
    const std::string ext = gz ? ".gz" : "";
    const auto n_tr = static_cast<std::uint32_t>(n_train), n_te = static_cast<std::uint32_t>(n_test);
    w(dir / ("train-images-idx3-ubyte" + ext),
      image_file(n_tr, rows, cols, some_pixels(n_train * rows * cols, 1)));
    w(dir / ("train-labels-idx1-ubyte" + ext), label_file(some_labels(n_train)));
    w(dir / ("t10k-images-idx3-ubyte" + ext),
      image_file(n_te, test_rows, cols, some_pixels(n_test * test_rows * cols, 2)));
    w(dir / ("t10k-labels-idx1-ubyte" + ext), label_file(some_labels(n_test)));
}

}  // namespace

TEST_CASE("load_mnist_directory: plain, gzip, preference and missing files") {
    temp_dir dir;
    SUBCASE("gzip files") {
        write_mnist_dir(dir.path, true, 20, 7);
        const auto tt = dynsparse::load_mnist_directory(dir.path);
        CHECK(tt.train.size() == 20);
        CHECK(tt.test.size() == 7);
        CHECK(tt.train.features() == 12);
        CHECK(tt.test.features() == 12);
        CHECK(tt.train.labels == some_labels(20));
        CHECK(tt.test.images(6, 11) == doctest::Approx(some_pixels(7 * 12, 2)[6 * 12 + 11] / 255.0f));
    }
    SUBCASE("plain files are preferred over .gz") {
        write_mnist_dir(dir.path, true, 20, 7);
        write_mnist_dir(dir.path, false, 9, 5);
        const auto tt = dynsparse::load_mnist_directory(dir.path);
        CHECK(tt.train.size() == 9);
        CHECK(tt.test.size() == 5);
    }
    SUBCASE("a mix of plain and .gz") {
        write_mnist_dir(dir.path, true, 20, 7);
        fs::remove(dir / "t10k-labels-idx1-ubyte.gz");
        write_plain(dir / "t10k-labels-idx1-ubyte", label_file(some_labels(7)));
        CHECK(dynsparse::load_mnist_directory(dir.path).test.size() == 7);
    }
    SUBCASE("a missing file is named") {
        write_mnist_dir(dir.path, true, 20, 7);
        fs::remove(dir / "train-labels-idx1-ubyte.gz");
        const std::string msg = data_error_message([&] { (void)dynsparse::load_mnist_directory(dir.path); });
        check_message(msg, dir.path, {"missing", "train-labels-idx1-ubyte"});
        CHECK_FALSE(contains(msg, "t10k"));
    }
    SUBCASE("a missing directory") {
        const auto nowhere = dir / "nowhere";
        check_message(data_error_message([&] { (void)dynsparse::load_mnist_directory(nowhere); }), nowhere,
                      {"does not exist"});
    }
    SUBCASE("train and test image sizes differ") {
        write_mnist_dir(dir.path, false, 6, 6, 4, 3, 5);
        check_message(data_error_message([&] { (void)dynsparse::load_mnist_directory(dir.path); }), dir.path,
                      {"4x3", "5x3"});
    }
    SUBCASE("a bad file inside the directory is reported by its own path") {
        write_mnist_dir(dir.path, false, 6, 6);
        write_plain(dir / "t10k-images-idx3-ubyte", label_file(some_labels(6)));
        check_message(data_error_message([&] { (void)dynsparse::load_mnist_directory(dir.path); }),
                      dir / "t10k-images-idx3-ubyte", {"magic"});
    }
}

TEST_CASE("load_mnist_directory: a directory named like a data file is reported as a directory") {
    temp_dir dir;
    write_mnist_dir(dir.path, false, 5, 3);
    fs::remove(dir.path / "t10k-labels-idx1-ubyte");
    fs::create_directory(dir.path / "t10k-labels-idx1-ubyte");
    const std::string msg = data_error_message([&] { dynsparse::load_mnist_directory(dir.path); });
    CHECK(msg.find("t10k-labels-idx1-ubyte: cannot read it: it is a directory") != std::string::npos);
    CHECK(msg.find("missing") == std::string::npos);
}

TEST_CASE("check_image_shape: images declared with another shape than the network's input") {
    temp_dir dir;
    write_mnist_dir(dir.path, false, 6, 3, /*rows=*/6, /*cols=*/2, /*test_rows=*/6);  // 12 pixels as 6x2
    const auto data = dynsparse::load_mnist_directory(dir.path);
    CHECK(data.train.image_rows == 6);
    CHECK(data.train.image_cols == 2);
    const auto part = dynsparse::take(data.train, 0, 4);  // subsets keep the shape
    dynsparse::check_image_shape(part, 6, 2, "net");
    CHECK_THROWS_WITH_AS(dynsparse::check_image_shape(part, 3, 4, "the network"),
                         doctest::Contains("train-images-idx3-ubyte: images are 6x2 but the network takes 3x4 images"),
                         dynsparse::invalid_argument);
    dynsparse::dataset unknown;  // no file behind it: nothing to check
    dynsparse::check_image_shape(unknown, 3, 4, "net");
}

TEST_CASE("standardize: train has mean 0 and std 1, test uses the train statistics") {
    temp_dir dir;
    write_mnist_dir(dir.path, false, 50, 10);
    auto tt = dynsparse::load_mnist_directory(dir.path);
    const float test0 = tt.test.images(0, 0);
    const auto [mean, stddev] = dynsparse::standardize(tt);
    CHECK(stddev > 0.0f);
    double sum = 0.0, sq = 0.0;
    for (float v : tt.train.images) sum += v;
    const double m = sum / static_cast<double>(tt.train.images.size());
    for (float v : tt.train.images) sq += (v - m) * (v - m);
    CHECK(std::abs(m) < 1e-5);
    CHECK(std::sqrt(sq / static_cast<double>(tt.train.images.size())) == doctest::Approx(1.0).epsilon(1e-5));
    CHECK(tt.test.images(0, 0) == doctest::Approx((test0 - mean) / stddev));

    dynsparse::train_test constant;
    constant.train.images = dynsparse::matrix::from_shape({3, 2});
    constant.train.images.fill(0.5f);
    constant.train.labels = {0, 1, 2};
    CHECK_THROWS_AS(dynsparse::standardize(constant), dynsparse::invalid_argument);
}

namespace {

// A dataset whose row i is filled with float(i) and whose label is i % classes.
dynsparse::dataset counting_dataset(std::size_t n, std::size_t features = 3) {
    dynsparse::dataset d;
    d.images = dynsparse::matrix::from_shape({n, features});
    d.labels.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t j = 0; j < features; ++j) d.images(i, j) = static_cast<float>(i);
        d.labels[i] = static_cast<std::uint8_t>(i % d.classes);
    }
    return d;
}

std::vector<std::size_t> row_ids(const dynsparse::dataset& d) {
    std::vector<std::size_t> ids;
    for (std::size_t i = 0; i < d.size(); ++i) {
        const auto id = static_cast<std::size_t>(d.images(i, 0));
        CHECK(d.images(i, d.features() - 1) == static_cast<float>(id));
        CHECK(d.labels[i] == id % d.classes);
        ids.push_back(id);
    }
    return ids;
}

}  // namespace

TEST_CASE("split_validation: sizes, disjointness, determinism") {
    const auto d = counting_dataset(101);
    const auto [train, val] = dynsparse::split_validation(d, 0.2, 42);
    CHECK(val.size() == 20);
    CHECK(train.size() == 81);
    CHECK(train.features() == 3);
    CHECK(val.classes == d.classes);
    const auto tr_ids = row_ids(train), va_ids = row_ids(val);
    std::set<std::size_t> all(tr_ids.begin(), tr_ids.end());
    all.insert(va_ids.begin(), va_ids.end());
    CHECK(all.size() == 101);  // disjoint and complete
    CHECK(*all.rbegin() == 100);
    // The validation set is a random sample, not the first or last rows.
    CHECK(va_ids !=
          std::vector<std::size_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19});
    CHECK(*std::max_element(va_ids.begin(), va_ids.end()) > 20);
    CHECK(*std::min_element(va_ids.begin(), va_ids.end()) < 81);

    const auto again = dynsparse::split_validation(d, 0.2, 42);
    CHECK(row_ids(again.second) == va_ids);
    CHECK(row_ids(again.first) == tr_ids);
    const auto other = dynsparse::split_validation(d, 0.2, 43);
    CHECK(row_ids(other.second) != va_ids);

    const auto none = dynsparse::split_validation(d, 0.0, 1);
    CHECK(none.first.size() == 101);
    CHECK(none.second.size() == 0);
    CHECK(dynsparse::split_validation(d, 0.999999, 1).first.size() == 1);

    CHECK_THROWS_AS((void)dynsparse::split_validation(d, 1.0, 1), dynsparse::invalid_argument);
    CHECK_THROWS_AS((void)dynsparse::split_validation(d, -0.1, 1), dynsparse::invalid_argument);
    CHECK_THROWS_AS((void)dynsparse::split_validation(d, std::nan(""), 1), dynsparse::invalid_argument);
}

TEST_CASE("take: contiguous subsets and range checks") {
    const auto d = counting_dataset(10);
    const auto part = dynsparse::take(d, 3, 4);
    CHECK(row_ids(part) == std::vector<std::size_t>{3, 4, 5, 6});
    CHECK(dynsparse::take(d, 10, 0).size() == 0);
    CHECK(dynsparse::take(d, 0, 10).size() == 10);
    CHECK_THROWS_WITH_AS((void)dynsparse::take(d, 8, 3), doctest::Contains("out of range"),
                         dynsparse::invalid_argument);
    CHECK_THROWS_AS((void)dynsparse::take(d, 11, 0), dynsparse::invalid_argument);
    CHECK_THROWS_AS((void)dynsparse::take(d, 1, static_cast<std::size_t>(-1)), dynsparse::invalid_argument);
}

TEST_CASE("gather_batch: copies the requested rows and labels") {
    const auto d = counting_dataset(12, 5);
    dynsparse::matrix x;
    std::vector<std::uint8_t> y;
    const std::vector<std::size_t> idx{7, 0, 11, 7};
    dynsparse::gather_batch(d, idx, x, y);
    REQUIRE(x.shape(0) == 4);
    REQUIRE(x.shape(1) == 5);
    for (std::size_t r = 0; r < idx.size(); ++r) {
        for (std::size_t j = 0; j < 5; ++j) CHECK(x(r, j) == static_cast<float>(idx[r]));
        CHECK(y[r] == idx[r] % 10);
    }
    const float* buffer = x.data();
    dynsparse::gather_batch(d, std::vector<std::size_t>{1, 2, 3, 4}, x, y);
    CHECK(x.data() == buffer);  // same batch size: the buffer is reused
    CHECK(x(3, 4) == 4.0f);
    dynsparse::gather_batch(d, std::vector<std::size_t>{5}, x, y);
    CHECK(x.shape(0) == 1);
    CHECK(y == std::vector<std::uint8_t>{5});
    CHECK_THROWS_WITH_AS(dynsparse::gather_batch(d, std::vector<std::size_t>{3, 12}, x, y),
                         doctest::Contains("out of range"), dynsparse::invalid_argument);
}

TEST_CASE("Fashion-MNIST from the default directory" *
          doctest::skip(!fs::is_directory(dynsparse::testing::fashion_mnist_directory()))) {
    const auto tt = dynsparse::load_mnist_directory(dynsparse::testing::fashion_mnist_directory());
    CHECK(tt.train.size() == 60000);
    CHECK(tt.test.size() == 10000);
    CHECK(tt.train.features() == 784);
    CHECK(tt.test.features() == 784);
    for (const auto* d : {&tt.train, &tt.test}) {
        REQUIRE(*std::max_element(d->labels.begin(), d->labels.end()) < 10);
        std::vector<std::size_t> per_class(10, 0);
        for (auto l : d->labels) ++per_class[l];
        for (std::size_t c = 0; c < 10; ++c) CHECK(per_class[c] > 0);
        const auto [lo, hi] = std::minmax_element(d->images.begin(), d->images.end());
        CHECK(*lo == 0.0f);
        CHECK(*hi == 1.0f);
    }
}
