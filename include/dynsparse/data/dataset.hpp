#pragma once
// In-memory classification datasets: loading MNIST-style IDX pairs and directories,
// standardisation, a seeded train/validation split, contiguous subsets and batch gathering.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <numeric>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "dynsparse/core/error.hpp"
#include "dynsparse/core/rng.hpp"
#include "dynsparse/core/tensor.hpp"
#include "dynsparse/data/idx.hpp"

namespace dynsparse {

/// One sample per row of `images` (n x features), with its class in `labels`.
struct dataset {
    matrix images;
    std::vector<std::uint8_t> labels;
    std::size_t classes = 10;
    /// Image height and width as the file declared them (IDX), 0 when unknown; and the
    /// file they came from. check_image_shape compares them with a network's input.
    std::size_t image_rows = 0, image_cols = 0;
    std::string source;

    std::size_t size() const { return labels.size(); }
    std::size_t features() const { return images.shape(1); }
};

/// Throws invalid_argument naming the file and both shapes when `d`'s images were
/// declared rows x cols other than the network's `rows` x `cols` input (the same number
/// of pixels read with another shape would train on scrambled images without a word).
/// Does nothing when `d` does not know its image shape.
inline void check_image_shape(const dataset& d, std::size_t rows, std::size_t cols, std::string_view network) {
    if (d.image_rows == 0 || (d.image_rows == rows && d.image_cols == cols)) return;
    throw invalid_argument((d.source.empty() ? std::string("dataset") : d.source) + ": images are " +
                           std::to_string(d.image_rows) + "x" + std::to_string(d.image_cols) + " but " +
                           std::string(network) + " takes " + std::to_string(rows) + "x" + std::to_string(cols) +
                           " images");
}

struct train_test {
    dataset train, test;
};

namespace detail {

struct loaded_pair {
    dataset data;
    std::size_t rows = 0, cols = 0;
};

inline loaded_pair load_idx_pair_sized(const std::filesystem::path& images_path,
                                       const std::filesystem::path& labels_path, std::size_t classes) {
    idx_images img = read_idx_images(images_path);
    std::vector<std::uint8_t> labels = read_idx_labels(labels_path, classes);
    if (img.count != labels.size())
        throw data_error(images_path.string() + ": image/label count mismatch: it holds " +
                         std::to_string(img.count) + " images but " + labels_path.string() + " holds " +
                         std::to_string(labels.size()) + " labels");
    loaded_pair out;
    const std::size_t features = img.rows * img.cols;
    out.data.images = matrix::from_shape({img.count, features});
    float* dst = out.data.images.data();
    for (std::size_t i = 0; i < img.pixels.size(); ++i)
        dst[i] = static_cast<float>(img.pixels[i]) * (1.0f / 255.0f);
    out.data.labels = std::move(labels);
    out.data.classes = classes;
    out.rows = img.rows;
    out.cols = img.cols;
    out.data.image_rows = img.rows;
    out.data.image_cols = img.cols;
    out.data.source = images_path.string();
    return out;
}

/// A new dataset made of the given rows of d, in that order (indices already checked).
inline dataset select_rows(const dataset& d, std::span<const std::size_t> rows) {
    dataset out;
    out.classes = d.classes;
    out.image_rows = d.image_rows;
    out.image_cols = d.image_cols;
    out.source = d.source;
    const std::size_t f = d.features();
    out.images = matrix::from_shape({rows.size(), f});
    out.labels.resize(rows.size());
    const float* src = d.images.data();
    float* dst = out.images.data();
    for (std::size_t r = 0; r < rows.size(); ++r) {
        std::copy_n(src + rows[r] * f, f, dst + r * f);
        out.labels[r] = d.labels[rows[r]];
    }
    return out;
}

inline void check_consistent(const dataset& d, const char* where) {
    if (d.images.shape(0) != d.labels.size())
        throw invalid_argument(std::string(where) + ": dataset has " + std::to_string(d.images.shape(0)) +
                               " image rows but " + std::to_string(d.labels.size()) + " labels");
}

}  // namespace detail

/// Loads an IDX image file and its label file; pixels are scaled from 0..255 to [0, 1].
inline dataset load_idx_pair(const std::filesystem::path& images, const std::filesystem::path& labels,
                             std::size_t classes = 10) {
    return detail::load_idx_pair_sized(images, labels, classes).data;
}

/// Loads train-{images-idx3,labels-idx1}-ubyte and t10k-... from `dir`, each either plain
/// or gzip-compressed with a .gz suffix (the plain file wins when both exist).
inline train_test load_mnist_directory(const std::filesystem::path& dir) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec))
        throw data_error(
            dir.string() + ": " +
            (std::filesystem::exists(dir, ec) ? "not a directory" : "data directory does not exist"));
    static constexpr const char* names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    std::filesystem::path found[4];
    std::string missing;
    for (std::size_t i = 0; i < 4; ++i) {
        const auto plain = dir / names[i];
        auto gz = plain;
        gz += ".gz";
        if (std::filesystem::is_regular_file(plain, ec))
            found[i] = plain;
        else if (std::filesystem::is_regular_file(gz, ec))
            found[i] = gz;
        else if (std::filesystem::is_directory(plain, ec) || std::filesystem::is_directory(gz, ec))
            throw data_error((std::filesystem::is_directory(plain, ec) ? plain : gz).string() +
                             ": cannot read it: it is a directory, not an IDX file");
        else
            missing += (missing.empty() ? "" : ", ") + std::string(names[i]) + "[.gz]";
    }
    if (!missing.empty()) throw data_error(dir.string() + ": missing file(s): " + missing);
    auto train = detail::load_idx_pair_sized(found[0], found[1], 10);
    auto test = detail::load_idx_pair_sized(found[2], found[3], 10);
    if (train.rows != test.rows || train.cols != test.cols)
        throw data_error(dir.string() + ": training images are " + std::to_string(train.rows) + "x" +
                         std::to_string(train.cols) + " but test images are " + std::to_string(test.rows) +
                         "x" + std::to_string(test.cols));
    return {std::move(train.data), std::move(test.data)};
}

