// expect: the kernel \(window\) is larger than the padded input
// A 3x3 pooling window on a 2x2 image is rejected.
#include <dynsparse/dynsparse.hpp>
namespace ds = dynsparse;
struct net : ds::sequential<ds::input<4, 2, 2>, ds::max_pool2d<3>, ds::flatten, ds::dense<10>> {};
int main() { net n; n.initialize(1); }
