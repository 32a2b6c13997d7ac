#pragma once
// A minimal JSON object writer for run summaries (numbers, strings, bools, lists).
#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace dynsparse {

class json_object {
public:
    json_object& add(std::string_view key, double v) { return raw(key, number(v)); }
    json_object& add(std::string_view key, std::size_t v) { return raw(key, std::to_string(v)); }
    json_object& add(std::string_view key, int v) { return raw(key, std::to_string(v)); }
    json_object& add(std::string_view key, bool v) { return raw(key, v ? "true" : "false"); }
    json_object& add(std::string_view key, std::string_view v) { return raw(key, quote(v)); }
    json_object& add(std::string_view key, const char* v) { return raw(key, quote(v)); }
    json_object& add(std::string_view key, const std::vector<double>& v) {
        std::string s = "[";
        for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + number(v[i]);
        return raw(key, s + "]");
    }
    json_object& add(std::string_view key, const std::vector<std::string>& v) {
        std::string s = "[";
        for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + quote(v[i]);
        return raw(key, s + "]");
    }
    json_object& add(std::string_view key, const json_object& o) { return raw(key, o.str()); }

    std::string str() const { return "{" + body_ + (body_.empty() ? "" : "\n") + "}"; }

    static std::string quote(std::string_view v) {
        std::string s = "\"";
        for (char c : v) {
            switch (c) {
                case '"': s += "\\\""; break;
                case '\\': s += "\\\\"; break;
                case '\n': s += "\\n"; break;
                case '\t': s += "\\t"; break;
                default:
                    if (static_cast<unsigned char>(c) < 0x20) {
                        char buf[8];
                        std::snprintf(buf, sizeof buf, "\\u%04x", c);
                        s += buf;
                    } else {
                        s += c;
                    }
            }
        }
        return s + "\"";
    }

    static std::string number(double v) {
        if (!std::isfinite(v)) return "null";
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.9g", v);
        return buf;
    }

private:
    json_object& raw(std::string_view key, const std::string& value) {
        body_ += (body_.empty() ? "\n  " : ",\n  ") + quote(key) + ": " + value;
        return *this;
    }
    std::string body_;
};

}  // namespace dynsparse
