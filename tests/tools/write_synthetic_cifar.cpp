// Writes a small synthetic CIFAR-10 directory (real binary format) for the examples' smoke
// tests:  write_synthetic_cifar DIR [RECORDS_PER_TRAIN_BATCH=4] [TEST_RECORDS=8]
#include <cstdlib>
#include <iostream>

#include "support/cifar_files.hpp"

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: write_synthetic_cifar DIR [RECORDS_PER_TRAIN_BATCH] [TEST_RECORDS]\n";
        return 2;
    }
    const std::size_t per_batch = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 4;
    const std::size_t test = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 8;
    dynsparse::testing::write_synthetic_cifar_directory(argv[1], per_batch, test);
    return 0;
}
