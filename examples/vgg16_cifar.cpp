// VGG-16 (the paper's CIFAR variant) trained with Dynamic Sparse Training on CIFAR-10.
//
// Shows: a deep network taken ready-made from include/dynsparse/models (batch norm after
// every masked convolution, convolutions without bias, 15 masked layers), the CIFAR-10
// binary reader with per-channel normalisation and crop/flip augmentation, and the paper's
// recipe as defaults: SGD lr 0.1 (x0.1 at epochs 80 and 120), momentum 0.9, weight decay
// 1e-4 also on the thresholds, batch 64, alpha 5e-6, 160 epochs. Evaluation runs batch norm
// in evaluation mode (running statistics).
//
//   vgg16_cifar --data cifar-10-batches-bin [--epochs 160] [--threads 2] [--json PATH] ...
//
// CIFAR-10 is not shipped: download the binary version (cifar-10-binary.tar.gz) and point
// --data at its cifar-10-batches-bin directory. One epoch is hours on two cores (see
// docs/results.md); --train-limit N trains on the first N images only.
#include <dynsparse/dynsparse.hpp>

#include "cli/run.hpp"

namespace ds = dynsparse;

namespace {

using examples::run_options;
using examples::run_result;
using examples::train;

run_result dispatch(const run_options& o, const ds::dataset& tr, const ds::dataset& ev,
                    const ds::dataset& te, bool eval_is_test) {
    if (o.dense) return train<ds::models::vgg16_cifar_dense<>>(o, tr, ev, te, eval_is_test);
    if (o.granularity == "scalar")
        return train<ds::models::vgg16_cifar<ds::long_tailed, ds::scalar, ds::scalar>>(o, tr, ev, te, eval_is_test);
    if (o.surrogate == "ste") return train<ds::models::vgg16_cifar<ds::straight_through>>(o, tr, ev, te, eval_is_test);
    if (o.surrogate == "sigmoid")
        return train<ds::models::vgg16_cifar<ds::sigmoid_surrogate<>>>(o, tr, ev, te, eval_is_test);
    return train<ds::models::vgg16_cifar<>>(o, tr, ev, te, eval_is_test);
}

}  // namespace

int main(int argc, char** argv) {
    examples::model_info info{"VGG-16 (CIFAR)", "vgg16_cifar", {"per_filter", "scalar"},
                              "per_filter: per-filter thresholds on convolutions, per-neuron on\n"
                              "                       FC layers (the paper's); scalar: one per layer, long_tailed\n"
                              "                       surrogate only (per_filter)"};
    info.data = examples::data_kind::cifar10;
    info.prefer_avx512_blas = true;
    return examples::run_main(argc, argv, info, dispatch, examples::cifar10_recipe());
}
