#pragma once
// CIFAR-10 in its binary form (https://www.cs.toronto.edu/~kriz/cifar.html): each file is
// a sequence of 3073-byte records, one label byte (0-9) and 3072 pixel bytes, the 1024
// red, then green, then blue values of a 32x32 image, row by row. The training set is
// data_batch_1.bin ... data_batch_5.bin, the test set test_batch.bin.
//
// Images load as (3, 32, 32) samples (3072 floats, channel-major, the layout of the
// network's input<3, 32, 32>) scaled to [0, 1]. Also here: per-channel statistics and
// normalisation, and the standard augmentation (zero-pad 4 + random 32x32 crop, random
// horizontal flip) applied to a batch in place, for train_config::augment.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "dynsparse/core/error.hpp"
#include "dynsparse/core/rng.hpp"
#include "dynsparse/core/tensor.hpp"
#include "dynsparse/data/dataset.hpp"

namespace dynsparse {

inline constexpr std::size_t cifar10_channels = 3, cifar10_side = 32;
inline constexpr std::size_t cifar10_pixels = cifar10_channels * cifar10_side * cifar10_side;  // 3072
inline constexpr std::size_t cifar10_record = 1 + cifar10_pixels;                               // 3073

/// The most records the reader takes from one file: 60000, the whole of CIFAR-10 (the
/// official batch files hold 10000). Each record becomes 3072 floats, four times its size
/// on disk, so without a bound a large (or sparse, mostly holes) file would make the
/// reader allocate four times whatever size the file claims.
inline constexpr std::size_t cifar10_max_records = 60000;

namespace detail {

/// Checks a CIFAR-10 batch file's size and returns its number of records; throws
/// data_error naming the file when it is missing, a directory, empty, not a whole number
/// of records or above cifar10_max_records.
inline std::size_t cifar10_record_count(const std::filesystem::path& path) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (status.type() == std::filesystem::file_type::not_found)
        throw data_error(path.string() + ": cannot open: no such file");
    if (std::filesystem::is_directory(status))
        throw data_error(path.string() + ": cannot open: it is a directory");
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) throw data_error(path.string() + ": cannot read its size: " + ec.message());
    if (size == 0) throw data_error(path.string() + ": empty file, expected CIFAR-10 records of 3073 bytes");
    if (size % cifar10_record != 0)
        throw data_error(path.string() + ": size " + std::to_string(size) +
                         " bytes is not a whole number of 3073-byte CIFAR-10 records (1 label byte + "
                         "3072 pixel bytes); the file is truncated or not a CIFAR-10 binary batch");
    if (size / cifar10_record > cifar10_max_records)
        throw data_error(path.string() + ": size " + std::to_string(size) + " bytes declares " +
                         std::to_string(size / cifar10_record) + " records, above the reader's limit of " +
                         std::to_string(cifar10_max_records) +
                         " records per file (dynsparse::cifar10_max_records; a CIFAR-10 batch holds 10000)");
    return static_cast<std::size_t>(size / cifar10_record);
}

/// Reads the n records of `path` (counted by cifar10_record_count) straight into their
/// final place: n rows of 3072 floats at `images`, n labels at `labels`.
inline void read_cifar10_records(const std::filesystem::path& path, std::size_t n, float* images,
                                 std::uint8_t* labels) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw data_error(path.string() + ": cannot open for reading");
    constexpr std::size_t chunk = 256;  // records per read: 786 KB
    std::vector<unsigned char> buf(std::min(n, chunk) * cifar10_record);
    for (std::size_t first = 0; first < n; first += chunk) {
        const std::size_t count = std::min(chunk, n - first);
        if (!in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(count * cifar10_record)))
            throw data_error(path.string() + ": read failed at record " +
                             std::to_string(first + static_cast<std::size_t>(in.gcount()) / cifar10_record) +
                             " of " + std::to_string(n));
        for (std::size_t k = 0; k < count; ++k) {
            const unsigned char* record = buf.data() + k * cifar10_record;
            const std::size_t r = first + k;
            if (record[0] > 9)
                throw data_error(path.string() + ": record " + std::to_string(r) + " has label " +
                                 std::to_string(record[0]) + "; CIFAR-10 labels are 0-9");
            labels[r] = record[0];
            float* dst = images + r * cifar10_pixels;
            for (std::size_t i = 0; i < cifar10_pixels; ++i)
                dst[i] = static_cast<float>(record[1 + i]) * (1.0f / 255.0f);
        }
    }
}

}  // namespace detail

