#pragma once
// Reader for the IDX format of MNIST and Fashion-MNIST (images: magic 0x00000803, labels:
// magic 0x00000801, big-endian header). Files go through zlib's gz* interface, which reads
// gzip-compressed and plain files alike (link with -lz). Any problem throws data_error
// whose message starts with the file path.
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <system_error>
#include <vector>

#include "dynsparse/core/error.hpp"

namespace dynsparse {

/// Images of one IDX file, stored as `count` consecutive rows*cols blocks, row by row.
struct idx_images {
    std::size_t count = 0, rows = 0, cols = 0;
    std::vector<std::uint8_t> pixels;
};

namespace detail {

inline constexpr std::uint32_t idx_images_magic = 0x00000803;
inline constexpr std::uint32_t idx_labels_magic = 0x00000801;

/// The largest payload the reader accepts: 1 GiB. Fashion-MNIST's training images are
/// 47 MB and EMNIST ByClass's 547 MB; a header declaring more is refused before any read,
/// so neither a corrupt header nor a small gzip file that inflates to gigabytes (zeros
/// compress about 1000:1) can make the reader allocate more than this.
inline constexpr std::uint64_t idx_max_payload = std::uint64_t{1} << 30;
static_assert(idx_max_payload <= std::numeric_limits<std::size_t>::max());

/// Trailing data after the payload is counted up to this many bytes and then reported as
/// "more than": a file cannot make the reader inflate an unbounded tail just to count it.
inline constexpr std::uint64_t idx_max_trailing_count = std::uint64_t{1} << 20;

inline constexpr unsigned idx_chunk = 1u << 20;

[[noreturn]] inline void idx_fail(const std::filesystem::path& path, const std::string& what) {
    throw data_error(path.string() + ": " + what);
}

inline std::string hex32(std::uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08X", static_cast<unsigned>(v));
    return buf;
}

inline std::uint32_t read_be32(const unsigned char* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
           std::uint32_t{p[3]};
}

/// Owns a gzFile opened for reading; every read checks zlib's error state.
class gz_reader {
public:
    explicit gz_reader(const std::filesystem::path& path) : path_(path) {
        std::error_code ec;
        const auto status = std::filesystem::status(path, ec);
        if (status.type() == std::filesystem::file_type::not_found)
            idx_fail(path, "cannot open: no such file");
        if (ec) idx_fail(path, "cannot open: " + ec.message());
        if (std::filesystem::is_directory(status)) idx_fail(path, "cannot open: it is a directory");
        errno = 0;
        file_ = gzopen(path.string().c_str(), "rb");
        if (file_ == nullptr)
            idx_fail(path,
                     std::string("cannot open: ") + (errno != 0 ? std::strerror(errno) : "out of memory"));
        gzbuffer(file_, 1u << 17);
    }
    gz_reader(const gz_reader&) = delete;
    gz_reader& operator=(const gz_reader&) = delete;
    ~gz_reader() { gzclose_r(file_); }

    /// Reads up to n bytes into out; returns fewer only at the end of the data.
    std::size_t read(unsigned char* out, std::size_t n) {
        std::size_t got = 0;
        while (got < n) {
            const auto want = static_cast<unsigned>(std::min<std::size_t>(n - got, idx_chunk));
            const int r = gzread(file_, out + got, want);
            if (r < 0) fail_stream();
            got += static_cast<std::size_t>(r);
            consumed_ += static_cast<std::uint64_t>(r);
            if (static_cast<unsigned>(r) < want) {
                check_stream();
                break;
            }
        }
        return got;
    }

    /// Counts (and discards) the bytes left in the file, reading at most limit + 1 of them;
    /// a result above `limit` means "more than limit".
    std::uint64_t drain(std::uint64_t limit) {
        unsigned char buf[4096];
        std::uint64_t total = 0;
        while (total <= limit) {
            const std::size_t r = read(buf, static_cast<std::size_t>(std::min<std::uint64_t>(sizeof buf, limit + 1 - total)));
            total += r;
            if (r == 0) break;
        }
        return total;
    }

private:
    // A short read is the end of the data unless zlib flagged an error (a gzip stream that
    // stops mid-way leaves Z_BUF_ERROR behind without failing the read itself).
    void check_stream() {
        int code = Z_OK;
        gzerror(file_, &code);
        if (code != Z_OK) fail_stream();
    }

    [[noreturn]] void fail_stream() {
        int code = Z_OK;
        const char* raw = gzerror(file_, &code);
        // zlib prefixes its message with the path, which ours already starts with.
        std::string msg = raw != nullptr && *raw ? raw : "unknown error";
        const std::string prefix = path_.string() + ": ";
        if (msg.starts_with(prefix)) msg.erase(0, prefix.size());
        const std::string what =
            code == Z_ERRNO ? "read error: " + msg : "corrupt gzip stream (zlib: " + msg + ")";
        idx_fail(path_, what + " after " + std::to_string(consumed_) + " bytes of data");
    }

