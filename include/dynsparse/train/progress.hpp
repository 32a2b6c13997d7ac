#pragma once
// Progress display: a redrawn bar on a terminal, nothing between epoch lines otherwise
// (logs and CI output stay readable).
#include <chrono>
#include <cstdio>
#include <string>
#include <unistd.h>

namespace dynsparse {

class progress_bar {
public:
    /// enabled: draw at all; the bar is shown only when stderr is a terminal.
    explicit progress_bar(bool enabled = true) : active_(enabled && ::isatty(STDERR_FILENO)) {}

    bool active() const { return active_; }

    void start(std::size_t epoch, std::size_t epochs, std::size_t steps) {
        epoch_ = epoch;
        epochs_ = epochs;
        steps_ = steps;
        begin_ = last_ = std::chrono::steady_clock::now();
    }

    /// Called after each step; redraws at most ten times a second.
    void update(std::size_t step, double mean_loss, std::size_t samples) {
        if (!active_) return;
        const auto now = std::chrono::steady_clock::now();
        if (step + 1 < steps_ && now - last_ < std::chrono::milliseconds(100)) return;
        last_ = now;
        const double elapsed = std::chrono::duration<double>(now - begin_).count();
        const double done = static_cast<double>(step + 1) / static_cast<double>(steps_);
        const int width = 30;
        const int filled = static_cast<int>(done * width);
        std::string bar(static_cast<std::size_t>(filled), '#');
        bar.resize(width, '.');
        const double eta = done > 0 ? elapsed * (1 - done) / done : 0;
        std::fprintf(stderr, "\r  epoch %zu/%zu [%s] %5zu/%zu  loss %.4f  %6.0f samples/s  eta %4.1fs ",
                     epoch_, epochs_, bar.c_str(), step + 1, steps_, mean_loss,
                     elapsed > 0 ? static_cast<double>(samples) / elapsed : 0.0, eta);
        std::fflush(stderr);
    }

    /// Erases the bar so the epoch line can be printed in its place.
    void finish() {
        if (!active_) return;
        std::fprintf(stderr, "\r%110s\r", "");
        std::fflush(stderr);
    }

private:
    bool active_;
    std::size_t epoch_ = 0, epochs_ = 0, steps_ = 1;
    std::chrono::steady_clock::time_point begin_, last_;
};

}  // namespace dynsparse
