// expect: lstm<Hidden> reads a sequence \(T, F\): start the network with dynsparse::sequence_input
// An LSTM needs a sequence; a flat vector input is rejected.
#include <dynsparse/dynsparse.hpp>
namespace ds = dynsparse;
struct net : ds::sequential<ds::input<784>, ds::masked_lstm<64>, ds::last_step, ds::dense<10>> {};
int main() { net n; n.initialize(1); }
