// expect: per_filter is for convolutions; a dense layer takes per_neuron or scalar
// A dense layer given the convolution-only granularity must not compile.
#include <dynsparse/dynsparse.hpp>
namespace ds = dynsparse;
struct net : ds::sequential<ds::input<784>, ds::masked_dense<300, ds::long_tailed, ds::per_filter>> {};
int main() { net n; n.initialize(1); }
