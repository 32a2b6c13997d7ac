// LeNet-5-Caffe trained with Dynamic Sparse Training on Fashion-MNIST.
//
// Shows: a convolutional network as a type (per-sample shapes (C, H, W) are propagated at
// compile time, from input<1, 28, 28> through the convolutions and poolings to flatten),
// masked convolutions with one threshold per filter next to masked dense layers with one
// threshold per neuron, and the same trainer, flags and report as lenet_300_100.
//
//   lenet5_caffe [--data DIR] [--epochs 20] [--batch 64] [--lr 0.01] [--momentum 0.9]
//                [--alpha 5e-4] [--seed 1] [--dense] [--surrogate long_tailed|ste|sigmoid]
//                [--granularity per_filter|scalar] [--json PATH] [--threads 1] ...
#include <dynsparse/dynsparse.hpp>

#include <memory>

#include "cli/run.hpp"

namespace ds = dynsparse;

// [network]
// The paper's LeNet-5-Caffe: conv 20@5x5, pool 2, conv 50@5x5, pool 2, FC 800-500, FC
// 500-10, every layer masked: per-filter thresholds on the convolutions (G), per-neuron
// ones on the dense layers (D). ReLU follows each convolution and the first dense layer.
template <ds::Surrogate S, ds::ThresholdGranularity G, ds::ThresholdGranularity D>
struct lenet5_caffe : ds::sequential<ds::input<1, 28, 28>,
                                     ds::masked_conv2d<20, 5, 1, 0, S, G>, ds::relu, ds::max_pool2d<2>,
                                     ds::masked_conv2d<50, 5, 1, 0, S, G>, ds::relu, ds::max_pool2d<2>,
                                     ds::flatten,
                                     ds::masked_dense<500, S, D>, ds::relu,
                                     ds::masked_dense<10, S, D>> {};

struct lenet5_caffe_dense : ds::sequential<ds::input<1, 28, 28>,
                                           ds::conv2d<20, 5>, ds::relu, ds::max_pool2d<2>,
                                           ds::conv2d<50, 5>, ds::relu, ds::max_pool2d<2>,
                                           ds::flatten,
                                           ds::dense<500>, ds::relu,
                                           ds::dense<10>> {};
// [network]

namespace {

using examples::run_options;
using examples::run_result;
using examples::train;

/// Maps the runtime policy choice onto its compile-time instantiation.
run_result dispatch(const run_options& o, const ds::dataset& tr, const ds::dataset& ev,
                    const ds::dataset& te, bool eval_is_test) {
    if (o.dense) return train<lenet5_caffe_dense>(o, tr, ev, te, eval_is_test);
    auto with = [&]<class S>() {
        if (o.granularity == "scalar")
            return train<lenet5_caffe<S, ds::scalar, ds::scalar>>(o, tr, ev, te, eval_is_test);
        return train<lenet5_caffe<S, ds::per_filter, ds::per_neuron>>(o, tr, ev, te, eval_is_test);
    };
    if (o.surrogate == "ste") return with.template operator()<ds::straight_through>();
    if (o.surrogate == "sigmoid") return with.template operator()<ds::sigmoid_surrogate<>>();
    return with.template operator()<ds::long_tailed>();
}

}  // namespace

int main(int argc, char** argv) {
    examples::model_info info{"LeNet-5-Caffe", "lenet5_caffe", {"per_filter", "scalar"},
                              "per_filter: per-filter thresholds on convolutions and\n"
                              "                       per-neuron ones on dense layers (the paper's); scalar:\n"
                              "                       one threshold per layer (per_filter)"};
    info.prefer_avx512_blas = true;  // its convolution GEMMs: ~20% faster steps on Zen 5
    return examples::run_main(argc, argv, info, dispatch);
}
