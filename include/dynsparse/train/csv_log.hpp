#pragma once
// csv_log: a training log as CSV, one row per epoch and optionally one every N steps, for
// plotting DST's dynamics (scripts/plot.sh turns it into pictures).
//
// Columns (one header line, then rows; empty cells where a value does not apply):
//
//   kind            "step" or "epoch"
//   epoch, step     1-based epoch; global step count (steps done since the trainer started)
//   loss            step rows: this batch's cross-entropy; epoch rows: the epoch's mean
//   lr, alpha       learning rate and regulariser weight (alpha changes in target mode)
//   eval_set        epoch rows: which set was evaluated ("validation" or "test", the
//                   constructor's argument), so a log says whether model selection on it
//                   is honest
//   eval_loss, eval_accuracy   epoch rows only (accuracy in percent)
//   remaining       model remaining ratio (kept mask entries / all, masked layers)
//   resets          reset-rule firings since the previous row, all layers
//   then per masked layer i (0-based, in network order):
//   l<i>_remaining, l<i>_t_mean, l<i>_t_min, l<i>_t_max,
//   l<i>_revived    weights masked at the previous row and kept now
//   l<i>_pruned     weights kept at the previous row and masked now
//   l<i>_resets     reset-rule firings of this layer since the previous row
//
// Revived/pruned compare the masks at two rows (the first row compares with the dense
// mask the layers start with), so they count net changes between records, not every
// flip in between. They need the layer's masked_weight() (W * M; an entry is taken as
// kept when it is non-zero, which misses only weights that are exactly 0); layers without
// it leave the two columns empty. Each row is flushed when written; a path that cannot be
// opened, or that exists and is not a regular file (a device, a directory: as for
// io/atomic_file.hpp), throws data_error naming the file.
//
//   ds::csv_log log("run.csv", "test", 100);   // epoch rows + a row every 100 steps
//   log.attach(trainer);                       // step rows (needs every_steps > 0)
//   trainer.fit(train, test, [&](const ds::epoch_report& r) { log.record_epoch(net, r); });
#include <concepts>
#include <cstddef>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dynsparse/core/error.hpp"
#include "dynsparse/io/atomic_file.hpp"
#include "dynsparse/train/trainer.hpp"

namespace dynsparse {

class csv_log {
public:
    /// create: start a new log (an existing CSV log is truncated; any other non-empty file
    /// is refused unless force). append: continue an existing CSV log (a resumed run): the
    /// rows go after the earlier ones, without a second header; a missing or empty file is
    /// started as by create. Rows for epochs after the checkpoint a run resumed from may
    /// then appear twice (the later rows are the resumed run's).
    enum class mode { create, append };

    /// path: the CSV file; eval_set: the name of the set the epoch rows' evaluation used;
    /// every_steps: a step row every this many steps (0: none).
    explicit csv_log(const std::filesystem::path& path, std::string eval_set = "test",
                     std::size_t every_steps = 0, mode m = mode::create, bool force = false)
        : path_(path), eval_set_(std::move(eval_set)), every_(every_steps) {
        const std::filesystem::path target = checked_write_target(path, "CSV log");
        check_replaceable(path, target, header_start, "CSV log", force);
        std::error_code ec;
        const bool has_rows = m == mode::append && std::filesystem::exists(target, ec) &&
                              std::filesystem::file_size(target, ec) > 0 && !ec;
        out_.open(target, has_rows ? std::ios::out | std::ios::app : std::ios::out | std::ios::trunc);
        if (!out_)
            throw data_error(path.string() + ": cannot open the CSV log for writing: " + std::strerror(errno));
        header_written_ = has_rows;
    }

    /// How every CSV log begins (the first bytes of its header).
    static constexpr std::string_view header_start = "kind,epo";

    /// Registers a step callback on the trainer that writes a step row every every_steps
    /// steps. The trainer and its network must outlive the log's use.
    template <Loss L, Optimizer O>
    void attach(training_loop<L, O>& trainer) {
        if (every_ == 0) return;
        trainer.add_step_callback([this, &trainer](const step_report& s) {
            if (s.global_step % every_ == 0) record_step(trainer.masked_layers(), s);
        });
    }

    /// A step row (of a network, or of views of its masked layers).
    template <class Net>
        requires(!std::convertible_to<const Net&, std::span<const masked_layer_view>>)
    void record_step(const Net& net, const step_report& s) {
        record_step(masked_layers(net), s);
    }
    void record_step(std::span<const masked_layer_view> layers, const step_report& s) {
        row r;
        r.kind = "step";
        r.epoch = s.epoch;
        r.step = s.global_step;
        r.loss = s.loss;
        r.lr = s.learning_rate;
        r.alpha = s.alpha;
        last_step_ = s.global_step;
        write(layers, r);
    }

