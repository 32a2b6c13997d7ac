#pragma once
// Writes small CIFAR-10 binary batch files (the real format: 1 label byte + 3072 pixel
// bytes per record) with deterministic contents, for the reader tests and the examples'
// smoke runs.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace dynsparse::testing {

/// Record r of a synthetic file: label (r + salt) % 10, pixel i = (r * 7 + i * 3 + salt) % 256,
/// plus a class-dependent brightening of the red channel so a network can learn something.
inline std::vector<unsigned char> synthetic_cifar_record(std::size_t r, std::size_t salt) {
    std::vector<unsigned char> rec(3073);
    const auto label = static_cast<unsigned char>((r + salt) % 10);
    rec[0] = label;
    for (std::size_t i = 0; i < 3072; ++i) {
        std::size_t v = (r * 7 + i * 3 + salt) % 256;
        if (i < 1024) v = (v / 2 + label * 12) % 256;
        rec[1 + i] = static_cast<unsigned char>(v);
    }
    return rec;
}

inline void write_synthetic_cifar_file(const std::filesystem::path& path, std::size_t records,
                                       std::size_t salt) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write " + path.string());
    for (std::size_t r = 0; r < records; ++r) {
        const auto rec = synthetic_cifar_record(r, salt);
        out.write(reinterpret_cast<const char*>(rec.data()), static_cast<std::streamsize>(rec.size()));
    }
}

/// data_batch_1.bin ... data_batch_5.bin with `per_batch` records each and test_batch.bin
/// with `test` records, in dir (created if needed).
inline void write_synthetic_cifar_directory(const std::filesystem::path& dir, std::size_t per_batch,
                                            std::size_t test) {
    std::filesystem::create_directories(dir);
    for (std::size_t b = 1; b <= 5; ++b)
        write_synthetic_cifar_file(dir / ("data_batch_" + std::to_string(b) + ".bin"), per_batch, b);
    write_synthetic_cifar_file(dir / "test_batch.bin", test, 0);
}

}  // namespace dynsparse::testing
