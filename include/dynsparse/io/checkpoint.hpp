#pragma once
// Checkpoints: the full training state of a trainer and its network, so that a run stopped
// after epoch k and resumed from its checkpoint continues bit for bit as if it had never
// stopped (same seed, same BLAS thread count).
//
// What is saved, through one state protocol, so new layers and optimizers plug in without
// changes here:
//   - every layer's trainable tensors, from for_each_parameter (weights, biases,
//     thresholds), by name and size;
//   - every layer's other state, from `visit_state(v)` calling v(name, field) (a template
//     `template <class V> void visit_state(V&& v)` or `void visit_state(field_visitor&)`):
//     masked layers' reset counts, batch norm's running statistics, dropout's generator.
//     Composites (sequential, chain, residual) forward visit_state to their layers, so the
//     state inside residual blocks is saved as well;
//   - the trainer's visit_state: epoch (the schedule position), global step, alpha, the
//     shuffling and augmentation generators, and the optimizer's visit_state (SGD
//     momentum, Adam moments).
// A field is one of: std::size_t, float, double, bool, rng, std::span<float> (fixed size),
// std::vector<std::vector<float>> (per-parameter buffers: empty, or one buffer per
// trainable tensor of the network, each of that tensor's size) or std::vector<double> (a
// list of any length). Numbers must be finite: a NaN or infinity is refused on loading.
//
// File: io/binary.hpp's frame (magic "DSCKPT", version, size, CRC-32) around
//   network description (Net::describe(): the layers and their shapes), layer count,
//   per layer: its description and its fields; then the trainer's fields.
// Each field is stored as name, type tag, value; loading checks all of them and names the
// first difference. Loading reads everything twice: once to validate, once to store, so a
// failed load leaves the trainer untouched. Writing goes through write_file_atomically.
//
// The visitors are one abstract field_visitor, so each layer's and optimizer's
// visit_state is compiled once per type; reading and writing are ordinary functions over
// a run-time list of the network's layers (checkpoint_view), of which only the list's
// construction is compiled per network type.
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "dynsparse/core/error.hpp"
#include "dynsparse/core/finite.hpp"
#include "dynsparse/core/rng.hpp"
#include "dynsparse/core/state.hpp"
#include "dynsparse/io/atomic_file.hpp"
#include "dynsparse/io/binary.hpp"
#include "dynsparse/layers/layer.hpp"
#include "dynsparse/network/masked_layer_view.hpp"

namespace dynsparse {

namespace detail {

enum class field_tag : std::uint8_t { count = 1, real = 2, flag = 3, generator = 4, tensor = 5, buffers = 6, real64 = 7, doubles = 8 };

inline const char* field_tag_name(std::uint8_t t) {
    switch (t) {
        case 1: return "integer";
        case 2: return "float";
        case 3: return "bool";
        case 4: return "random generator";
        case 5: return "float array";
        case 6: return "per-parameter buffers";
        case 7: return "double";
        case 8: return "list of doubles";
        default: return "unknown";
    }
}

}  // namespace detail

namespace detail {

/// Writes fields: name, tag, value.
struct state_writer final : field_visitor {
    byte_writer& out;
    explicit state_writer(byte_writer& o) : out(o) {}

    void head(std::string_view name, field_tag t) {
        out.text(name);
        out.u8(static_cast<std::uint8_t>(t));
    }
    void operator()(std::string_view name, std::size_t& v) override {
        head(name, field_tag::count);
        out.u64(v);
    }
    void operator()(std::string_view name, float& v) override {
        head(name, field_tag::real);
        out.f32(v);
    }
    void operator()(std::string_view name, double& v) override {
        head(name, field_tag::real64);
        out.u64(std::bit_cast<std::uint64_t>(v));
    }
    void operator()(std::string_view name, bool& v) override {
        head(name, field_tag::flag);
        out.u8(v ? 1 : 0);
    }
    void operator()(std::string_view name, rng& g) override {
        head(name, field_tag::generator);
        for (std::uint32_t w : g.state()) out.u32(w);
    }
    void operator()(std::string_view name, std::span<float> v) override {
        head(name, field_tag::tensor);
        out.floats(v);
    }
    void operator()(std::string_view name, std::vector<std::vector<float>>& buffers) override {
        head(name, field_tag::buffers);
        out.u64(buffers.size());
        for (const auto& b : buffers) out.floats(b);
    }
    void operator()(std::string_view name, std::vector<double>& list) override {
        head(name, field_tag::doubles);
        out.u64(list.size());
        for (double x : list) out.u64(std::bit_cast<std::uint64_t>(x));
    }
};

/// Reads and checks fields in the order state_writer wrote them; stores them only when
/// `store` is set (the second pass).
struct state_reader final : field_visitor {
    byte_reader& in;
    bool store;
    std::span<const std::size_t> parameter_sizes;  ///< the network's, in for_each_parameter order
    std::string where;                             ///< "layer 2 (masked_dense<100, ...>)"

