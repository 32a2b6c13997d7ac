// expect: last_step reads a sequence \(T, F\)
// last_step after the sequence was already reduced to a vector is a shape error.
#include <dynsparse/dynsparse.hpp>
namespace ds = dynsparse;
struct net : ds::sequential<ds::sequence_input<28, 28>, ds::lstm<64>, ds::last_step, ds::last_step,
                            ds::dense<10>> {};
int main() { net n; n.initialize(1); }
