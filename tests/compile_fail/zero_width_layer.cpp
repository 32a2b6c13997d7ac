// expect: masked_dense<Out>: Out must be positive
// A layer with no outputs is rejected.
#include <dynsparse/dynsparse.hpp>
namespace ds = dynsparse;
struct net : ds::sequential<ds::input<784>, ds::masked_dense<0>> {};
int main() { net n; n.initialize(1); }
