// libFuzzer target: the exported-model loader (sparse/model.hpp) must refuse every bad
// input with a data_error; a model it accepts must run on a batch without crashing.
#include "common.hpp"

namespace {
using namespace fuzz;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    tiny_net net;
    net.initialize(2);
    const std::string file = ds::sparse_model_bytes(ds::export_sparse(net));
    write_seed("model", "\x00" + file);
    write_seed("model_payload", payload_seed(file, ds::exported_model_kind));
    tiny_lstm_net lstm;
    lstm.initialize(3);
    const std::string lstm_file = ds::sparse_model_bytes(ds::export_sparse(lstm));
    write_seed("lstm_model", "\x00" + lstm_file);
    write_seed("lstm_model_payload", payload_seed(lstm_file, ds::exported_model_kind));
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        ds::sparse_model m = ds::parse_sparse_model(as_file(data, size, ds::exported_model_kind), "fuzz");
        if (m.input_size() > (1u << 16)) return 0;  // valid but too slow to run here
        const ds::matrix x = ds::make_matrix(2, m.input_size(), 0.25f);
        m.run(x);
        m.run(x, ds::kernel_choice::sparse);
        const ds::matrix x9 = ds::make_matrix(9, m.input_size(), -0.5f);  // the feature-major kernels
        m.run(x9, ds::kernel_choice::sparse);
    } catch (const ds::data_error&) {
    }
    return 0;
}
