// The README's code snippets are the example's marked regions, verbatim (dedented), so
// the documentation cannot drift from code that compiles and runs.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#ifndef DYNSPARSE_SOURCE_DIR
#error "tests/CMakeLists.txt defines DYNSPARSE_SOURCE_DIR"
#endif

namespace {

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    REQUIRE_MESSAGE(in.good(), "cannot read " << path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

/// The lines between two `// [tag]` markers, with their common indentation removed.
std::string snippet(const std::string& source, const std::string& tag) {
    const std::string marker = "// [" + tag + "]";
    const auto first = source.find(marker);
    REQUIRE(first != std::string::npos);
    const auto begin = source.find('\n', first) + 1;
    const auto end_marker = source.find(marker, begin);
    REQUIRE(end_marker != std::string::npos);
    const auto end = source.rfind('\n', end_marker) + 1;
    std::vector<std::string> lines;
    std::istringstream in(source.substr(begin, end - begin));
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    std::size_t indent = std::string::npos;
    for (const auto& l : lines)
        if (l.find_first_not_of(' ') != std::string::npos)
            indent = std::min(indent, l.find_first_not_of(' '));
    std::string out;
    for (const auto& l : lines) out += (l.size() >= indent ? l.substr(indent) : std::string()) + "\n";
    return out;
}

}  // namespace

TEST_CASE("README snippets match the lenet_300_100 example") {
    const std::string dir = DYNSPARSE_SOURCE_DIR;
    const std::string readme = read_text(dir + "/README.md");
    const std::string example = read_text(dir + "/examples/lenet_300_100.cpp");
    const std::string whole_loop = read_text(dir + "/examples/train_fashion_mnist.cpp");
    CHECK(readme.find("```cpp\n" + snippet(example, "network") + "```") != std::string::npos);
    CHECK(readme.find("```cpp\n" + snippet(whole_loop, "whole-loop") + "```") != std::string::npos);
    // The README opens with the two commands.
    CHECK(readme.find("./scripts/demo.sh") < readme.find("./scripts/test.sh"));
    CHECK(readme.find("./scripts/test.sh") < 200u);
}