/// Reads one CIFAR-10 binary batch file. Throws data_error naming the file when it cannot
/// be read, is empty, is not a whole number of 3073-byte records, holds more than
/// cifar10_max_records or a label > 9.
inline dataset load_cifar10_batch(const std::filesystem::path& path) {
    const std::size_t n = detail::cifar10_record_count(path);
    dataset d;
    d.classes = 10;
    d.images = matrix::from_shape({n, cifar10_pixels});
    d.labels.resize(n);
    detail::read_cifar10_records(path, n, d.images.data(), d.labels.data());
    return d;
}

/// Loads data_batch_1.bin ... data_batch_5.bin (training) and test_batch.bin from `dir`
/// (the cifar-10-batches-bin directory of the official archive). The five training files
/// are read straight into one training set (no per-file copies).
inline train_test load_cifar10_directory(const std::filesystem::path& dir) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec))
        throw data_error(dir.string() + ": " +
                         (std::filesystem::exists(dir, ec) ? "not a directory" : "data directory does not exist"));
    std::vector<std::string> names;
    for (int i = 1; i <= 5; ++i) names.push_back("data_batch_" + std::to_string(i) + ".bin");
    names.push_back("test_batch.bin");
    std::string missing;
    for (const auto& n : names) {
        if (std::filesystem::is_directory(dir / n, ec))
            throw data_error((dir / n).string() + ": cannot read it: it is a directory, not a CIFAR-10 batch file");
        if (!std::filesystem::is_regular_file(dir / n, ec)) missing += (missing.empty() ? "" : ", ") + n;
    }
    if (!missing.empty())
        throw data_error(dir.string() + ": missing CIFAR-10 file(s): " + missing +
                         " (expected the binary version, cifar-10-batches-bin)");
    std::size_t counts[5], total = 0;
    for (std::size_t i = 0; i < 5; ++i) total += counts[i] = detail::cifar10_record_count(dir / names[i]);
    train_test out;
    out.train.classes = 10;
    out.train.images = matrix::from_shape({total, cifar10_pixels});
    out.train.labels.resize(total);
    std::size_t row = 0;
    for (std::size_t i = 0; i < 5; ++i) {
        detail::read_cifar10_records(dir / names[i], counts[i], out.train.images.data() + row * cifar10_pixels,
                                     out.train.labels.data() + row);
        row += counts[i];
    }
    out.test = load_cifar10_batch(dir / names[5]);
    return out;
}

/// Per-channel mean and (population) standard deviation of (C, H*W) samples.
struct channel_statistics {
    std::vector<float> mean, stddev;
};

inline channel_statistics compute_channel_statistics(const dataset& d, std::size_t channels) {
    const std::size_t f = d.features();
    if (d.size() == 0 || channels == 0 || f % channels != 0)
        throw invalid_argument("compute_channel_statistics: need a non-empty dataset whose " +
                               std::to_string(f) + " features split into " + std::to_string(channels) +
                               " channels");
    const std::size_t hw = f / channels;
    channel_statistics s;
    for (std::size_t c = 0; c < channels; ++c) {
        double sum = 0;
        for (std::size_t r = 0; r < d.size(); ++r)
            for (std::size_t p = 0; p < hw; ++p) sum += d.images.data()[r * f + c * hw + p];
        const double count = static_cast<double>(d.size() * hw), mean = sum / count;
        double sq = 0;
        for (std::size_t r = 0; r < d.size(); ++r)
            for (std::size_t p = 0; p < hw; ++p) {
                const double v = d.images.data()[r * f + c * hw + p] - mean;
                sq += v * v;
            }
        s.mean.push_back(static_cast<float>(mean));
        s.stddev.push_back(static_cast<float>(std::sqrt(sq / count)));
    }
    return s;
}

