#pragma once
// The framing shared by dynsparse's binary files (checkpoints, exported models):
//
//   magic       8 bytes, names the kind of file
//   version     u32
//   size        u64, bytes of payload
//   payload     `size` bytes
//   checksum    u32, CRC-32 (zlib) of the payload
//
// All numbers little-endian. byte_writer builds a payload; frame() wraps it; unframe()
// checks magic, version, size and checksum and returns the payload; byte_reader reads it
// back with a bounds check on every read. Every failure is a data_error that names the
// file and what is wrong.
#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <vector>
#include <zlib.h>

#include "dynsparse/core/error.hpp"

namespace dynsparse {

static_assert(std::endian::native == std::endian::little,
              "dynsparse's binary files are written in the host's byte order, little-endian");

namespace detail {

inline constexpr std::size_t frame_header_bytes = 8 + 4 + 8;
inline constexpr std::size_t frame_bytes = frame_header_bytes + 4;

inline std::uint32_t crc32_of(std::string_view bytes) {
    uLong crc = ::crc32(0L, Z_NULL, 0);
    std::size_t done = 0;
    while (done < bytes.size()) {  // zlib takes a uInt length
        const std::size_t n = std::min<std::size_t>(bytes.size() - done, 1u << 30);
        crc = ::crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + done), static_cast<uInt>(n));
        done += n;
    }
    return static_cast<std::uint32_t>(crc);
}

}  // namespace detail

/// Appends little-endian numbers, strings and float arrays to a byte string.
class byte_writer {
public:
    void u8(std::uint8_t v) { put(&v, 1); }
    void u32(std::uint32_t v) { put(&v, 4); }
    void u64(std::uint64_t v) { put(&v, 8); }
    void f32(float v) { put(&v, 4); }
    void text(std::string_view s) {
        u64(s.size());
        put(s.data(), s.size());
    }
    /// A length-prefixed float array.
    void floats(std::span<const float> v) {
        u64(v.size());
        put(v.data(), v.size() * sizeof(float));
    }
    template <class T>
    void raw(std::span<const T> v) {
        put(v.data(), v.size() * sizeof(T));
    }
    const std::string& bytes() const { return out_; }
    std::string& bytes() { return out_; }

private:
    void put(const void* p, std::size_t n) { out_.append(static_cast<const char*>(p), n); }
    std::string out_;
};

/// Reads what byte_writer wrote; any read past the end, or a length that cannot fit in
/// what is left, is a data_error naming the file and the field.
class byte_reader {
public:
    byte_reader(std::string_view bytes, std::string file) : data_(bytes), file_(std::move(file)) {}

    [[noreturn]] void fail(const std::string& what) const {
        throw data_error(file_ + ": " + what + " (at byte " + std::to_string(pos_) + " of the payload)");
    }

    std::uint8_t u8(const char* field) { return get<std::uint8_t>(field); }
    std::uint32_t u32(const char* field) { return get<std::uint32_t>(field); }
    std::uint64_t u64(const char* field) { return get<std::uint64_t>(field); }
    float f32(const char* field) { return get<float>(field); }

    std::string text(const char* field) {
        const std::uint64_t n = length(field, 1);
        std::string s(data_.substr(pos_, static_cast<std::size_t>(n)));
        pos_ += static_cast<std::size_t>(n);
        return s;
    }

    /// A length-prefixed float array whose length must be `expected`.
    void floats_into(std::span<float> out, const std::string& field) {
        const std::uint64_t n = length(field.c_str(), sizeof(float));
        if (n != out.size())
            fail(field + " has " + std::to_string(n) + " values, expected " + std::to_string(out.size()));
        raw_into(out, field.c_str());
    }
    /// A length-prefixed float array of any length that fits in the file.
    std::vector<float> floats(const char* field) {
        std::vector<float> v(static_cast<std::size_t>(length(field, sizeof(float))));
        raw_into(std::span<float>(v), field);
        return v;
    }
    template <class T>
    void raw_into(std::span<T> out, const char* field) {
        const std::size_t n = out.size() * sizeof(T);
        if (n > remaining()) fail(std::string("truncated ") + field);
        if (n) std::memcpy(out.data(), data_.data() + pos_, n);
        pos_ += n;
    }

