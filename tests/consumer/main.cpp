// Smallest useful dynsparse program: spell a network, initialise it, run one forward
// pass. Exits 0 iff the output has the expected 5 x 2 shape.
#include <dynsparse/dynsparse.hpp>

#include <exception>
#include <iostream>

struct tiny : dynsparse::sequential<dynsparse::input<4>, dynsparse::masked_dense<3>,
                                    dynsparse::relu, dynsparse::dense<2>> {};

int main() {
    try {
        tiny net;
        net.initialize(1);
        const dynsparse::matrix x({5, 4}, 1.0f);
        const dynsparse::matrix& y = net.forward(x, /*training=*/false);
        std::cout << "dynsparse consumer: output shape " << y.shape(0) << " x " << y.shape(1)
                  << '\n';
        return y.dimension() == 2 && y.shape(0) == 5 && y.shape(1) == 2 ? 0 : 1;
    } catch (const std::exception& e) {
        std::cerr << "dynsparse consumer: " << e.what() << '\n';
        return 1;
    }
}