/// x -> (x - mean[c]) / stddev[c] for every pixel of channel c.
inline void normalize_channels(dataset& d, const channel_statistics& s) {
    const std::size_t channels = s.mean.size(), f = d.features();
    if (channels == 0 || s.stddev.size() != channels || f % channels != 0)
        throw invalid_argument("normalize_channels: statistics do not match the dataset's channels");
    for (std::size_t c = 0; c < channels; ++c)
        if (!(s.stddev[c] > 0.0f))
            throw invalid_argument("normalize_channels: channel " + std::to_string(c) +
                                   " has standard deviation " + std::to_string(s.stddev[c]));
    const std::size_t hw = f / channels;
    for (std::size_t r = 0; r < d.size(); ++r)
        for (std::size_t c = 0; c < channels; ++c) {
            float* v = d.images.data() + r * f + c * hw;
            const float m = s.mean[c], inv = 1.0f / s.stddev[c];
            for (std::size_t p = 0; p < hw; ++p) v[p] = (v[p] - m) * inv;
        }
}

/// Random crop with zero padding and random horizontal flip of (C, H, W) samples: each
/// sample is placed in a canvas padded by `pad` on every side (filled with fill[c], the
/// value a black pixel has after normalisation, so padding matches the usual pipeline of
/// padding before normalising), an H x W window at a random offset is kept, and with
/// probability 1/2 it is mirrored left-right.
struct crop_flip_augmentation {
    std::size_t channels = 3, height = 32, width = 32, pad = 4;
    bool flip = true;
    std::vector<float> fill;  ///< per channel; empty = 0

    void operator()(matrix& batch, rng& gen) const {
        const std::size_t f = channels * height * width;
        if (batch.dimension() != 2 || batch.shape(1) != f)
            throw invalid_argument("crop_flip_augmentation: expected rows of " + std::to_string(f) +
                                   " features, got " + std::to_string(batch.shape(1)));
        std::vector<float> sample(f);
        for (std::size_t r = 0; r < batch.shape(0); ++r) {
            float* x = batch.data() + r * f;
            std::copy(x, x + f, sample.begin());
            const std::size_t dy = gen.below(2 * pad + 1), dx = gen.below(2 * pad + 1);
            const bool mirror = flip && gen.below(2) == 1;
            for (std::size_t c = 0; c < channels; ++c) {
                const float background = fill.empty() ? 0.0f : fill[c];
                for (std::size_t i = 0; i < height; ++i) {
                    // output row i reads input row i + dy - pad
                    const std::ptrdiff_t si = static_cast<std::ptrdiff_t>(i + dy) - static_cast<std::ptrdiff_t>(pad);
                    float* out = x + (c * height + i) * width;
                    for (std::size_t j = 0; j < width; ++j) {
                        const std::size_t jj = mirror ? width - 1 - j : j;
                        const std::ptrdiff_t sj = static_cast<std::ptrdiff_t>(jj + dx) - static_cast<std::ptrdiff_t>(pad);
                        const bool inside = si >= 0 && si < static_cast<std::ptrdiff_t>(height) && sj >= 0 &&
                                            sj < static_cast<std::ptrdiff_t>(width);
                        out[j] = inside ? sample[(c * height + static_cast<std::size_t>(si)) * width +
                                                 static_cast<std::size_t>(sj)]
                                        : background;
                    }
                }
            }
        }
    }
};

/// The augmentation of the paper's CIFAR-10 recipe for data normalised with `s`: pad 4,
/// random crop, random flip, padding black (0 before normalisation).
inline crop_flip_augmentation cifar10_augmentation(const channel_statistics& s) {
    crop_flip_augmentation a;
    for (std::size_t c = 0; c < s.mean.size(); ++c) a.fill.push_back(-s.mean[c] / s.stddev[c]);
    return a;
}

}  // namespace dynsparse
