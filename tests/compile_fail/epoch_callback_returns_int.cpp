// expect: the epoch callback must return void or dynsparse::epoch_action
// An epoch callback returning something else (an int, a bool) is rejected: true could
// mean "stop" or "go on".
#include <dynsparse/dynsparse.hpp>
namespace ds = dynsparse;
struct net : ds::sequential<ds::input<4>, ds::masked_dense<3>> {};
int main() {
    net n;
    ds::trainer<net> t(n, {}, ds::sgd(), {});
    ds::dataset d;
    t.fit(d, d, [](const ds::epoch_report&) { return 1; });
}
