// libFuzzer target: the checkpoint loader (io/checkpoint.hpp) must refuse every bad input
// with a data_error and never crash, hang or read out of bounds.
#include "common.hpp"

namespace {
using namespace fuzz;

ds::train_config quiet() {
    ds::train_config c;
    c.progress = false;
    return c;
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    tiny_net net;
    net.initialize(1);
    ds::trainer<tiny_net> tr(net, {}, ds::sgd({.momentum = 0.9f}), quiet());
    ds::matrix x = ds::make_matrix(4, 25, 0.5f);
    const std::uint8_t y[4] = {0, 1, 2, 1};
    tr.step(x, y, 0.01f);  // fills the momentum buffers
    const std::string file = ds::checkpoint_bytes(tr);
    write_seed("checkpoint", "\x00" + file);
    write_seed("checkpoint_payload", payload_seed(file, ds::checkpoint_kind));
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static tiny_net net;
    static ds::trainer<tiny_net> tr(net, {}, ds::sgd({.momentum = 0.9f}), quiet());
    try {
        ds::restore_checkpoint(tr, as_file(data, size, ds::checkpoint_kind), "fuzz");
    } catch (const ds::data_error&) {
    }
    return 0;
}
