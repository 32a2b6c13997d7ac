#pragma once
// A small, fully specified random generator (xoshiro128+ seeded by splitmix64), so a
// seed gives the same initialisation and shuffling on every platform and standard
// library (std::uniform_real_distribution and std::shuffle are implementation-defined).
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

namespace dynsparse {

class rng {
public:
    explicit rng(std::uint64_t seed = 0) { reseed(seed); }

    void reseed(std::uint64_t seed) {
        for (auto& word : state_) {
            seed += 0x9E3779B97F4A7C15ULL;
            std::uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
            word = static_cast<std::uint32_t>((z ^ (z >> 31)) >> 32);
        }
    }

    std::uint32_t next_u32() {
        const std::uint32_t result = state_[0] + state_[3];
        const std::uint32_t t = state_[1] << 9;
        state_[2] ^= state_[0];
        state_[3] ^= state_[1];
        state_[1] ^= state_[2];
        state_[0] ^= state_[3];
        state_[2] ^= t;
        state_[3] = (state_[3] << 11) | (state_[3] >> 21);
        return result;
    }

    /// Uniform in [0, 1) with 24 bits of resolution.
    float uniform01() { return static_cast<float>(next_u32() >> 8) * 0x1.0p-24f; }

    float uniform(float lo, float hi) { return lo + (hi - lo) * uniform01(); }

    /// Uniform integer in [0, n), without modulo bias (Lemire's method).
    std::size_t below(std::size_t n) {
        std::uint64_t m = std::uint64_t{next_u32()} * static_cast<std::uint32_t>(n);
        auto low = static_cast<std::uint32_t>(m);
        if (low < n) {
            const std::uint32_t threshold = static_cast<std::uint32_t>(-static_cast<std::uint32_t>(n)) %
                                            static_cast<std::uint32_t>(n);
            while (low < threshold) {
                m = std::uint64_t{next_u32()} * static_cast<std::uint32_t>(n);
                low = static_cast<std::uint32_t>(m);
            }
        }
        return static_cast<std::size_t>(m >> 32);
    }

    template <class T>
    void shuffle(std::span<T> items) {
        for (std::size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[below(i)]);
    }

    std::array<std::uint32_t, 4> state() const { return state_; }
    void set_state(const std::array<std::uint32_t, 4>& s) { state_ = s; }

private:
    std::array<std::uint32_t, 4> state_{};
};

}  // namespace dynsparse
