// libFuzzer target: the IDX readers (data/idx.hpp), plain and gzip, must refuse every bad
// input with a data_error. The readers take a path, so the input goes through a file.
#include "common.hpp"

#include <cstdio>
#include <zlib.h>

namespace {
using namespace fuzz;

std::string scratch_path() {
    return (std::filesystem::temp_directory_path() / ("dynsparse_fuzz_idx_" + std::to_string(::getpid()))).string();
}

std::string be32(std::uint32_t v) {
    return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    std::string images = be32(0x803) + be32(2) + be32(3) + be32(3) + std::string(18, '\x7f');
    std::string labels = be32(0x801) + be32(3) + std::string("\x01\x02\x09", 3);
    write_seed("images", images);
    write_seed("labels", labels);
    // A gzip-compressed copy of the images.
    uLongf n = compressBound(static_cast<uLong>(images.size())) + 32;
    std::string gz(n, '\0');
    z_stream s{};
    deflateInit2(&s, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    s.next_in = reinterpret_cast<Bytef*>(images.data());
    s.avail_in = static_cast<uInt>(images.size());
    s.next_out = reinterpret_cast<Bytef*>(gz.data());
    s.avail_out = static_cast<uInt>(gz.size());
    deflate(&s, Z_FINISH);
    gz.resize(s.total_out);
    deflateEnd(&s);
    write_seed("images_gz", gz);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const std::string path = scratch_path();
    {
        std::FILE* f = std::fopen(path.c_str(), "wb");
        if (f == nullptr) return 0;
        std::fwrite(data, 1, size, f);
        std::fclose(f);
    }
    try {
        ds::read_idx_images(path);
    } catch (const ds::data_error&) {
    }
    try {
        ds::read_idx_labels(path, 10);
    } catch (const ds::data_error&) {
    }
    return 0;
}
