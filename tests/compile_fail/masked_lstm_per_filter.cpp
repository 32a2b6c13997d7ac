// expect: masked_lstm: per_filter is for convolutions
// Per-filter thresholds belong to convolutions; an LSTM's gate matrices take per_neuron.
#include <dynsparse/dynsparse.hpp>
namespace ds = dynsparse;
struct net : ds::sequential<ds::sequence_input<28, 28>, ds::masked_lstm<64, ds::long_tailed, ds::per_filter>,
                            ds::last_step, ds::dense<10>> {};
int main() { net n; n.initialize(1); }
