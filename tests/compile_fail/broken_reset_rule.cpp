// expect: the reset rule must satisfy dynsparse::ResetRule
// A reset rule without a name is rejected with the concept's contract.
#include <dynsparse/dynsparse.hpp>
namespace ds = dynsparse;
struct anonymous_rule {
    bool should_reset(const ds::reset_query&) const { return false; }
};
struct net : ds::sequential<ds::input<4>, ds::masked_dense<3>> {};
int main() {
    net n;
    ds::trainer<net, ds::softmax_cross_entropy, ds::sgd, ds::exp_decay, anonymous_rule> t(n, {}, {}, {});
}