    /// An epoch row; the step column is the last step seen by a step row or, without step
    /// rows, epoch * steps_per_epoch when steps_per_epoch is given.
    template <class Net>
        requires(!std::convertible_to<const Net&, std::span<const masked_layer_view>>)
    void record_epoch(const Net& net, const epoch_report& e, std::size_t steps_per_epoch = 0) {
        record_epoch(masked_layers(net), e, steps_per_epoch);
    }
    void record_epoch(std::span<const masked_layer_view> layers, const epoch_report& e,
                      std::size_t steps_per_epoch = 0) {
        row r;
        r.kind = "epoch";
        r.epoch = e.epoch;
        r.step = steps_per_epoch ? e.epoch * steps_per_epoch : last_step_;
        r.loss = e.train_loss;
        r.lr = e.learning_rate;
        r.alpha = e.alpha;
        r.has_eval = true;
        r.eval_loss = e.eval.loss;
        r.eval_accuracy = e.eval.accuracy;
        write(layers, r);
    }

    const std::filesystem::path& path() const { return path_; }
    std::size_t rows() const { return rows_; }

private:
    struct row {
        const char* kind = "";
        std::size_t epoch = 0, step = 0;
        double loss = 0;
        float lr = 0, alpha = 0;
        bool has_eval = false;
        double eval_loss = 0, eval_accuracy = 0;
    };
    struct layer_state {
        std::vector<unsigned char> kept;  // previous row's mask
        std::size_t resets = 0;
    };

    void write(std::span<const masked_layer_view> layers, const row& r) {
        std::string layers_text;
        std::size_t kept = 0, total = 0, resets = 0, n = 0;
        char buf[256];
        for (const masked_layer_view& l : layers) {
            const mask_statistics st = l.statistics();
            if (layers_.size() <= n) layers_.push_back({});
            layer_state& prev = layers_[n];
            const std::size_t layer_resets = st.resets - prev.resets;
            prev.resets = st.resets;
            kept += st.kept;
            total += st.total;
            resets += layer_resets;
            std::snprintf(buf, sizeof buf, ",%.6g,%.6g,%.6g,%.6g", st.remaining(),
                          static_cast<double>(st.threshold_mean),
                          static_cast<double>(st.threshold_min),
                          static_cast<double>(st.threshold_max));
            layers_text += buf;
            if (const std::span<const float> wm = l.masked_weight(); !wm.empty()) {
                const std::size_t size = wm.size();
                if (prev.kept.size() != size) prev.kept.assign(size, 1);  // layers start dense
                std::size_t revived = 0, pruned = 0;
                for (std::size_t i = 0; i < size; ++i) {
                    const bool now = wm[i] != 0.0f;
                    const bool before = prev.kept[i] != 0;
                    revived += (now && !before) ? 1 : 0;
                    pruned += (before && !now) ? 1 : 0;
                    prev.kept[i] = now ? 1 : 0;
                }
                std::snprintf(buf, sizeof buf, ",%zu,%zu,%zu", revived, pruned, layer_resets);
            } else {
                std::snprintf(buf, sizeof buf, ",,,%zu", layer_resets);
            }
            layers_text += buf;
            ++n;
        }
        if (!header_written_) {
            header_written_ = true;
            out_ << "kind,epoch,step,loss,lr,alpha,eval_set,eval_loss,eval_accuracy,remaining,resets";
            for (std::size_t i = 0; i < n; ++i)
                for (const char* c : {"remaining", "t_mean", "t_min", "t_max", "revived", "pruned",
                                      "resets"})
                    out_ << ",l" << i << '_' << c;
            out_ << '\n';
        }
        std::snprintf(buf, sizeof buf, "%s,%zu,%zu,%.6g,%.6g,%.6g,", r.kind, r.epoch, r.step, r.loss,
                      static_cast<double>(r.lr), static_cast<double>(r.alpha));
        out_ << buf;
        if (r.has_eval) {
            std::snprintf(buf, sizeof buf, "%s,%.6g,%.4f", eval_set_.c_str(), r.eval_loss,
                          r.eval_accuracy);
            out_ << buf;
        } else {
            out_ << ",,";
        }
        std::snprintf(buf, sizeof buf, ",%.6g,%zu",
                      total ? static_cast<double>(kept) / static_cast<double>(total) : 1.0, resets);
        out_ << buf << layers_text << '\n';
        out_.flush();
        if (!out_) throw data_error(path_.string() + ": writing the CSV log failed (disk full?)");
        ++rows_;
    }

    std::filesystem::path path_;
    std::string eval_set_;
    std::size_t every_;
    std::ofstream out_;
    std::vector<layer_state> layers_;
    std::size_t rows_ = 0, last_step_ = 0;
    bool header_written_ = false;
};

}  // namespace dynsparse
