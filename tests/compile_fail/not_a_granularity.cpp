// expect: the third argument must satisfy dynsparse::ThresholdGranularity
// A surrogate passed where a granularity belongs is rejected.
#include <dynsparse/dynsparse.hpp>
namespace ds = dynsparse;
struct net : ds::sequential<ds::input<10>, ds::masked_dense<5, ds::long_tailed, ds::straight_through>> {};
int main() { net n; n.initialize(1); }
