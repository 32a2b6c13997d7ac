#pragma once
// The paper's CIFAR VGG-16 as a type: 13 convolutions 3x3 (padding 1, no bias) each
// followed by batch norm and ReLU, 2x2 max pools after convolutions 2, 4, 7 and 10, a 2x2
// average pool (the map is 2x2 by then), FC 512-512 + batch norm + ReLU, FC 512-10.
// Every convolution and both FC layers are masked: 15 masked layers.
//
//   ds::models::vgg16_cifar<>                          DST, per-filter / per-neuron thresholds
//   ds::models::vgg16_cifar<S, G, D>                   surrogate S, conv granularity G,
//                                                      dense granularity D
//   ds::models::vgg16_cifar<S, G, D, 16>               every width divided by 16 (tests)
//   ds::models::vgg16_cifar_dense<>                    the same network, unmasked
#include <cstddef>

#include "dynsparse/layers/activations.hpp"
#include "dynsparse/layers/batch_norm.hpp"
#include "dynsparse/layers/conv2d.hpp"
#include "dynsparse/layers/dense.hpp"
#include "dynsparse/layers/masked_conv2d.hpp"
#include "dynsparse/layers/masked_dense.hpp"
#include "dynsparse/layers/pooling.hpp"
#include "dynsparse/layers/reshape.hpp"
#include "dynsparse/network/sequential.hpp"

namespace dynsparse::models {

#define DYNSPARSE_VGG_CONV(C) masked_conv2d<(C) / Divisor, 3, 1, 1, S, G, no_bias>, batch_norm, relu
// One 3x3 convolution + batch norm + ReLU (a macro only to keep the list below one line per
// stage, as the paper draws it).
template <class S = long_tailed, class G = per_filter, class D = per_neuron, std::size_t Divisor = 1>
struct vgg16_cifar
    : sequential<input<3, 32, 32>,
                 DYNSPARSE_VGG_CONV(64), DYNSPARSE_VGG_CONV(64), max_pool2d<2>,
                 DYNSPARSE_VGG_CONV(128), DYNSPARSE_VGG_CONV(128), max_pool2d<2>,
                 DYNSPARSE_VGG_CONV(256), DYNSPARSE_VGG_CONV(256), DYNSPARSE_VGG_CONV(256), max_pool2d<2>,
                 DYNSPARSE_VGG_CONV(512), DYNSPARSE_VGG_CONV(512), DYNSPARSE_VGG_CONV(512), max_pool2d<2>,
                 DYNSPARSE_VGG_CONV(512), DYNSPARSE_VGG_CONV(512), DYNSPARSE_VGG_CONV(512),
                 avg_pool2d<2>, flatten,
                 masked_dense<512 / Divisor, S, D>, batch_norm, relu,
                 masked_dense<10, S, D>> {};
#undef DYNSPARSE_VGG_CONV

#define DYNSPARSE_VGG_CONV(C) conv2d<(C) / Divisor, 3, 1, 1, no_bias>, batch_norm, relu
/// The dense baseline: the same network with plain convolutions and FC layers.
template <std::size_t Divisor = 1>
struct vgg16_cifar_dense
    : sequential<input<3, 32, 32>,
                 DYNSPARSE_VGG_CONV(64), DYNSPARSE_VGG_CONV(64), max_pool2d<2>,
                 DYNSPARSE_VGG_CONV(128), DYNSPARSE_VGG_CONV(128), max_pool2d<2>,
                 DYNSPARSE_VGG_CONV(256), DYNSPARSE_VGG_CONV(256), DYNSPARSE_VGG_CONV(256), max_pool2d<2>,
                 DYNSPARSE_VGG_CONV(512), DYNSPARSE_VGG_CONV(512), DYNSPARSE_VGG_CONV(512), max_pool2d<2>,
                 DYNSPARSE_VGG_CONV(512), DYNSPARSE_VGG_CONV(512), DYNSPARSE_VGG_CONV(512),
                 avg_pool2d<2>, flatten,
                 dense<512 / Divisor>, batch_norm, relu,
                 dense<10>> {};
#undef DYNSPARSE_VGG_CONV

}  // namespace dynsparse::models