    /// Reads a u64 count of items of `item_bytes` each and checks they fit in what is left.
    std::uint64_t length(const char* field, std::size_t item_bytes) {
        const std::uint64_t n = u64(field);
        if (item_bytes != 0 && n > remaining() / item_bytes)
            fail(std::string(field) + ": length " + std::to_string(n) + " exceeds the " +
                 std::to_string(remaining()) + " bytes left");
        return n;
    }

    std::size_t remaining() const { return data_.size() - pos_; }
    void expect_end() const {
        if (pos_ != data_.size())
            fail(std::to_string(remaining()) + " unexpected bytes after the last record");
    }
    const std::string& file() const { return file_; }

private:
    template <class T>
    T get(const char* field) {
        if (sizeof(T) > remaining()) fail(std::string("truncated ") + field);
        T v;
        std::memcpy(&v, data_.data() + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }
    std::string_view data_;
    std::string file_;
    std::size_t pos_ = 0;
};

/// magic (8 bytes), version, size, payload, CRC-32.
inline std::string frame(std::string_view magic, std::uint32_t version, std::string_view payload) {
    byte_writer w;
    w.raw(std::span<const char>(magic.data(), 8));
    w.u32(version);
    w.u64(payload.size());
    w.bytes().append(payload);
    w.u32(detail::crc32_of(payload));
    return std::move(w.bytes());
}

/// What a file of one kind is called in messages, and its magic.
struct file_kind {
    std::string_view magic;  ///< exactly 8 bytes
    std::string_view name;   ///< "dynsparse checkpoint"
    std::uint32_t version;   ///< the only version this build reads
};

inline constexpr file_kind checkpoint_kind{"DSCKPT\x01\n", "dynsparse checkpoint", 2};
inline constexpr file_kind exported_model_kind{"DSMODEL\n", "dynsparse exported model", 1};
inline constexpr file_kind known_file_kinds[] = {checkpoint_kind, exported_model_kind};

/// Checks the frame of `bytes` (read from `file`) and returns the payload. `others` are
/// kinds this is not, recognised by their magic for a better message.
inline std::string_view unframe(std::string_view bytes, const std::string& file, const file_kind& kind,
                                std::span<const file_kind> others = {}) {
    auto fail = [&](const std::string& what) -> void { throw data_error(file + ": " + what); };
    if (bytes.size() < 8 || bytes.substr(0, 8) != kind.magic) {
        for (const file_kind& o : others)
            if (bytes.size() >= 8 && bytes.substr(0, 8) == o.magic)
                fail("this is a " + std::string(o.name) + ", not a " + std::string(kind.name));
        fail("not a " + std::string(kind.name) + " (wrong magic number" +
             (bytes.size() < 8 ? ", the file has only " + std::to_string(bytes.size()) + " bytes)" : ")"));
    }
    if (bytes.size() < detail::frame_bytes)
        fail("truncated: " + std::to_string(bytes.size()) + " bytes, shorter than the " +
             std::to_string(detail::frame_bytes) + "-byte frame");
    byte_reader head(bytes.substr(8, 12), file);
    const std::uint32_t version = head.u32("version");
    const std::uint64_t size = head.u64("payload size");
    if (version != kind.version)
        fail("unsupported " + std::string(kind.name) + " version " + std::to_string(version) +
             " (this build reads version " + std::to_string(kind.version) + ")");
    const std::uint64_t have = bytes.size() - detail::frame_bytes;
    if (size > have)
        fail("truncated: the header announces " + std::to_string(size) + " bytes of payload, the file holds " +
             std::to_string(have));
    if (size < have)
        fail(std::to_string(have - size) + " trailing bytes after the payload");
    const std::string_view payload = bytes.substr(detail::frame_header_bytes, static_cast<std::size_t>(size));
    std::uint32_t stored;
    std::memcpy(&stored, bytes.data() + detail::frame_header_bytes + size, 4);
    if (stored != detail::crc32_of(payload)) fail("checksum mismatch: the file is corrupted");
    return payload;
}

/// The whole file as bytes; a data_error naming the file when it cannot be read.
inline std::string read_binary_file(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
        throw data_error(path.string() + ": cannot open: " +
                         (std::filesystem::exists(path, ec) ? "not a regular file" : "no such file"));
    std::ifstream in(path, std::ios::binary);
    if (!in) throw data_error(path.string() + ": cannot open for reading");
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw data_error(path.string() + ": read error");
    return bytes;
}

}  // namespace dynsparse
