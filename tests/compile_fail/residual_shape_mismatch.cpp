// expect: the body's output shape differs from the shortcut's
// A residual block whose body doubles the channels but keeps the identity shortcut.
#include <dynsparse/layers/masked_conv2d.hpp>
#include <dynsparse/network/residual.hpp>

namespace ds = dynsparse;

struct net : ds::sequential<ds::input<4, 8, 8>,
                            ds::residual<ds::chain<ds::masked_conv2d<8, 3, 1, 1>>>> {};

net instance;
