#pragma once
// What training reports: per step (step_report, for step callbacks), per epoch
// (epoch_report, with one layer_report per masked layer) and the printed epoch lines.
#include <cstddef>
#include <cstdio>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "dynsparse/layers/layer.hpp"
#include "dynsparse/network/masked_layer_view.hpp"
#include "dynsparse/train/evaluation.hpp"

namespace dynsparse {

struct layer_report {
    std::size_t index = 0;
    std::string name;
    mask_statistics stats;
    std::size_t epoch_resets = 0;  ///< reset-rule firings during the epoch
    bool thrashing = false;        ///< epoch_resets > train_config::thrash_resets_per_epoch
};

struct epoch_report {
    std::size_t epoch = 0;          ///< 1-based
    float learning_rate = 0;
    double train_loss = 0;          ///< mean cross-entropy over the epoch's steps
    double regulariser = 0;         ///< the regulariser's value at the epoch's last step
    evaluation eval;                ///< on the evaluation set given to fit()
    double remaining = 1;           ///< model remaining ratio (masked layers' weights)
    std::size_t resets = 0;         ///< reset-rule firings during this epoch, all layers
    std::vector<layer_report> layers;
    double train_seconds = 0;       ///< training steps only, evaluation excluded
    double eval_seconds = 0;
    float alpha = 0;                ///< regulariser weight at the end of the epoch
};

/// The scalars of an epoch's report (no per-layer lines): what a trainer keeps of every
/// epoch of its run, resumed epochs included (training_loop::history).
struct epoch_summary {
    std::size_t epoch = 0;
    double learning_rate = 0, train_loss = 0, regulariser = 0;
    double eval_loss = 0, eval_accuracy = 0;
    double remaining = 1;
    std::size_t resets = 0;
    double train_seconds = 0, eval_seconds = 0, alpha = 0;

    static epoch_summary of(const epoch_report& r) {
        return {r.epoch, r.learning_rate, r.train_loss, r.regulariser, r.eval.loss, r.eval.accuracy,
                r.remaining, r.resets, r.train_seconds, r.eval_seconds, r.alpha};
    }
};

/// What a step callback sees after each optimisation step (see trainer::add_step_callback).
struct step_report {
    std::size_t epoch = 0;            ///< 1-based
    std::size_t step_in_epoch = 0;    ///< 1-based
    std::size_t steps_per_epoch = 0;
    std::size_t global_step = 0;      ///< steps done since construction, this one included
    std::size_t total_steps = 0;      ///< steps_per_epoch * config.epochs
    double loss = 0;                  ///< this batch's mean cross-entropy
    float learning_rate = 0;
    float alpha = 0;                  ///< the alpha this step used
    double regulariser = 0;           ///< the regulariser's value (thresholds before the update)
};

/// Sparsity of every masked layer, from views of them (masked_layers(net)).
inline std::vector<layer_report> layer_reports(std::span<const masked_layer_view> layers) {
    std::vector<layer_report> out;
    out.reserve(layers.size());
    for (const auto& l : layers) out.push_back({l.index(), l.name(), l.statistics()});
    return out;
}

/// Sparsity of every masked layer of a network, and of the whole model.
template <class Net>
std::vector<layer_report> sparsity_report(const Net& net) {
    return layer_reports(dynsparse::masked_layers(net));
}

inline double model_remaining(const std::vector<layer_report>& layers) {
    std::size_t kept = 0, total = 0;
    for (const auto& l : layers) {
        kept += l.stats.kept;
        total += l.stats.total;
    }
    return total ? static_cast<double>(kept) / static_cast<double>(total) : 1.0;
}

/// Prints one epoch's report: a summary line, then one line per masked layer.
inline void print_epoch_report(std::ostream& os, const epoch_report& r, std::size_t epochs) {
    char line[256];
    std::snprintf(line, sizeof line,
                  "epoch %2zu/%zu  lr %.4g  train loss %.4f  reg %.4f  eval loss %.4f  acc %6.2f%%"
                  "  remaining %6.2f%%  resets %zu  (%.2fs train, %.2fs eval)\n",
                  r.epoch, epochs, static_cast<double>(r.learning_rate), r.train_loss,
                  r.regulariser, r.eval.loss, r.eval.accuracy, 100.0 * r.remaining, r.resets,
                  r.train_seconds, r.eval_seconds);
    os << line;
    for (const auto& l : r.layers) {
        std::snprintf(line, sizeof line,
                      "    [%zu] %-40s kept %6.2f%% of %7zu  t mean %+.4f min %+.4f max %+.4f"
                      "  resets %zu%s\n",
                      l.index, l.name.c_str(), 100.0 * l.stats.remaining(), l.stats.total,
                      static_cast<double>(l.stats.threshold_mean),
                      static_cast<double>(l.stats.threshold_min),
                      static_cast<double>(l.stats.threshold_max), l.stats.resets,
                      l.thrashing ? "  (thrashing)" : "");
        os << line;
    }
    os.flush();
}

}  // namespace dynsparse
