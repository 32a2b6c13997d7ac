#pragma once
// WideResNet-16-k for CIFAR (Zagoruyko & Komodakis) with pre-activation basic blocks, as a
// type: conv 3x3 16, three groups of two blocks with 16k, 32k, 64k channels (strides 1,
// 2, 2), batch norm, ReLU, global average pool, FC 10. Every convolution (shortcuts
// included) and the FC layer are masked: 17 masked layers. Convolutions have no bias.
//
// Blocks, as in the reference implementation:
//   widening block (first of a group: channels and maybe stride change)
//       o = relu(bn(x));  y = conv3x3(relu(bn(conv3x3_s(o)))) + conv1x1_s(o)
//   basic block
//       y = conv3x3(relu(bn(conv3x3(relu(bn(x)))))) + x
//
//   ds::models::wide_resnet_16<8>                  WRN-16-8 (wrn16_8 for short)
//   ds::models::wide_resnet_16<K, S, G, D>         surrogate S, conv / dense granularities
#include <cstddef>

#include "dynsparse/layers/activations.hpp"
#include "dynsparse/layers/batch_norm.hpp"
#include "dynsparse/layers/masked_conv2d.hpp"
#include "dynsparse/layers/masked_dense.hpp"
#include "dynsparse/layers/pooling.hpp"
#include "dynsparse/network/residual.hpp"
#include "dynsparse/network/sequential.hpp"

namespace dynsparse::models {

template <std::size_t Out, std::size_t K, std::size_t Stride, class S, class G>
using wrn_conv = masked_conv2d<Out, K, Stride, K / 2, S, G, no_bias>;

/// The first block of a group: pre-activation shared by both paths, 1x1 shortcut.
template <std::size_t Out, std::size_t Stride, class S = long_tailed, class G = per_filter>
using wrn_widening_block =
    chain<batch_norm, relu,
          residual<chain<wrn_conv<Out, 3, Stride, S, G>, batch_norm, relu, wrn_conv<Out, 3, 1, S, G>>,
                   wrn_conv<Out, 1, Stride, S, G>>>;

/// A block that keeps its shape: identity shortcut.
template <std::size_t Out, class S = long_tailed, class G = per_filter>
using wrn_basic_block = residual<chain<batch_norm, relu, wrn_conv<Out, 3, 1, S, G>, batch_norm, relu,
                                       wrn_conv<Out, 3, 1, S, G>>>;

template <std::size_t Widen, class S = long_tailed, class G = per_filter, class D = per_neuron>
struct wide_resnet_16
    : sequential<input<3, 32, 32>,
                 wrn_conv<16, 3, 1, S, G>,
                 wrn_widening_block<16 * Widen, 1, S, G>, wrn_basic_block<16 * Widen, S, G>,
                 wrn_widening_block<32 * Widen, 2, S, G>, wrn_basic_block<32 * Widen, S, G>,
                 wrn_widening_block<64 * Widen, 2, S, G>, wrn_basic_block<64 * Widen, S, G>,
                 batch_norm, relu, global_avg_pool,
                 masked_dense<10, S, D>> {};

template <class S = long_tailed, class G = per_filter, class D = per_neuron>
struct wrn16_8 : wide_resnet_16<8, S, G, D> {};

}  // namespace dynsparse::models
