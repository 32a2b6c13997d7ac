#pragma once
// Writing files so that a crash never leaves a half-written file in place: write to a
// temporary file next to the target, flush and fsync it, rename it over the target, then
// fsync the directory so the rename itself survives a power loss.
#include <cstdio>
#include <fcntl.h>
#include <filesystem>
#include <string>
#include <string_view>
#include <unistd.h>

#include "dynsparse/core/error.hpp"

namespace dynsparse {

inline void write_file_atomically(const std::filesystem::path& path, std::string_view content) {
    const std::filesystem::path tmp = path.string() + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (f == nullptr) throw data_error(path.string() + ": cannot open " + tmp.string() + " for writing");
    const bool ok = std::fwrite(content.data(), 1, content.size(), f) == content.size() &&
                    std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
    if (std::fclose(f) != 0 || !ok) {
        std::filesystem::remove(tmp);
        throw data_error(path.string() + ": writing " + tmp.string() + " failed (disk full?)");
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) throw data_error(path.string() + ": cannot rename the temporary file: " + ec.message());
    const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {  // best effort: the file is already in place
        ::fsync(dfd);
        ::close(dfd);
    }
}

}  // namespace dynsparse
