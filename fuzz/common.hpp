#pragma once
// Shared by the fuzz targets: a tiny network like the tests' tiny_dst, seed files, and a
// per-process scratch path.
#include <dynsparse/dynsparse.hpp>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <unistd.h>

namespace fuzz {

namespace ds = dynsparse;

struct tiny_net : ds::sequential<ds::input<1, 5, 5>, ds::masked_conv2d<3, 2>, ds::relu, ds::max_pool2d<2>,
                                 ds::flatten, ds::masked_dense<6>, ds::relu, ds::masked_dense<3>> {};

/// A tiny recurrent network: two masked LSTMs, last step, a head (the lstm and last_step
/// records of the exported-model format).
struct tiny_lstm_net : ds::sequential<ds::sequence_input<3, 2>, ds::masked_lstm<3>, ds::masked_lstm<2>, ds::last_step,
                                      ds::dense<2>> {};

/// With DYNSPARSE_FUZZ_SEEDS=DIR set, LLVMFuzzerInitialize writes its seed inputs there.
inline void write_seed(const std::string& name, std::string_view bytes) {
    const char* dir = std::getenv("DYNSPARSE_FUZZ_SEEDS");
    if (dir == nullptr) return;
    std::filesystem::create_directories(dir);
    std::ofstream(std::filesystem::path(dir) / name, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// Input format of the checkpoint and model targets: the first byte chooses whether the
/// rest is a whole file (even) or a payload to be framed with a valid checksum (odd), so
/// the parser behind the checksum gets explored too.
inline std::string as_file(const std::uint8_t* data, std::size_t size, const ds::file_kind& kind) {
    if (size == 0) return {};
    const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
    if ((data[0] & 1) == 0) return std::string(rest);
    return ds::frame(kind.magic, kind.version, rest);
}

inline std::string payload_seed(const std::string& file, const ds::file_kind& kind) {
    return "\x01" + std::string(ds::unframe(file, "seed", kind));
}

}  // namespace fuzz
