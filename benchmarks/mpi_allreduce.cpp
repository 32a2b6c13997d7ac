// Allreduce cost of the data-parallel step (distributed/mpi.hpp): MPI_Allreduce (SUM, in
// place, float) of one step's gradient buffer for each model, timed on this machine, and
// each model's per-step gradient bytes. Built with -DDYNSPARSE_WITH_MPI=ON only.
//
//   mpirun -np 2 --oversubscribe build/bin/mpi_allreduce [--repeats 20]
#include <dynsparse/distributed/mpi.hpp>
#include <dynsparse/dynsparse.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace ds = dynsparse;

struct lenet_300_100 : ds::sequential<ds::input<784>, ds::masked_dense<300>, ds::relu, ds::masked_dense<100>,
                                      ds::relu, ds::masked_dense<10>> {};

template <class Net>
std::size_t parameter_count() {
    auto net = std::make_unique<Net>();
    std::size_t n = 0;
    net->for_each_parameter([&](const ds::parameter& p) { n += p.value.size(); });
    return n;
}

int main(int argc, char** argv) {
    ds::distributed::mpi_environment env(argc, argv);
    const ds::distributed::mpi_communicator world;
    int repeats = 20;
    for (int i = 1; i + 1 < argc; ++i)
        if (std::strcmp(argv[i], "--repeats") == 0) repeats = std::max(1, std::atoi(argv[i + 1]));
    struct model {
        const char* name;
        std::size_t floats;
    };
    const std::vector<model> models{
        {"latency (1 float)", 1},
        {"LeNet-300-100", parameter_count<lenet_300_100>()},
        {"VGG-16 (CIFAR)", parameter_count<ds::models::vgg16_cifar<>>()},
        {"WRN-16-8", parameter_count<ds::models::wide_resnet_16<8>>()},
    };
    if (world.rank() == 0)
        std::printf("%zu processes; median of %d allreduces after one warm-up\n%-20s %12s %12s %10s %12s\n",
                    world.size(), repeats, "buffer", "floats", "MB", "ms", "GB/s (bus)");
    for (const model& m : models) {
        std::vector<float> buffer(m.floats + 2, 1.0f);  // + the loss pair
        world.sum(buffer);
        std::vector<double> ms;
        for (int r = 0; r < repeats; ++r) {
            world.barrier();
            const auto t0 = std::chrono::steady_clock::now();
            world.sum(buffer);
            ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
        std::sort(ms.begin(), ms.end());
        const double t = ms[ms.size() / 2], bytes = 4.0 * static_cast<double>(buffer.size());
        const double n = static_cast<double>(world.size());
        // Bus bandwidth as NCCL reports it: the ring's 2 (N-1)/N bytes per byte reduced.
        if (world.rank() == 0)
            std::printf("%-20s %12zu %12.2f %10.3f %12.2f\n", m.name, buffer.size(), bytes / 1e6, t,
                        2 * (n - 1) / n * bytes / (t * 1e6));
    }
    return 0;
}
