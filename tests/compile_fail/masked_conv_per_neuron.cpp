// expect: per_neuron is for dense layers; a convolution takes per_filter
// A convolution given the dense-only granularity must not compile.
#include <dynsparse/dynsparse.hpp>
namespace ds = dynsparse;
struct net : ds::sequential<ds::input<1, 28, 28>,
                            ds::masked_conv2d<20, 5, 1, 0, ds::long_tailed, ds::per_neuron>,
                            ds::flatten, ds::dense<10>> {};
int main() { net n; n.initialize(1); }
