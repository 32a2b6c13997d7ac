// expect: dense<Out> reads a vector, not a sequence \(T, F\): put dynsparse::last_step
// A dense layer straight after an LSTM (whose output is the whole sequence) is a shape error.
#include <dynsparse/dynsparse.hpp>
namespace ds = dynsparse;
struct net : ds::sequential<ds::sequence_input<28, 28>, ds::lstm<64>, ds::dense<10>> {};
int main() { net n; n.initialize(1); }
