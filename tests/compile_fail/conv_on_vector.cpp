// expect: takes a \(C, H, W\) input
// A convolution cannot follow a flattened (vector) activation.
#include <dynsparse/dynsparse.hpp>
namespace ds = dynsparse;
struct net : ds::sequential<ds::input<784>, ds::masked_conv2d<20, 5>, ds::flatten, ds::dense<10>> {};
int main() { net n; n.initialize(1); }
