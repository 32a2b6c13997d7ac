// WideResNet-16-8 trained with Dynamic Sparse Training on CIFAR-10.
//
// Shows: residual blocks spelled as types (include/dynsparse/models/wide_resnet.hpp:
// pre-activation basic blocks whose body is a chain<...> and whose shortcut is the
// identity or a masked 1x1 convolution), every convolution and the FC layer masked (17
// masked layers), and the paper's CIFAR recipe as defaults (as vgg16_cifar): SGD lr 0.1,
// x0.1 at epochs 80 and 120, momentum 0.9, weight decay 1e-4 also on the thresholds,
// batch 64, alpha 5e-6, 160 epochs, crop/flip augmentation.
//
//   wrn16_8_cifar --data cifar-10-batches-bin [--epochs 160] [--threads 2] [--json PATH] ...
//
// WRN-16-8 is about 1.5 GFLOP per image forward: one epoch takes most of a day on two
// cores (docs/results.md). Use --train-limit to try it on a subset.
#include <dynsparse/dynsparse.hpp>

#include "cli/run.hpp"

namespace ds = dynsparse;

namespace {

using examples::run_options;
using examples::run_result;
using examples::train;

run_result dispatch(const run_options& o, const ds::dataset& tr, const ds::dataset& ev,
                    const ds::dataset& te, bool eval_is_test) {
    if (o.dense) throw std::invalid_argument("--dense: this example has no dense WRN-16-8 variant; "
                                             "use --alpha 0 for DST without the regulariser");
    if (o.surrogate == "ste") return train<ds::models::wrn16_8<ds::straight_through>>(o, tr, ev, te, eval_is_test);
    if (o.surrogate == "sigmoid")
        return train<ds::models::wrn16_8<ds::sigmoid_surrogate<>>>(o, tr, ev, te, eval_is_test);
    return train<ds::models::wrn16_8<>>(o, tr, ev, te, eval_is_test);
}

}  // namespace

int main(int argc, char** argv) {
    examples::model_info info{"WideResNet-16-8", "wrn16_8_cifar", {"per_filter"},
                              "per_filter: per-filter thresholds on convolutions, per-neuron on\n"
                              "                       the FC layer (the paper's)"};
    info.data = examples::data_kind::cifar10;
    info.prefer_avx512_blas = true;
    return examples::run_main(argc, argv, info, dispatch, examples::cifar10_recipe());
}
