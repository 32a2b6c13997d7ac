// expect: the second argument must satisfy dynsparse::Surrogate
// A surrogate without smooth_step does not satisfy the Surrogate concept.
#include <dynsparse/dynsparse.hpp>
namespace ds = dynsparse;
struct half_surrogate {
    static constexpr std::string_view name = "half";
    static float derivative(float) { return 1.0f; }
};
struct net : ds::sequential<ds::input<10>, ds::masked_dense<5, half_surrogate>> {};
int main() { net n; n.initialize(1); }
