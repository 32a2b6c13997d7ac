// LSTM-a / LSTM-b trained with Dynamic Sparse Training on Fashion-MNIST read as sequences.
//
// Shows: a recurrent network as a type. Each 28x28 image is a sequence of 28 time steps
// (its rows) of 28 values, sequence_input<28, 28>; two stacked LSTM layers of Hidden units
// (128: LSTM-a, 256: LSTM-b) pass the whole sequence from one to the next, last_step keeps
// the last hidden state and a dense layer classifies it. In the DST network each LSTM's
// eight gate matrices are masked with their own thresholds (per hidden unit by default);
// the output layer is unmasked as in the paper, or masked with --masked-head. The recipe
// is the paper's for LSTMs: Adam, learning rate 1e-3, batch 100, 20 epochs, alpha 1e-4.
// Other flags, the report and --json are those of the other examples (cli/run.hpp).
//
//   lstm_mnist [--hidden 128|256] [--masked-head] [--dense] [--epochs 20] [--batch 100]
//              [--lr 1e-3] [--alpha 1e-4] [--surrogate long_tailed|ste|sigmoid]
//              [--granularity per_neuron|scalar] [--json PATH] [--threads 1] ...
#include <dynsparse/dynsparse.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "cli/run.hpp"

namespace ds = dynsparse;

// [network]
// LSTM-a (Hidden = 128) and LSTM-b (Hidden = 256): two stacked masked LSTMs with
// surrogate S and threshold granularity G for each gate matrix, and an output layer
// Head (ds::dense<10> in the paper, or ds::masked_dense<10, S, G>).
template <std::size_t Hidden, ds::Surrogate S, ds::ThresholdGranularity G, class Head>
struct lstm_dst : ds::sequential<ds::sequence_input<28, 28>,
                                 ds::masked_lstm<Hidden, S, G>,
                                 ds::masked_lstm<Hidden, S, G>,
                                 ds::last_step, Head> {};

template <std::size_t Hidden>
struct lstm_dense : ds::sequential<ds::sequence_input<28, 28>, ds::lstm<Hidden>, ds::lstm<Hidden>,
                                   ds::last_step, ds::dense<10>> {};
// [network]

namespace {

using examples::run_options;
using examples::run_result;
using examples::train;

bool masked_head = false;
std::size_t hidden = 128;

template <std::size_t Hidden>
run_result dispatch_hidden(const run_options& o, const ds::dataset& tr, const ds::dataset& ev,
                           const ds::dataset& te, bool eval_is_test) {
    if (o.dense) return train<lstm_dense<Hidden>, ds::adam>(o, tr, ev, te, eval_is_test);
    auto with = [&]<class S, class G>() {
        if (masked_head)
            return train<lstm_dst<Hidden, S, G, ds::masked_dense<10, S, G>>, ds::adam>(o, tr, ev, te,
                                                                                      eval_is_test);
        return train<lstm_dst<Hidden, S, G, ds::dense<10>>, ds::adam>(o, tr, ev, te, eval_is_test);
    };
    auto with_s = [&]<class S>() {
        if (o.granularity == "scalar") return with.template operator()<S, ds::scalar>();
        return with.template operator()<S, ds::per_neuron>();
    };
    if (o.surrogate == "ste") return with_s.template operator()<ds::straight_through>();
    if (o.surrogate == "sigmoid") return with_s.template operator()<ds::sigmoid_surrogate<>>();
    return with_s.template operator()<ds::long_tailed>();
}

/// Maps the runtime choices onto their compile-time instantiation.
run_result dispatch(const run_options& o, const ds::dataset& tr, const ds::dataset& ev,
                    const ds::dataset& te, bool eval_is_test) {
    if (hidden == 256) return dispatch_hidden<256>(o, tr, ev, te, eval_is_test);
    return dispatch_hidden<128>(o, tr, ev, te, eval_is_test);
}

}  // namespace

int main(int argc, char** argv) {
    examples::restart_with_fast_blas_kernels(argv);
    // --hidden and --masked-head belong to this example; the rest go to the shared program.
    std::vector<char*> rest{argv[0]};
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--masked-head") == 0) {
            masked_head = true;
        } else if (std::strcmp(argv[i], "--hidden") == 0) {
            const std::string v = i + 1 < argc ? argv[++i] : "";
            if (v != "128" && v != "256") {
                std::cerr << "error: --hidden must be 128 (LSTM-a) or 256 (LSTM-b), got '" << v << "'\n";
                return 1;
            }
            hidden = std::stoul(v);
        } else {
            rest.push_back(argv[i]);
        }
    }
    rest.push_back(nullptr);
    const bool b = hidden == 256;
    const examples::model_info info{
        b ? "LSTM-b (2 x LSTM 256)" : "LSTM-a (2 x LSTM 128)", b ? "lstm_b" : "lstm_a",
        {"per_neuron", "scalar"},
        "per_neuron: one threshold per hidden unit in each of the\n"
        "                       eight gate matrices of an LSTM (the paper's); scalar: one per\n"
        "                       gate matrix (per_neuron)"};
    examples::recipe recipe;
    recipe.optimizer = "adam";
    recipe.lr = 1e-3;
    recipe.batch = 100;
    recipe.alpha = 1e-4;
    recipe.extra_help =
        "  --hidden N           LSTM units per layer: 128 (LSTM-a) or 256 (LSTM-b) (128)\n"
        "  --masked-head        mask the output layer too (the paper leaves it dense)\n"
        "  (Adam: --momentum and --nesterov do not apply)\n";
    return examples::run_main(static_cast<int>(rest.size()) - 1, rest.data(), info, dispatch, recipe);
}
