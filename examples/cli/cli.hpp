#pragma once
// Command-line handling shared by the examples: a tiny "--flag value" parser with
// clear errors, and the JSON run summary.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace examples {

class arguments {
public:
    /// valued: flags that take a value; switches: flags that do not. With a usage text,
    /// --help (or -h) prints it and exits; without one, the caller handles "--help".
    arguments(int argc, char** argv, std::set<std::string> valued, std::set<std::string> switches,
              std::string_view usage = {}) {
        if (!usage.empty()) switches.insert("--help");
        for (int i = 1; i < argc; ++i) {
            const std::string a = std::string_view(argv[i]) == "-h" ? std::string("--help")
                                                                   : std::string(argv[i]);
            if (switches.count(a)) {
                values_.insert_or_assign(a, std::string("1"));
            } else if (valued.count(a)) {
                if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
                values_.insert_or_assign(a, std::string(argv[++i]));
            } else {
                throw std::invalid_argument("unknown option '" + a + "' (see --help)");
            }
        }
        if (!usage.empty() && has("--help")) {
            std::fwrite(usage.data(), 1, usage.size(), stdout);
            std::exit(0);
        }
    }

    bool has(const std::string& flag) const { return values_.count(flag) != 0; }

    std::string text(const std::string& flag, const std::string& fallback) const {
        auto it = values_.find(flag);
        return it == values_.end() ? fallback : it->second;
    }

    double real(const std::string& flag, double fallback) const {
        auto it = values_.find(flag);
        if (it == values_.end()) return fallback;
        char* end = nullptr;
        errno = 0;
        const double v = std::strtod(it->second.c_str(), &end);
        if (end == it->second.c_str() || *end != '\0')
            throw std::invalid_argument(flag + " expects a number, got '" + it->second + "'");
        if (errno == ERANGE && std::abs(v) > 1)
            throw std::invalid_argument(flag + ": '" + it->second + "' is out of range");
        return v;
    }

    std::size_t count(const std::string& flag, std::size_t fallback) const {
        auto it = values_.find(flag);
        if (it == values_.end()) return fallback;
        return parse_count(flag, it->second);
    }

    std::string choice(const std::string& flag, const std::string& fallback,
                       const std::vector<std::string>& allowed) const {
        const std::string v = text(flag, fallback);
        for (const auto& a : allowed)
            if (a == v) return v;
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : "|") + a;
        throw std::invalid_argument(flag + " must be one of " + list + ", got '" + v + "'");
    }

    /// A non-negative decimal integer that is the whole of `text`; overflow is an error.
    static std::size_t parse_count(const std::string& flag, const std::string& text) {
        const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
        if (!digits)
            throw std::invalid_argument(flag + " expects a non-negative integer, got '" + text + "'");
        errno = 0;
        const unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
        if (errno == ERANGE || v > std::numeric_limits<std::size_t>::max())
            throw std::invalid_argument(flag + ": '" + text + "' is out of range");
        return static_cast<std::size_t>(v);
    }

private:
    std::map<std::string, std::string> values_;
};

/// Runs body(); an exception becomes "error: <what>" on stderr and exit status 1, so a
/// bad flag or file ends a program with a message rather than std::terminate.
template <class Body>
int exit_status_of(Body&& body) {
    try {
        body();
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}

}  // namespace examples
