// Writing your own policies and layers: a triangular surrogate, a per-input-column
// threshold granularity, a leaky ReLU layer, a sign-SGD optimizer, a squared-hinge
// regulariser and a reset rule with a cooldown, plugged into a DST network and trained
// for a short run on Fashion-MNIST.
//
// Shows the extension points: structs that satisfy dynsparse::Surrogate,
// ThresholdGranularity, Optimizer, Regulariser and ResetRule, and a layer spec whose bound
// type satisfies dynsparse::Layer. `static_assert`s name what is missing if you get one
// wrong.
//
//   custom_policies [--data DIR] [--epochs 1] [--train-limit 10000]
#include <dynsparse/dynsparse.hpp>

#include <cmath>
#include <iostream>
#include <span>
#include <vector>

#include "cli/cli.hpp"
#include "cli/machine.hpp"

namespace ds = dynsparse;

// A triangular surrogate: H(x) = max(0, 1 - |x|), the derivative of a piecewise-quadratic
// smooth step.
struct triangle {
    static constexpr std::string_view name = "triangle";
    static float derivative(float x) {  // branch-free (ds::select), so the pass vectorises
        const float a = std::fabs(x);
        return ds::select(a < 1.0f, 1.0f - a, 0.0f);
    }
    static float smooth_step(float x) {
        const float c = x < -1.0f ? -1.0f : (x > 1.0f ? 1.0f : x);
        return 0.5f + c - 0.5f * c * (c < 0 ? -c : c);
    }
};
static_assert(ds::Surrogate<triangle>);

// One threshold per *input* feature (a column of the weight matrix): prunes whole inputs.
struct per_input {
    static constexpr std::string_view name = "per_input";
    static constexpr std::size_t count(std::size_t, std::size_t cols) { return cols; }
    static constexpr std::size_t index(std::size_t, std::size_t j, std::size_t) { return j; }
    static constexpr bool varies_along_row = true;
    static constexpr bool for_dense = true;
    static constexpr bool for_conv = false;
};
static_assert(ds::ThresholdGranularity<per_input>);

// A leaky ReLU layer. The spec (leaky_relu) is what users write; bind<In> gives the layer.
template <class In>
class leaky_relu_layer {
public:
    using input_shape = In;
    using output_shape = In;
    static std::string describe() { return "leaky_relu"; }
    void initialize(ds::rng&) {}
    void forward(const ds::matrix& x, ds::matrix& y, bool /*training*/) {
        ds::ensure_shape(y, x.shape(0), x.shape(1));
        for (std::size_t i = 0; i < x.size(); ++i) y.data()[i] = x.data()[i] > 0 ? x.data()[i] : 0.01f * x.data()[i];
    }
    void backward(const ds::matrix& x, const ds::matrix&, const ds::matrix& dy, ds::matrix* dx) {
        if (dx == nullptr) return;
        ds::ensure_shape(*dx, dy.shape(0), dy.shape(1));
        for (std::size_t i = 0; i < dy.size(); ++i)
            dx->data()[i] = dy.data()[i] * (x.data()[i] > 0 ? 1.0f : 0.01f);
    }
    template <class F>
    void for_each_parameter(F&&) {}  // no parameters
};
struct leaky_relu {
    template <class In>
    using bind = leaky_relu_layer<In>;
};
static_assert(ds::Layer<leaky_relu::bind<ds::shape<10>>>);

// Signed SGD with momentum: each weight moves by lr * sign(momentum buffer). The update
// pass calls update() on ranges of one parameter (from several threads, disjoint ranges).
class sign_sgd {
public:
    void begin_step(std::span<const ds::parameter> params, float lr) {
        if (buffers_.size() != params.size())
            for (const auto& p : params) buffers_.emplace_back(p.value.size(), 0.0f);
        lr_ = lr;
    }
    void update(const ds::update_range& r) {
        float* b = buffers_[r.index].data();
        for (std::size_t i = r.begin; i < r.end; ++i) {
            b[i] = 0.9f * b[i] + r.gradient[i];
            r.value[i] -= lr_ * 0.1f * static_cast<float>((b[i] > 0) - (b[i] < 0));
        }
    }
    void end_step() {}
    template <class V>
    void visit_state(V&& v) {  // optional: its buffers go into checkpoints
        v("sign_sgd.buffers", buffers_);
    }

private:
    std::vector<std::vector<float>> buffers_;
    float lr_ = 0;
};
static_assert(ds::StatefulOptimizer<sign_sgd>);

// alpha * sum max(0, 1 - t)^2: pulls thresholds up to 1, then lets them be.
struct squared_hinge {
    static constexpr std::string_view name = "squared_hinge";
    double apply(std::span<const float> t, std::span<float> dt, const ds::regulariser_scope& s) const {
        double total = 0;
        for (std::size_t i = 0; i < t.size(); ++i) {
            const float gap = t[i] < 1.0f ? 1.0f - t[i] : 0.0f;
            total += static_cast<double>(gap) * gap;
            dt[i] -= 2.0f * s.alpha * gap;
        }
        return s.alpha * total;
    }
};
static_assert(ds::Regulariser<squared_hinge>);

// The paper's 1% rule, but at most once per layer every 500 steps.
struct reset_with_cooldown {
    static constexpr std::string_view name = "reset_with_cooldown";
    bool should_reset(const ds::reset_query& q) const {
        return q.kept * 100 <= q.total && q.step >= 500 * q.resets;
    }
};
static_assert(ds::ResetRule<reset_with_cooldown>);

struct custom_net : ds::sequential<ds::input<784>,
                                   ds::masked_dense<300, triangle, per_input>, leaky_relu,
                                   ds::masked_dense<100, triangle>, leaky_relu,
                                   ds::masked_dense<10>> {};

constexpr std::string_view usage =
    "Train a DST network built from custom policies (triangular surrogate, per-input\n"
    "thresholds, leaky ReLU) for a short run on Fashion-MNIST.\n\n"
    "  --data DIR         MNIST-format directory (default /usr/share/datasets/fashion-mnist)\n"
    "  --epochs N         training epochs (1)\n"
    "  --train-limit N    use only the first N training samples (10000)\n";

int main(int argc, char** argv) {
    examples::restart_with_fast_blas_kernels(argv);
    try {
        const examples::arguments args(argc, argv, {"--data", "--epochs", "--train-limit"}, {}, usage);
        ds::set_threads(1);
        ds::train_test data = ds::load_mnist_directory(
            args.text("--data", examples::default_fashion_mnist_directory.string()));
        ds::standardize(data);
        const std::size_t limit = args.count("--train-limit", 10000);
        if (limit > 0 && limit < data.train.size()) data.train = ds::take(data.train, 0, limit);

        custom_net net;
        net.initialize(1);
        std::cout << custom_net::describe();
        ds::train_config cfg;
        cfg.epochs = args.count("--epochs", 1);
        cfg.log = &std::cout;
        cfg.alpha = 1e-4f;
        ds::trainer<custom_net, ds::softmax_cross_entropy, sign_sgd, squared_hinge, reset_with_cooldown> trainer(
            net, {}, sign_sgd{}, cfg);
        const auto history = trainer.fit(data.train, data.test);
        std::cout << "test accuracy " << history.back().eval.accuracy << "%, remaining "
                  << 100 * history.back().remaining << "%\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}
