// io/json_writer.hpp and io/atomic_file.hpp: the JSON summary writer and atomic file writes.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <unistd.h>

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

TEST_CASE("write_file_atomically replaces a regular file and leaves no other file changed") {
    const fs::path dir = fs::temp_directory_path() / "dynsparse_test_io";
    fs::remove_all(dir);
    fs::create_directories(dir);
    const fs::path file = dir / "summary.json";
    ds::write_file_atomically(file, "first\n");
    CHECK(read_text(file) == "first\n");
    // A file that happens to have the old temporary name is not touched.
    { std::ofstream(dir / "summary.json.tmp") << "mine\n"; }
    fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
    ds::write_file_atomically(file, "second\n");
    CHECK(read_text(file) == "second\n");
    CHECK(read_text(dir / "summary.json.tmp") == "mine\n");
    CHECK(fs::status(file).permissions() ==
          (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));
    std::size_t files = 0;
    for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file() ? 1 : 0;
    CHECK(files == 2);  // no temporary file left behind

    // A symbolic link to a regular file stays a link; the file it names is replaced.
    fs::create_symlink(file, dir / "link.json");
    ds::write_file_atomically(dir / "link.json", "third\n");
    CHECK(fs::is_symlink(dir / "link.json"));
    CHECK(read_text(file) == "third\n");

    CHECK_THROWS_WITH_AS(ds::write_file_atomically(dir / "missing" / "x.json", "x"),
                         doctest::Contains("x.json: cannot create a temporary file"), ds::data_error);
    fs::remove_all(dir);
}

TEST_CASE("write_file_atomically refuses a target that is not a regular file and keeps it") {
    const fs::path dir = fs::temp_directory_path() / "dynsparse_test_io_targets";
    fs::remove_all(dir);
    fs::create_directories(dir / "out.ckpt");
    { std::ofstream(dir / "out.ckpt" / "inside") << "kept\n"; }

    SUBCASE("a character device (/dev/null)") {
        CHECK_THROWS_WITH_AS(ds::write_file_atomically("/dev/null", "x", "checkpoint"),
                             doctest::Contains("/dev/null: refusing to write the checkpoint over a "
                                               "character device"),
                             ds::data_error);
        CHECK(fs::is_character_file("/dev/null"));
    }
    SUBCASE("a directory") {
        CHECK_THROWS_WITH_AS(ds::write_file_atomically(dir / "out.ckpt", "x"),
                             doctest::Contains("out.ckpt: refusing to write the file over a directory"),
                             ds::data_error);
        CHECK(fs::is_directory(dir / "out.ckpt"));
        CHECK(read_text(dir / "out.ckpt" / "inside") == "kept\n");
    }
    SUBCASE("a symbolic link to a directory, and a dangling link") {
        fs::create_directory_symlink(dir / "out.ckpt", dir / "link");
        CHECK_THROWS_WITH_AS(ds::write_file_atomically(dir / "link", "x"),
                             doctest::Contains("link: refusing to write the file over a symbolic link to a directory"),
                             ds::data_error);
        fs::create_symlink(dir / "nothing", dir / "dangling");
        CHECK_THROWS_WITH_AS(ds::write_file_atomically(dir / "dangling", "x"),
                             doctest::Contains("dangling: refusing to write the file over a dangling"),
                             ds::data_error);
        CHECK(fs::is_symlink(dir / "dangling"));
    }
    // Nothing was created next to the targets.
    std::size_t entries = 0;
    for (const auto& e : fs::directory_iterator(dir)) entries += e.is_symlink() ? 0 : 1;
    CHECK(entries == 1);
    fs::remove_all(dir);
}