    std::filesystem::path path_;
    gzFile file_ = nullptr;
    std::uint64_t consumed_ = 0;  // decompressed bytes read so far
};

inline std::string idx_magic_hint(std::uint32_t found) {
    if (found == idx_images_magic) return " (this looks like an IDX image file)";
    if (found == idx_labels_magic) return " (this looks like an IDX label file)";
    if ((found >> 16) == 0) {
        char buf[64];
        std::snprintf(buf, sizeof buf, " (an IDX file of type 0x%02X with %u dimensions)",
                      static_cast<unsigned>((found >> 8) & 0xFF), static_cast<unsigned>(found & 0xFF));
        return buf;
    }
    return " (not an IDX file)";
}

/// Reads a header of `words` big-endian u32 words; checks the magic before the length so
/// that a wrong kind of file is reported as such.
inline std::vector<std::uint32_t> read_idx_header(gz_reader& in, const std::filesystem::path& path,
                                                  std::uint32_t magic, std::size_t words, const char* kind) {
    unsigned char buf[16];
    const std::size_t want = 4 * words;
    const std::size_t got = in.read(buf, want);
    if (got >= 4) {
        const std::uint32_t found = read_be32(buf);
        if (found != magic)
            idx_fail(path, std::string("wrong magic number for an IDX ") + kind + " file: expected " +
                               hex32(magic) + ", found " + hex32(found) + idx_magic_hint(found));
    }
    if (got < want)
        idx_fail(path, std::string("file too short for its header: an IDX ") + kind + " header is " +
                           std::to_string(want) + " bytes, found " + std::to_string(got));
    std::vector<std::uint32_t> header(words);
    for (std::size_t i = 0; i < words; ++i) header[i] = read_be32(buf + 4 * i);
    return header;
}

/// Reads exactly `bytes` of payload and checks that nothing follows it. The buffer grows
/// with the data that actually arrives (doubling, never beyond `bytes`), so a header that
/// declares more than the file holds costs no more than what the file holds.
inline std::vector<std::uint8_t> read_idx_payload(gz_reader& in, const std::filesystem::path& path,
                                                  std::uint64_t bytes, std::size_t header_bytes) {
    const auto n = static_cast<std::size_t>(bytes);
    std::vector<std::uint8_t> data;
    std::size_t have = 0;
    while (have < n) {
        const std::size_t step = std::min<std::size_t>(n - have, idx_chunk);
        // Our own growth policy: std::vector's could reserve up to twice the declared size.
        if (have + step > data.capacity())
            data.reserve(std::min(n, std::max(have + step, 2 * data.capacity())));
        data.resize(have + step);
        const std::size_t got = in.read(data.data() + have, step);
        have += got;
        if (got < step) break;
    }
    if (have < n)
        idx_fail(path, "truncated payload: expected " + std::to_string(n) +
                           " bytes after the header, found " + std::to_string(have));
    const std::uint64_t extra = in.drain(idx_max_trailing_count);
    if (extra > idx_max_trailing_count)
        idx_fail(path, "more than " + std::to_string(idx_max_trailing_count) +
                           " trailing bytes after the payload (expected " + std::to_string(header_bytes + n) +
                           " bytes in total)");
    if (extra > 0)
        idx_fail(path, std::to_string(extra) + " trailing bytes after the payload (expected " +
                           std::to_string(header_bytes + n) + " bytes in total)");
    return data;
}

/// The refusal of a header whose payload exceeds idx_max_payload; `declared` is the payload
/// in bytes, or 0 when it does not even fit in 64 bits.
[[noreturn]] inline void idx_too_large(const std::filesystem::path& path, const std::string& dims,
                                       std::uint64_t declared) {
    idx_fail(path, "absurd dimensions in header: " + dims + " declare " +
                       (declared == 0 ? std::string("more than 2^64") : std::to_string(declared)) +
                       " bytes of data, above the reader's limit of " + std::to_string(idx_max_payload) +
                       " bytes (dynsparse::detail::idx_max_payload)");
}

}  // namespace detail

/// Reads an IDX image file (plain or .gz): magic 0x00000803, count, rows, cols, pixels.
inline idx_images read_idx_images(const std::filesystem::path& path) {
    detail::gz_reader in(path);
    const auto h = detail::read_idx_header(in, path, detail::idx_images_magic, 4, "image");
    const std::uint64_t count = h[1], rows = h[2], cols = h[3];
    const auto dims = [&] {
        return std::to_string(count) + " images of " + std::to_string(rows) + "x" + std::to_string(cols);
    };
    if (count == 0 || rows == 0 || cols == 0) detail::idx_fail(path, "zero dimension in header: " + dims());
    // rows*cols < 2^64 always; the count is only multiplied in once the product is known small.
    const std::uint64_t per_image = rows * cols;
    if (per_image > detail::idx_max_payload || count > detail::idx_max_payload / per_image)
        detail::idx_too_large(path, dims(),
                              count <= std::numeric_limits<std::uint64_t>::max() / per_image ? count * per_image : 0);
    idx_images out;
    out.count = static_cast<std::size_t>(count);
    out.rows = static_cast<std::size_t>(rows);
    out.cols = static_cast<std::size_t>(cols);
    out.pixels = detail::read_idx_payload(in, path, count * per_image, 16);
    return out;
}

/// Reads an IDX label file (plain or .gz): magic 0x00000801, count, labels; every label
/// must be below `classes`.
inline std::vector<std::uint8_t> read_idx_labels(const std::filesystem::path& path,
                                                 std::size_t classes = 10) {
    if (classes == 0)
        throw invalid_argument("read_idx_labels(" + path.string() + "): classes must be positive");
    detail::gz_reader in(path);
    const auto h = detail::read_idx_header(in, path, detail::idx_labels_magic, 2, "label");
    const std::uint64_t count = h[1];
    if (count == 0) detail::idx_fail(path, "zero dimension in header: 0 labels");
    if (count > detail::idx_max_payload) detail::idx_too_large(path, std::to_string(count) + " labels", count);
    auto labels = detail::read_idx_payload(in, path, count, 8);
    for (std::size_t i = 0; i < labels.size(); ++i)
        if (labels[i] >= classes)
            detail::idx_fail(path, "label out of range: item " + std::to_string(i) + " has label " +
                                       std::to_string(labels[i]) + ", expected a value below " +
                                       std::to_string(classes));
    return labels;
}

}  // namespace dynsparse
