// expect: takes a vector input; put dynsparse::flatten before it
// A dense layer directly after an image-shaped input is a shape error.
#include <dynsparse/dynsparse.hpp>
namespace ds = dynsparse;
struct net : ds::sequential<ds::input<1, 28, 28>, ds::masked_dense<300>, ds::relu, ds::dense<10>> {};
int main() { net n; n.initialize(1); }