    state_reader(byte_reader& i, bool s, std::span<const std::size_t> sizes)
        : in(i), store(s), parameter_sizes(sizes) {}

    void head(std::string_view name, field_tag t) {
        const std::string found = in.text("field name");
        if (found != name)
            in.fail(where + ": expected field '" + std::string(name) + "', found '" + found +
                    "' (the checkpoint was written by another network, layer, optimizer or training setup)");
        const std::uint8_t tag = in.u8("field type");
        if (tag != static_cast<std::uint8_t>(t))
            in.fail(where + ": field '" + found + "' holds a " + field_tag_name(tag) + ", expected a " +
                    field_tag_name(static_cast<std::uint8_t>(t)));
    }
    std::string field(std::string_view name) const { return where + ": field '" + std::string(name) + "'"; }

    void operator()(std::string_view name, std::size_t& v) override {
        head(name, field_tag::count);
        const std::uint64_t x = in.u64(field(name).c_str());
        if (store) v = static_cast<std::size_t>(x);
    }
    void operator()(std::string_view name, float& v) override {
        head(name, field_tag::real);
        const float x = in.f32("float");
        if (!std::isfinite(x)) in.fail(field(name) + " is " + std::to_string(x) + ", not a finite number");
        if (store) v = x;
    }
    void operator()(std::string_view name, double& v) override {
        head(name, field_tag::real64);
        const double x = std::bit_cast<double>(in.u64("double"));
        if (!std::isfinite(x)) in.fail(field(name) + " is " + std::to_string(x) + ", not a finite number");
        if (store) v = x;
    }
    /// No NaN or infinity is ever saved by a healthy run (training stops on one first).
    void check_finite(std::span<const float> v, const std::string& what) {
        if (const std::size_t i = first_non_finite(v); i != all_finite)
            in.fail(what + " element " + std::to_string(i) + " is " + std::to_string(v[i]) +
                    ", not a finite number");
    }
    void operator()(std::string_view name, bool& v) override {
        head(name, field_tag::flag);
        const std::uint8_t x = in.u8("bool");
        if (x > 1) in.fail(field(name) + " is not a bool (" + std::to_string(x) + ")");
        if (store) v = x != 0;
    }
    void operator()(std::string_view name, rng& g) override {
        head(name, field_tag::generator);
        std::array<std::uint32_t, 4> s{};
        for (auto& w : s) w = in.u32("generator state");
        if (s == std::array<std::uint32_t, 4>{}) in.fail(field(name) + ": all-zero generator state");
        if (store) g.set_state(s);
    }
    void operator()(std::string_view name, std::span<float> v) override {
        head(name, field_tag::tensor);
        if (store) {
            in.floats_into(v, field(name));
        } else {
            std::vector<float> scratch(v.size());
            in.floats_into(scratch, field(name));
            check_finite(scratch, field(name));
        }
    }
    void operator()(std::string_view name, std::vector<std::vector<float>>& buffers) override {
        head(name, field_tag::buffers);
        const std::uint64_t n = in.length("buffer count", 8);
        if (n != 0 && n != parameter_sizes.size())
            in.fail(field(name) + " has " + std::to_string(n) + " buffers, the network has " +
                    std::to_string(parameter_sizes.size()) + " trainable tensors");
        std::vector<std::vector<float>> read(static_cast<std::size_t>(n));
        for (std::size_t i = 0; i < read.size(); ++i) {
            read[i].resize(parameter_sizes[i]);
            in.floats_into(read[i], field(name) + " buffer " + std::to_string(i));
            check_finite(read[i], field(name) + " buffer " + std::to_string(i));
        }
        if (store) buffers = std::move(read);
    }
    void operator()(std::string_view name, std::vector<double>& list) override {
        head(name, field_tag::doubles);
        std::vector<double> read(static_cast<std::size_t>(in.length((field(name) + " length").c_str(), 8)));
        for (std::size_t i = 0; i < read.size(); ++i) {
            read[i] = std::bit_cast<double>(in.u64("double"));
            if (!std::isfinite(read[i]))
                in.fail(field(name) + " element " + std::to_string(i) + " is " + std::to_string(read[i]) +
                        ", not a finite number");
        }
        if (store) list = std::move(read);
    }
};

/// Visits one layer's fields: its trainable tensors, then its visit_state, if any (a
/// composite's walks its inner layers).
template <class L>
void visit_layer_state(void* layer_ptr, field_visitor& v) {
    L& layer = *static_cast<L*>(layer_ptr);
    layer.for_each_parameter([&](const parameter& p) { v(p.name, p.value); });
    if constexpr (HasState<L>) layer.visit_state(v);
}

/// Version 1 files (before the augmentation and dropout generators and the state inside
/// residual blocks were saved) get their own message rather than a bare version number.
inline void refuse_old_checkpoint(std::string_view bytes, const std::string& file) {
    if (bytes.size() < 12 || bytes.substr(0, 8) != checkpoint_kind.magic) return;
    byte_reader head(bytes.substr(8, 4), file);
    if (head.u32("version") == 1)
        throw data_error(file + ": a dynsparse checkpoint of format version 1, written before "
                         "checkpoints held the augmentation and dropout generators and the state of "
                         "layers inside residual blocks; this build reads version " +
                         std::to_string(checkpoint_kind.version) +
                         " only, so that run cannot be resumed exactly: start it again");
}

}  // namespace detail

/// A trainer and its network as a checkpoint reads and writes them, at run time: the
/// network's description, its layers (name, address, state visitor), the sizes of its
/// trainable tensors, the trainer's state visitor and the masked layers. Made by
/// checkpoint_view_of(trainer); the functions below that take a view are compiled once
/// for all network types. Valid while the trainer and its network are.
struct checkpoint_view {
    struct layer_entry {
        std::string (*describe)();
        void* layer;
        void (*visit)(void* layer, field_visitor& v);
    };
    std::string network;              ///< Net::describe()
    std::vector<layer_entry> layers;  ///< top-level layers, in order
    std::vector<std::size_t> parameter_sizes;
    void* trainer = nullptr;
    void (*visit_trainer)(void* trainer, field_visitor& v) = nullptr;
    void (*check_trainer)(const void* trainer) = nullptr;  ///< throws on a value out of range
    std::vector<masked_layer_view> masked;
};

/// What a checkpoint needs from a trainer: its network and its resumable state.
template <class T>
concept Checkpointable = requires(T& t, field_visitor& v) {
    t.network();
    t.visit_state(v);
};

template <Checkpointable T>
checkpoint_view checkpoint_view_of(T& trainer) {
    auto& net = trainer.network();
    using Net = std::remove_cvref_t<decltype(net)>;
    checkpoint_view s;
    s.network = Net::describe();
    net.for_each_layer([&](auto& layer, std::size_t) {
        using L = std::remove_cvref_t<decltype(layer)>;
        s.layers.push_back({&detail::describe_of<L>, &layer, &detail::visit_layer_state<L>});
    });
    net.for_each_parameter([&](const parameter& p) { s.parameter_sizes.push_back(p.value.size()); });
    s.trainer = &trainer;
    s.visit_trainer = [](void* t, field_visitor& v) { static_cast<T*>(t)->visit_state(v); };
    if constexpr (requires(const T& c) { c.check_state(); })
        s.check_trainer = [](const void* t) { static_cast<const T*>(t)->check_state(); };
    if constexpr (requires { trainer.masked_layers(); }) {
        const auto masked = trainer.masked_layers();
        s.masked.assign(masked.begin(), masked.end());
    } else {
        s.masked = masked_layers(net);
    }
    return s;
}

/// The checkpoint as bytes.
inline std::string checkpoint_bytes(const checkpoint_view& s) {
    byte_writer out;
    out.text(s.network);
    out.u64(s.layers.size());
    detail::state_writer w{out};
    for (const auto& l : s.layers) {
        out.text(l.describe());
        l.visit(l.layer, w);
    }
    out.text("trainer");
    s.visit_trainer(s.trainer, w);
    return frame(checkpoint_kind.magic, checkpoint_kind.version, out.bytes());
}

namespace detail {
/// One pass over a checkpoint's payload: checks every field, and stores them when `store`.
inline void read_checkpoint_payload(const checkpoint_view& s, std::string_view payload,
                                    const std::string& file, bool store) {
    byte_reader in(payload, file);
    const std::string written_for = in.text("network description");
    if (written_for != s.network)
        in.fail("the checkpoint was written for the network\n" + written_for + "but is being loaded into\n" +
                s.network);
    const std::uint64_t layers = in.u64("layer count");
    if (layers != s.layers.size())
        in.fail("the checkpoint has " + std::to_string(layers) + " layers, the network " +
                std::to_string(s.layers.size()));
    state_reader r{in, store, s.parameter_sizes};
    for (std::size_t i = 0; i < s.layers.size(); ++i) {
        const std::string name = s.layers[i].describe();
        r.where = "layer " + std::to_string(i) + " (" + name + ")";
        if (in.text("layer description") != name) in.fail(r.where + ": the checkpoint holds another layer");
        s.layers[i].visit(s.layers[i].layer, r);
    }
    r.where = "trainer";
    if (in.text("section") != "trainer") in.fail("expected the trainer's section");
    s.visit_trainer(s.trainer, r);
    in.expect_end();
}
}  // namespace detail

/// Restores from checkpoint bytes; `file` names them in messages. Throws data_error (and
/// changes nothing) when the bytes are not a valid checkpoint of this network type, hold a
/// non-finite number, or a value the trainer refuses (its check_state(), e.g. alpha < 0).
inline void restore_checkpoint(const checkpoint_view& s, std::string_view bytes, const std::string& file) {
    detail::refuse_old_checkpoint(bytes, file);
    const std::string_view payload = unframe(bytes, file, checkpoint_kind, known_file_kinds);
    detail::read_checkpoint_payload(s, payload, file, false);
    // Values are checked by their owner once stored; keep the current state to roll back to.
    const std::string before = s.check_trainer ? checkpoint_bytes(s) : std::string();
    detail::read_checkpoint_payload(s, payload, file, true);
    if (s.check_trainer) {
        try {
            s.check_trainer(s.trainer);
        } catch (const std::exception& e) {
            detail::read_checkpoint_payload(s, unframe(before, file, checkpoint_kind, known_file_kinds), file, true);
            throw data_error(file + ": " + e.what());
        }
    }
    // Parameters were written through their spans: masks must be recomputed.
    for (const auto& m : s.masked) m.invalidate_mask();
}

/// Writes the checkpoint atomically (temporary file, fsync, rename, fsync of the directory):
/// a crash during the write leaves the previous checkpoint in place.
/// force: replace an existing file even if it is not a checkpoint (io/atomic_file.hpp).
inline void save_checkpoint(const checkpoint_view& s, const std::filesystem::path& path, bool force = false) {
    write_file_atomically(path, checkpoint_bytes(s), "checkpoint", checkpoint_kind.magic, force);
}

inline void load_checkpoint(const checkpoint_view& s, const std::filesystem::path& path) {
    restore_checkpoint(s, read_binary_file(path), path.string());
}

/// The checkpoint of a trainer (and its network) as bytes.
template <Checkpointable T>
std::string checkpoint_bytes(T& trainer) {
    return checkpoint_bytes(checkpoint_view_of(trainer));
}

/// Restores a trainer from checkpoint bytes; `file` names them in messages. Throws
/// data_error (and changes nothing) when the bytes are not a valid checkpoint of this
/// network type.
template <Checkpointable T>
void restore_checkpoint(T& trainer, std::string_view bytes, const std::string& file) {
    restore_checkpoint(checkpoint_view_of(trainer), bytes, file);
}

/// Writes the checkpoint atomically (temporary file, fsync, rename, fsync of the directory):
/// a crash during the write leaves the previous checkpoint in place.
template <Checkpointable T>
void save_checkpoint(T& trainer, const std::filesystem::path& path) {
    save_checkpoint(checkpoint_view_of(trainer), path);
}

template <Checkpointable T>
void load_checkpoint(T& trainer, const std::filesystem::path& path) {
    load_checkpoint(checkpoint_view_of(trainer), path);
}

}  // namespace dynsparse
