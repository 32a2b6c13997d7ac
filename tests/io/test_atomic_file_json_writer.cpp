// Small library pieces without a home elsewhere: the JSON summary writer, atomic file
// writes, flush-to-zero scopes, BLAS helpers and the progress bar switch.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "dynsparse/core/blas.hpp"
#include "dynsparse/core/denormals.hpp"
#include "dynsparse/io/atomic_file.hpp"
#include "dynsparse/io/json_writer.hpp"
#include "dynsparse/train/progress.hpp"

namespace ds = dynsparse;
namespace fs = std::filesystem;

namespace {
std::string read_text(const fs::path& p) {
    std::ifstream in(p);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}
}  // namespace

TEST_CASE("json_object writes keys in order, escapes strings and nulls non-finite numbers") {
    ds::json_object inner;
    inner.add("n", std::size_t{3});
    ds::json_object j;
    j.add("name", "a \"quoted\"\\path\n\x01")
        .add("ratio", 0.25)
        .add("nan", std::numeric_limits<double>::quiet_NaN())
        .add("flag", true)
        .add("list", std::vector<double>{1.5, 2.0})
        .add("names", std::vector<std::string>{"x", "y"})
        .add("inner", inner);
    const std::string s = j.str();
    CHECK(s == "{\n  \"name\": \"a \\\"quoted\\\"\\\\path\\n\\u0001\",\n  \"ratio\": 0.25,\n"
               "  \"nan\": null,\n  \"flag\": true,\n  \"list\": [1.5, 2],\n"
               "  \"names\": [\"x\", \"y\"],\n  \"inner\": {\n  \"n\": 3\n}\n}");
    CHECK(ds::json_object{}.str() == "{}");
}

TEST_CASE("write_file_atomically replaces the file and keeps it when writing fails") {
    const fs::path dir = fs::temp_directory_path() / "dynsparse_test_io";
    fs::remove_all(dir);
    fs::create_directories(dir);
    const fs::path file = dir / "summary.json";
    ds::write_file_atomically(file, "first\n");
    CHECK(read_text(file) == "first\n");
    ds::write_file_atomically(file, "second\n");
    CHECK(read_text(file) == "second\n");
    CHECK_FALSE(fs::exists(dir / "summary.json.tmp"));

    // A directory where the temporary file should go: the write fails, naming the file,
    // and the previous content survives.
    fs::create_directories(dir / "summary.json.tmp");
    CHECK_THROWS_WITH_AS(ds::write_file_atomically(file, "third\n"),
                         doctest::Contains(file.c_str()), ds::data_error);
    CHECK(read_text(file) == "second\n");
    CHECK_THROWS_AS(ds::write_file_atomically(dir / "missing" / "x.json", "x"), ds::data_error);
    fs::remove_all(dir);
}

TEST_CASE("flush_denormals_scope flushes denormals inside and restores the mode after") {
    volatile float tiny = std::numeric_limits<float>::min();  // smallest normal
    volatile float half = 0.5f;
    {
        const ds::flush_denormals_scope ftz;
#ifdef DYNSPARSE_HAS_MXCSR
        CHECK(tiny * half == 0.0f);
#endif
    }
    CHECK(tiny * half > 0.0f);  // denormal again outside the scope
    {
        const ds::flush_denormals_scope off(false);
        CHECK(tiny * half > 0.0f);
    }
}

TEST_CASE("gemm computes op(A) op(B) with transpose flags") {
    const float a[6] = {1, 2, 3, 4, 5, 6};  // 2 x 3
    const float b[6] = {1, 0, 0, 1, 1, 1};  // 3 x 2
    float c[4] = {10, 10, 10, 10};
    ds::gemm(ds::transpose::no, ds::transpose::no, 2, 2, 3, 1.0f, a, 3, b, 2, 0.0f, c, 2);
    CHECK(c[0] == 4.0f);
    CHECK(c[1] == 5.0f);
    CHECK(c[2] == 10.0f);
    CHECK(c[3] == 11.0f);
    // A^T A (3 x 3), beta = 1 adds to what is there.
    float d[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    ds::gemm(ds::transpose::yes, ds::transpose::no, 3, 3, 2, 1.0f, a, 3, a, 3, 1.0f, d, 3);
    CHECK(d[0] == 1.0f + 1 + 16);
    CHECK(d[5] == 1.0f + 2 * 3 + 5 * 6);
    CHECK(ds::blas_core_name().size() > 0);
}

TEST_CASE("a disabled progress bar stays inactive") {
    ds::progress_bar bar(false);
    CHECK_FALSE(bar.active());
    bar.start(1, 1, 10);
    bar.update(3, 0.5, 100);  // draws nothing
    bar.finish();
}
