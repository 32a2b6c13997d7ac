#pragma once
// The state protocol: a part with state beyond its trainable tensors (a layer's counters
// and running statistics, an optimizer's moments, a trainer's position, a stateful step
// callback) has visit_state(v) calling v(name, field) for each field, in a fixed order.
// Visiting with a writer saves the part, visiting with a reader restores it: checkpoints
// (io/checkpoint.hpp) are built on it. field_visitor is the run-time form of v.
#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

#include "dynsparse/core/rng.hpp"

namespace dynsparse {

/// What visit_state(v) of a layer, optimizer, trainer or step callback hands its fields
/// to: v(name, field) for each of the field types a checkpoint stores.
class field_visitor {
public:
    virtual void operator()(std::string_view name, std::size_t& v) = 0;
    virtual void operator()(std::string_view name, float& v) = 0;
    virtual void operator()(std::string_view name, double& v) = 0;
    virtual void operator()(std::string_view name, bool& v) = 0;
    virtual void operator()(std::string_view name, rng& g) = 0;
    virtual void operator()(std::string_view name, std::span<float> v) = 0;
    virtual void operator()(std::string_view name, std::vector<std::vector<float>>& buffers) = 0;
    /// A list of any length (a run's history).
    virtual void operator()(std::string_view name, std::vector<double>& list) = 0;

protected:
    ~field_visitor() = default;
};

/// A part with state beyond its trainable tensors: visit_state(v) calls v(name, field) for
/// each field, in a fixed order, and reading back the same fields restores the part. Fields
/// are the types field_visitor takes; a std::span<float> keeps its size.
template <class T>
concept HasState = requires(T& t, field_visitor& v) { t.visit_state(v); };

}  // namespace dynsparse
