// LeNet-300-100 trained with Dynamic Sparse Training on Fashion-MNIST.
//
// Shows: spelling a network as a type, choosing surrogate and threshold policies (each
// runtime choice below maps to its own compile-time instantiation), the generic trainer,
// and the per-epoch sparsity report. To extend it, write your own Surrogate or
// ThresholdGranularity (see docs/user-guide.md) and add it to `dispatch`.
//
//   lenet_300_100 [--data DIR] [--epochs 20] [--batch 64] [--lr 0.01] [--momentum 0.9]
//                 [--alpha 5e-4] [--seed 1] [--dense] [--surrogate long_tailed|ste|sigmoid]
//                 [--granularity per_neuron|scalar] [--json PATH] [--threads 1]
//                 [--target-remaining R] [--csv PATH] [--log-every N] ...
//
// --target-remaining shows target-sparsity mode (train/target_sparsity.hpp): alpha is
// adapted during training so the model ends at the asked remaining ratio; --csv writes the
// training log of train/csv_log.hpp (scripts/plot.sh draws it).
#include <dynsparse/dynsparse.hpp>

#include <memory>

#include "cli/run.hpp"

namespace ds = dynsparse;

// [network]
template <ds::Surrogate S, ds::ThresholdGranularity G>
struct lenet_300_100 : ds::sequential<ds::input<784>,
                                      ds::masked_dense<300, S, G>, ds::relu,
                                      ds::masked_dense<100, S, G>, ds::relu,
                                      ds::masked_dense<10, S, G>> {};

struct lenet_300_100_dense : ds::sequential<ds::input<784>,
                                            ds::dense<300>, ds::relu,
                                            ds::dense<100>, ds::relu,
                                            ds::dense<10>> {};
// [network]

namespace {

using examples::run_options;
using examples::run_result;
using examples::train;

/// Maps the runtime policy choice onto its compile-time instantiation.
run_result dispatch(const run_options& o, const ds::dataset& tr, const ds::dataset& ev,
                    const ds::dataset& te, bool eval_is_test) {
    if (o.dense) return train<lenet_300_100_dense>(o, tr, ev, te, eval_is_test);
    auto with = [&]<class S>() {
        if (o.granularity == "scalar") return train<lenet_300_100<S, ds::scalar>>(o, tr, ev, te, eval_is_test);
        return train<lenet_300_100<S, ds::per_neuron>>(o, tr, ev, te, eval_is_test);
    };
    if (o.surrogate == "ste") return with.template operator()<ds::straight_through>();
    if (o.surrogate == "sigmoid") return with.template operator()<ds::sigmoid_surrogate<>>();
    return with.template operator()<ds::long_tailed>();
}

}  // namespace

int main(int argc, char** argv) {
    const examples::model_info info{"LeNet-300-100", "lenet_300_100", {"per_neuron", "scalar"},
                                    "per_neuron|scalar (per_neuron)"};
    return examples::run_main(argc, argv, info, dispatch);
}
