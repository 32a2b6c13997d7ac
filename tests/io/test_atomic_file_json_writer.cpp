// io/json_writer.hpp and io/atomic_file.hpp: the JSON summary writer and atomic file writes.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "dynsparse/io/atomic_file.hpp"
#include "dynsparse/io/json_writer.hpp"

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
