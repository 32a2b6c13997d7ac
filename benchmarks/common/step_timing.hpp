#pragma once
// Timing pieces shared by the end-to-end benchmarks: a clock, the median, and `phased`,
// one network's training state that runs SGD or Adam steps and adds up the time of each phase
// (forward, loss, backward, regulariser, optimizer), so two networks can be stepped
// alternately on the same batches and compared phase by phase.
#include <dynsparse/dynsparse.hpp>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <type_traits>
#include <cstdio>
#include <memory>
#include <vector>

namespace bench {

namespace ds = dynsparse;

using clock_type = std::chrono::steady_clock;

inline double since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

/// Seconds of CPU time used by the whole process so far. With one thread this is the time
/// the step really ran on its core: unlike wall time it does not count the time the process
/// waited while other jobs used the core (these machines are shared).
inline double process_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

inline double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

/// The optimizer of the MNIST recipes: SGD with momentum 0.9, lr 0.01 (LeNets) or Adam,
/// lr 1e-3 (LSTMs).
template <class Opt>
Opt recipe_optimizer() {
    if constexpr (std::is_same_v<Opt, ds::sgd>)
        return ds::sgd({.momentum = 0.9f});
    else
        return Opt{};
}
template <class Opt>
constexpr float recipe_lr = std::is_same_v<Opt, ds::sgd> ? 0.01f : 1e-3f;

template <class Net, class Opt = ds::sgd>
struct phased {
    Net net;
    std::vector<ds::parameter> params;
    Opt opt = recipe_optimizer<Opt>();
    std::unique_ptr<ds::update_pass<Net>> pass;
    ds::matrix grad;
    double t[5] = {};  // forward, loss, backward, regulariser, optimizer
    double last_cpu = 0;  // process CPU seconds of the last step
    float alpha;
    phased(const phased&) = delete;  // params point into net
    explicit phased(float a) : alpha(a) {
        net.initialize(1);
        net.for_each_parameter([&](const ds::parameter& p) { params.push_back(p); });
        pass = std::make_unique<ds::update_pass<Net>>(net);
    }

    /// One optimizer step with the recipe's learning rate; returns its seconds.
    double step(const ds::matrix& x, const std::vector<std::uint8_t>& y) {
        ds::softmax_cross_entropy loss;
        const double cpu0 = process_cpu_seconds();
        const auto s0 = clock_type::now();
        auto t0 = s0;
        const auto& out = net.forward(x, true);
        t[0] += since(t0);
        t0 = clock_type::now();
        loss.value_and_gradient(out, y, grad);
        t[1] += since(t0);
        t0 = clock_type::now();
        ds::defer_surrogate_backward(net);  // as trainer::step does
        net.backward(grad);
        t[2] += since(t0);
        t0 = clock_type::now();
        // t[3] stays 0: the regulariser runs inside the update pass (t[4]).
        pass->run(opt, recipe_lr<Opt>, alpha);
        t[4] += since(t0);
        const double wall = since(s0);
        last_cpu = process_cpu_seconds() - cpu0;
        return wall;
    }

    double total() const { return t[0] + t[1] + t[2] + t[3] + t[4]; }

    void print(const char* name, std::size_t steps) const {
        const double k = 1e3 / static_cast<double>(steps);
        std::printf("%-5s mean ms/step: forward %.3f  loss %.3f  backward %.3f  regulariser %.3f"
                    "  optimizer %.3f  total %.3f\n",
                    name, t[0] * k, t[1] * k, t[2] * k, t[3] * k, t[4] * k, total() * k);
    }
};

}  // namespace bench
