// expect: the new shape must hold exactly as many elements as the input
// 28 x 27 = 756 elements cannot hold a 784-element sample.
#include <dynsparse/dynsparse.hpp>
namespace ds = dynsparse;
struct net : ds::sequential<ds::input<784>, ds::reshape<28, 27>, ds::flatten, ds::dense<10>> {};
int main() { net n; n.initialize(1); }
