// expect: the optimizer must satisfy dynsparse::Optimizer
// An optimizer with the old whole-list step() and no elementwise update() is rejected.
#include <dynsparse/dynsparse.hpp>
#include <span>
namespace ds = dynsparse;
struct old_style {
    void step(std::span<const ds::parameter>, float) {}
};
struct net : ds::sequential<ds::input<4>, ds::masked_dense<3>> {};
int main() {
    net n;
    ds::trainer<net, ds::softmax_cross_entropy, old_style> t(n, {}, {}, {});
}