TEST_CASE("write_file_atomically never writes through a symbolic link at a temporary name") {
    const fs::path dir = fs::temp_directory_path() / "dynsparse_test_io_tmp_link";
    fs::remove_all(dir);
    fs::create_directories(dir);
    { std::ofstream(dir / "precious") << "precious\n"; }
    // Links at every name the writer could pick for its temporary file, and at P.tmp.
    const std::string base = (dir / "out.ckpt").string();
    fs::create_symlink(dir / "precious", base + ".tmp");
    for (unsigned n = 0; n < 3; ++n)
        fs::create_symlink(dir / "precious", base + "." + std::to_string(::getpid()) + "." + std::to_string(n) + ".tmp");
    ds::write_file_atomically(dir / "out.ckpt", "new\n");
    CHECK(read_text(dir / "out.ckpt") == "new\n");
    CHECK(read_text(dir / "precious") == "precious\n");
    CHECK(fs::is_symlink(base + ".tmp"));
    fs::remove_all(dir);
}

TEST_CASE("write_file_atomically refuses to replace a file that is not of its kind unless forced") {
    const fs::path dir = fs::temp_directory_path() / "dynsparse_test_io_foreign";
    fs::remove_all(dir);
    fs::create_directories(dir);
    const fs::path images = dir / "train-images-idx3-ubyte";
    { std::ofstream(images, std::ios::binary) << std::string("\0\0\x08\x03 pixels", 11); }
    const std::string_view magic = "DSCKPT\x01\n";
    const std::string ckpt = std::string(magic) + "payload";
    CHECK_THROWS_WITH_AS(ds::write_file_atomically(images, ckpt, "checkpoint", magic),
                         doctest::Contains("train-images-idx3-ubyte: refusing to replace an existing file that is "
                                           "not a checkpoint"),
                         ds::data_error);
    CHECK(read_text(images) == std::string("\0\0\x08\x03 pixels", 11));
    CHECK_THROWS_AS(ds::check_output_path(images, "checkpoint", magic), ds::data_error);
    // One of ours, an empty file, or a forced write is replaced.
    ds::write_file_atomically(images, ckpt, "checkpoint", magic, /*force=*/true);
    CHECK(read_text(images) == ckpt);
    ds::write_file_atomically(images, ckpt + "2", "checkpoint", magic);
    CHECK(read_text(images) == ckpt + "2");
    { std::ofstream(dir / "empty"); }
    ds::check_output_path(dir / "empty", "JSON summary", "{");
    ds::write_file_atomically(dir / "empty", "{}\n", "JSON summary", "{");
    CHECK(read_text(dir / "empty") == "{}\n");
    std::size_t files = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++files;
    CHECK(files == 2);  // no temporary left behind by the refused write
    fs::remove_all(dir);
}

TEST_CASE("check_output_path finds a missing directory, a directory target and a device before any work") {
    const fs::path dir = fs::temp_directory_path() / "dynsparse_test_io_preflight";
    fs::remove_all(dir);
    fs::create_directories(dir / "sub");
    CHECK_THROWS_WITH_AS(ds::check_output_path(dir / "missing" / "m.dsm", "exported model", "DSMODEL\n"),
                         doctest::Contains("missing does not exist"), ds::data_error);
    CHECK_THROWS_WITH_AS(ds::check_output_path(dir / "sub", "JSON summary", "{"),
                         doctest::Contains("over a directory"), ds::data_error);
    CHECK_THROWS_WITH_AS(ds::check_output_path("/dev/full", "checkpoint", "DSCKPT\x01\n"),
                         doctest::Contains("/dev/full: refusing to write the checkpoint over a character device"),
                         ds::data_error);
    CHECK_THROWS_AS(ds::write_file_atomically("/dev/full", "x", "checkpoint"), ds::data_error);
    CHECK(fs::is_character_file("/dev/full"));
    ds::check_output_path(dir / "new.json", "JSON summary", "{");  // a new file in a writable directory
    if (::geteuid() != 0) {  // root writes anywhere
        fs::permissions(dir / "sub", fs::perms::owner_read | fs::perms::owner_exec);
        CHECK_THROWS_WITH_AS(ds::check_output_path(dir / "sub" / "x.json", "JSON summary", "{"),
                             doctest::Contains("Permission denied"), ds::data_error);
        fs::permissions(dir / "sub", fs::perms::owner_all);
    }
    fs::remove_all(dir);
}
