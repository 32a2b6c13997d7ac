#pragma once
// masked_layer_view: a run-time handle on one masked layer of a network, for the cold
// paths that only read or toggle its DST state (epoch reports, CSV logs, target-sparsity
// control, the end-of-epoch and after-restore mask invalidation). Those paths then compile
// once, as ordinary functions over a list of views, instead of once per network type:
// masked_layers(net) is the only part instantiated per network, and each view's functions
// once per layer type. The hot path (forward, backward, the step) never goes through it.
//
//   const auto views = ds::masked_layers(net);   // network order, composites descended
//   for (const auto& v : views) std::cout << v.name() << ' ' << v.statistics().kept << '\n';
//
// A view holds the layer's address: it is valid while the network is alive and not moved.
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "dynsparse/layers/layer.hpp"

namespace dynsparse {

class masked_layer_view {
public:
    template <MaskedLayer L>
    masked_layer_view(L& layer, std::size_t index)
        : layer_(&layer), index_(index), ops_(&ops_for<L>) {}

    /// Index of the network's top-level layer holding it (a residual block's for its
    /// inner layers).
    std::size_t index() const { return index_; }
    std::string name() const { return ops_->name(); }
    mask_statistics statistics() const { return ops_->statistics(layer_); }
    /// W * M as of the last mask (empty for layers that do not expose it).
    std::span<const float> masked_weight() const { return ops_->masked_weight(layer_); }
    void set_reset_rule(bool on) const { ops_->set_reset_rule(layer_, on); }
    /// Makes the next forward recompute the mask (no-op for layers that always do).
    void invalidate_mask() const { ops_->invalidate_mask(layer_); }
    /// invalidate_mask(), then recomputes the mask and its statistics from W and t now, as
    /// the next forward would (no reset), for layers that can (update_mask()).
    void update_mask() const { ops_->update_mask(layer_); }

private:
    struct operations {
        std::string (*name)();
        mask_statistics (*statistics)(const void*);
        std::span<const float> (*masked_weight)(const void*);
        void (*set_reset_rule)(void*, bool);
        void (*invalidate_mask)(void*);
        void (*update_mask)(void*);
    };

    template <class L>
    static constexpr operations ops_for{
        &detail::describe_of<L>,
        [](const void* l) { return static_cast<const L*>(l)->statistics(); },
        [](const void* l) -> std::span<const float> {
            if constexpr (requires(const L& c) { c.masked_weight(); }) {
                const auto& wm = static_cast<const L*>(l)->masked_weight();
                return {wm.data(), wm.size()};
            } else {
                return {};
            }
        },
        [](void* l, bool on) { static_cast<L*>(l)->set_reset_rule(on); },
        [](void* l) {
            if constexpr (requires(L& m) { m.invalidate_mask(); }) static_cast<L*>(l)->invalidate_mask();
        },
        [](void* l) {
            if constexpr (requires(L& m) { m.invalidate_mask(); }) static_cast<L*>(l)->invalidate_mask();
            if constexpr (requires(L& m) { m.update_mask(); }) static_cast<L*>(l)->update_mask();
        },
    };

    void* layer_;
    std::size_t index_;
    const operations* ops_;
};

/// Views of every masked layer of `net`, in network order (see for_each_masked_layer).
template <class Net>
std::vector<masked_layer_view> masked_layers(Net& net) {
    std::vector<masked_layer_view> views;
    net.for_each_masked_layer([&](auto& layer, std::size_t i) { views.emplace_back(layer, i); });
    return views;
}

/// The same for a const network: the views' setters must then not be used.
template <class Net>
std::vector<masked_layer_view> masked_layers(const Net& net) {
    return masked_layers(const_cast<Net&>(net));
}

/// Sum of the layers' kept and total weights and reset counts.
struct mask_totals {
    std::size_t kept = 0, total = 0, resets = 0;
    double remaining() const { return total ? static_cast<double>(kept) / static_cast<double>(total) : 1.0; }
};

inline mask_totals totals(std::span<const masked_layer_view> views) {
    mask_totals t;
    for (const auto& v : views) {
        const mask_statistics s = v.statistics();
        t.kept += s.kept;
        t.total += s.total;
        t.resets += s.resets;
    }
    return t;
}

}  // namespace dynsparse
