// expect: the first element must be dynsparse::input
// A network must start with its input shape.
#include <dynsparse/dynsparse.hpp>
namespace ds = dynsparse;
struct net : ds::sequential<ds::masked_dense<300>, ds::relu, ds::dense<10>> {};
int main() { net n; n.initialize(1); }
