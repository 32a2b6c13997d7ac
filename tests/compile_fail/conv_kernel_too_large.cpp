// expect: the kernel \(window\) is larger than the padded input
// After two 5x5 convolutions and two poolings a 28x28 image is 4x4: a third 5x5 kernel
// does not fit.
#include <dynsparse/dynsparse.hpp>
namespace ds = dynsparse;
struct net : ds::sequential<ds::input<1, 28, 28>, ds::masked_conv2d<20, 5>, ds::max_pool2d<2>,
                            ds::masked_conv2d<50, 5>, ds::max_pool2d<2>, ds::conv2d<8, 5>,
                            ds::flatten, ds::dense<10>> {};
int main() { net n; n.initialize(1); }