/// Applies x -> (x - mean) / stddev to every pixel of d.
inline void apply_standardization(dataset& d, float mean, float stddev) {
    if (!(stddev > 0.0f) || !std::isfinite(stddev) || !std::isfinite(mean))
        throw invalid_argument(
            "apply_standardization: need a finite mean and a positive finite stddev, got mean " +
            std::to_string(mean) + ", stddev " + std::to_string(stddev));
    const float inv = 1.0f / stddev;
    for (float& x : d.images) x = (x - mean) * inv;
}

/// Standardises train and test with the scalar mean and (population) standard deviation of
/// all training pixels; returns {mean, stddev} so other data can be treated alike.
inline std::pair<float, float> standardize(train_test& data) {
    const matrix& x = data.train.images;
    if (x.size() == 0) throw invalid_argument("standardize: the training set is empty");
    double sum = 0.0;
    for (float v : x) sum += v;
    const double mean = sum / static_cast<double>(x.size());
    double sq = 0.0;  // second pass: no cancellation from subtracting large sums
    for (float v : x) sq += (v - mean) * (v - mean);
    const double stddev = std::sqrt(sq / static_cast<double>(x.size()));
    if (!(stddev > 0.0))
        throw invalid_argument("standardize: every training pixel equals " + std::to_string(mean) +
                               ", the standard deviation is zero");
    const auto m = static_cast<float>(mean), s = static_cast<float>(stddev);
    apply_standardization(data.train, m, s);
    apply_standardization(data.test, m, s);
    return {m, s};
}

/// Splits off floor(fraction * size) random samples as a validation set; returns
/// {train, validation}. Deterministic for a seed; each part keeps the original order.
inline std::pair<dataset, dataset> split_validation(const dataset& d, double fraction, std::uint64_t seed) {
    if (!(fraction >= 0.0 && fraction < 1.0))
        throw invalid_argument("split_validation: fraction must be in [0, 1), got " +
                               std::to_string(fraction));
    detail::check_consistent(d, "split_validation");
    const std::size_t n = d.size();
    std::size_t n_val = static_cast<std::size_t>(std::floor(fraction * static_cast<double>(n)));
    if (n > 0) n_val = std::min(n_val, n - 1);  // guard against rounding up to n
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    rng gen(seed);
    gen.shuffle(std::span<std::size_t>(order));
    const auto val_end = order.begin() + static_cast<std::ptrdiff_t>(n_val);
    std::sort(order.begin(), val_end);
    std::sort(val_end, order.end());
    const std::span<const std::size_t> all(order);
    return {detail::select_rows(d, all.subspan(n_val)), detail::select_rows(d, all.first(n_val))};
}

/// Samples [first, first + count) of d as a new dataset.
inline dataset take(const dataset& d, std::size_t first, std::size_t count) {
    detail::check_consistent(d, "take");
    if (first > d.size() || count > d.size() - first)
        throw invalid_argument("take: " + std::to_string(count) + " samples from index " +
                               std::to_string(first) + " are out of range for a dataset of " +
                               std::to_string(d.size()) + " samples");
    std::vector<std::size_t> rows(count);
    std::iota(rows.begin(), rows.end(), first);
    return detail::select_rows(d, rows);
}

/// Copies the rows `indices` of d into x (indices.size() x features) and their labels into y.
inline void gather_batch(const dataset& d, std::span<const std::size_t> indices, matrix& x,
                         std::vector<std::uint8_t>& y) {
    const std::size_t n = d.size(), f = d.features();
    if (d.images.shape(0) != n)
        throw invalid_argument("gather_batch: dataset has " + std::to_string(d.images.shape(0)) +
                               " image rows but " + std::to_string(n) + " labels");
    ensure_shape(x, indices.size(), f);
    y.resize(indices.size());
    const float* src = d.images.data();
    float* dst = x.data();
    for (std::size_t r = 0; r < indices.size(); ++r) {
        const std::size_t i = indices[r];
        if (i >= n)
            throw invalid_argument("gather_batch: index " + std::to_string(i) + " (batch position " +
                                   std::to_string(r) + ") is out of range for a dataset of " +
                                   std::to_string(n) + " samples");
        std::copy_n(src + i * f, f, dst + r * f);
        y[r] = d.labels[i];
    }
}

}  // namespace dynsparse
