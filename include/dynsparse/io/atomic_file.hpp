#pragma once
// Writing files so that a crash never leaves a half-written file in place: write to a
// new temporary file next to the target, flush and fsync it, rename it over the target,
// then fsync the directory so the rename itself survives a power loss.
//
// Only regular files are replaced. A target that exists and is something else (a device
// such as /dev/null or /dev/full, a directory, a fifo, a socket) is refused with a
// data_error naming it, before anything is written: renaming over it would destroy it.
// A symbolic link to a regular file is kept, and the file it points to is replaced. The
// temporary file gets a name no other file has (created exclusively), so no existing file
// is overwritten on the way, and it is removed when anything fails. A replaced file keeps
// its permission bits.
//
// Given a signature (how files of that kind begin: the 8-byte magic of a checkpoint or an
// exported model, "{" of a JSON summary, the header of a CSV log), an existing non-empty
// file is replaced only when it begins with it, so that a typo such as
// `--save train-images-idx3-ubyte` cannot destroy data. `force` replaces it anyway.
// check_output_path runs the same checks before a long run writes anything.
#include <cerrno>
#include <algorithm>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>

#include "dynsparse/core/error.hpp"

namespace dynsparse {

namespace detail {

inline const char* file_type_name(std::filesystem::file_type t) {
    using ft = std::filesystem::file_type;
    switch (t) {
        case ft::directory: return "a directory";
        case ft::character: return "a character device";
        case ft::block: return "a block device";
        case ft::fifo: return "a fifo";
        case ft::socket: return "a socket";
        default: return "not a regular file";
    }
}

}  // namespace detail

/// The file a write to `path` should replace: `path` itself, or the regular file a
/// symbolic link at `path` points to. Throws data_error (naming `path` and `what`, e.g.
/// "checkpoint") when `path` exists and is not a regular file, or is a dangling link.
inline std::filesystem::path checked_write_target(const std::filesystem::path& path, std::string_view what = "file") {
    namespace fs = std::filesystem;
    if (path.empty()) throw data_error(std::string("no path given for the ") + std::string(what));
    std::error_code ec;
    const fs::file_status link = fs::symlink_status(path, ec);
    if (link.type() == fs::file_type::not_found) return path;
    const fs::file_status target = fs::status(path, ec);
    const std::string refuse = path.string() + ": refusing to write the " + std::string(what) + " over ";
    if (fs::is_symlink(link) && target.type() == fs::file_type::not_found)
        throw data_error(refuse + "a dangling symbolic link");
    if (target.type() != fs::file_type::regular)
        throw data_error(refuse + (fs::is_symlink(link) ? "a symbolic link to " : "") +
                         detail::file_type_name(target.type()) +
                         ": only regular files are replaced (give the path of a file)");
    return fs::is_symlink(link) ? fs::canonical(path) : path;
}

/// Throws data_error when `target` is a non-empty file that does not begin with
/// `signature` (and force is false): it is not ours to replace.
inline void check_replaceable(const std::filesystem::path& path, const std::filesystem::path& target,
                              std::string_view signature, std::string_view what, bool force) {
    if (force || signature.empty()) return;
    std::ifstream in(target, std::ios::binary);
    if (!in) return;  // unreadable: the write itself reports what is wrong
    std::string head(signature.size(), '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    const std::size_t got = static_cast<std::size_t>(in.gcount());
    if (got == 0) return;  // an empty file holds nothing to lose
    if (got < head.size() || head != signature)
        throw data_error(path.string() + ": refusing to replace an existing file that is not a " +
                         std::string(what) + " (its first bytes differ); remove it, choose another " +
                         "path, or force the write (--force)");
}

/// Checks, before anything is written, that a `what` can later be written to `path`: its
/// directory exists and is writable, the path is not a directory or other non-regular
/// file, and an existing file there begins with `signature` (unless force). Throws
/// data_error naming the path and the reason.
inline void check_output_path(const std::filesystem::path& path, std::string_view what,
                              std::string_view signature, bool force = false) {
    const std::filesystem::path target = checked_write_target(path, what);
    const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec))
        throw data_error(path.string() + ": cannot write the " + std::string(what) + ": directory " +
                         dir.string() + (std::filesystem::exists(dir, ec) ? " is not a directory" : " does not exist"));
    if (::access(dir.c_str(), W_OK | X_OK) != 0)
        throw data_error(path.string() + ": cannot write the " + std::string(what) + " into " + dir.string() +
                         ": " + std::strerror(errno));
    check_replaceable(path, target, signature, what, force);
}

/// signature: how a file of this kind begins (a frame's 8-byte magic, "{" for JSON);
/// empty = replace any regular file. force: replace even a file without the signature.
inline void write_file_atomically(const std::filesystem::path& path, std::string_view content,
                                  std::string_view what = "file", std::string_view signature = {},
                                  bool force = false) {
    const std::filesystem::path target = checked_write_target(path, what);
    check_replaceable(path, target, signature, what, force);
    struct stat old {};
    const bool replacing = ::stat(target.c_str(), &old) == 0;

    // A fresh temporary name next to the target: <name>.<pid>.<n>.tmp, created exclusively.
    std::string tmp;
    int fd = -1;
    for (unsigned n = 0; fd < 0 && n < 100; ++n) {
        tmp = target.string() + "." + std::to_string(::getpid()) + "." + std::to_string(n) + ".tmp";
        fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0)
        throw data_error(path.string() + ": cannot create a temporary file next to it (" + tmp +
                         "): " + std::strerror(errno));
    bool ok = true;
    int err = 0;  // the first failure's errno
    auto fail = [&] {
        if (ok) err = errno != 0 ? errno : EIO;
        ok = false;
    };
    for (std::size_t done = 0; ok && done < content.size();) {
        errno = 0;
        const ::ssize_t w = ::write(fd, content.data() + done, content.size() - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) fail();
        else done += static_cast<std::size_t>(w);
    }
    if (ok && replacing && ::fchmod(fd, old.st_mode & 07777) != 0) fail();
    if (ok && ::fsync(fd) != 0) fail();
    if (::close(fd) != 0) fail();
    std::error_code ec;
    if (!ok) {
        std::filesystem::remove(tmp, ec);
        throw data_error(path.string() + ": writing " + tmp + " failed: " + std::strerror(err) +
                         "; the previous file is unchanged");
    }
    std::filesystem::rename(tmp, target, ec);
    if (ec) {
        std::error_code ignored;
        std::filesystem::remove(tmp, ignored);
        throw data_error(path.string() + ": cannot rename the temporary file over it: " + ec.message());
    }
    const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {  // best effort: the file is already in place
        ::fsync(dfd);
        ::close(dfd);
    }
}

}  // namespace dynsparse
