// expect: the regulariser must satisfy dynsparse::Regulariser
// A regulariser whose apply() returns nothing is rejected with the concept's contract.
#include <dynsparse/dynsparse.hpp>
#include <span>
#include <string_view>
namespace ds = dynsparse;
struct no_value {
    static constexpr std::string_view name = "no_value";
    void apply(std::span<const float>, std::span<float>, const ds::regulariser_scope&) const {}
};
struct net : ds::sequential<ds::input<4>, ds::masked_dense<3>> {};
int main() {
    net n;
    ds::trainer<net, ds::softmax_cross_entropy, ds::sgd, no_value> t(n, {}, {}, {});
}
