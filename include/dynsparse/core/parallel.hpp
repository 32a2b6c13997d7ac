#pragma once
// The library's own threads: a small persistent pool that runs a loop over samples in
// contiguous chunks, one chunk per thread, with the caller working on the first.
//
//   ds::set_threads(2);                     // the library's loops and products on 2 threads
//   ds::parallel_for(batch, [&](std::size_t chunk, std::size_t lo, std::size_t hi) { ... });
//
// Chunks are a fixed function of (items, threads), so results that are summed per chunk
// and then across chunks in chunk order are the same from run to run for a given thread
// count; with one thread the body runs once over the whole range on the caller, exactly
// as a plain loop. Inside a parallel loop BLAS runs on one thread (each chunk makes its
// own BLAS calls), and a parallel_for called from inside another runs serially.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

#include "dynsparse/core/blas.hpp"
#include "dynsparse/core/error.hpp"

namespace dynsparse {

namespace detail {

class thread_pool {
public:
    ~thread_pool() { resize(1); }

    /// Total threads taking part in a loop, the caller included.
    std::size_t size() const { return workers_.size() + 1; }

    void resize(std::size_t n) {
        if (n == 0) n = 1;
        if (n == size()) return;
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
            ++generation_;
            published_.store(generation_, std::memory_order_release);
        }
        wake_.notify_all();
        for (auto& t : workers_) t.join();
        workers_.clear();
        stopping_ = false;
        // A new worker starts from the current generation: it must not miss the next loop.
        const std::size_t now = generation_;
        for (std::size_t i = 1; i < n; ++i) workers_.emplace_back([this, i, now] { work(i, now); });
    }

    /// A loop body behind a plain function pointer: task(body, part).
    using task_fn = void (*)(void* body, std::size_t part);

    /// Runs task(body, part) for part in [0, parts) with parts <= size(), part 0 on the
    /// caller. Not a template: the pool's machinery is compiled once, not once per loop
    /// body (it was ~40% of the code a network's training loop instantiated).
    void run(std::size_t parts, task_fn task, void* body) {
        if (parts <= 1 || in_loop_) {
            for (std::size_t p = 0; p < parts; ++p) task(body, p);
            return;
        }
        {
            std::lock_guard lock(mutex_);
            task_ = task;
            body_ = body;
            parts_ = parts;
            pending_.store(parts - 1, std::memory_order_relaxed);
            error_ = nullptr;
            ++generation_;
            published_.store(generation_, std::memory_order_release);
        }
        wake_.notify_all();
        in_loop_ = true;
        std::exception_ptr mine;
        try {
            task(body, 0);
        } catch (...) {
            mine = std::current_exception();
        }
        in_loop_ = false;
        // Workers finish within microseconds of the caller on balanced chunks: spin first.
        for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin)
            if (spin > 4096) {
                std::unique_lock lock(mutex_);
                done_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
            }
        if (mine) std::rethrow_exception(mine);
        if (error_) std::rethrow_exception(error_);
    }

private:
    void work(std::size_t index, std::size_t seen) {
        for (;;) {
            void (*task)(void*, std::size_t) = nullptr;
            void* body = nullptr;
            bool mine = false;
            // Spin a little before sleeping: loops come every few tens of microseconds in a
            // training step, and waking a sleeping thread costs about as much. A worker's
            // own core has nothing else to do meanwhile.
            const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
            for (unsigned i = 1; published_.load(std::memory_order_acquire) == seen; ++i)
                if (i % 256 == 0 && std::chrono::steady_clock::now() > until) break;
            {
                std::unique_lock lock(mutex_);
                wake_.wait(lock, [&] { return generation_ != seen; });
                seen = generation_;
                if (stopping_) return;
                task = task_;
                body = body_;
                mine = index < parts_;
            }
            if (!mine) continue;
            in_loop_ = true;
            try {
                task(body, index);
            } catch (...) {
                std::lock_guard lock(mutex_);
                if (!error_) error_ = std::current_exception();
            }
            in_loop_ = false;
            if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                std::lock_guard lock(mutex_);
                done_.notify_one();
            }
        }
    }

    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable wake_, done_;
    std::size_t generation_ = 0;
    std::atomic<std::size_t> published_{0};  // generation_, readable without the lock
    bool stopping_ = false;
    task_fn task_ = nullptr;
    void* body_ = nullptr;
    std::size_t parts_ = 0;
    std::atomic<std::size_t> pending_{0};
    std::exception_ptr error_;
    static inline thread_local bool in_loop_ = false;
};

inline thread_pool& pool() {
    static thread_pool p;
    return p;
}

}  // namespace detail

/// Threads for the library's own loops: the samples of a batch in convolution, dense,
/// pooling and activation layers, the channels of batch norm. One by default; results for
/// a given count are reproducible run to run. BLAS is set to one thread: each chunk of
/// samples makes its own BLAS calls (OpenBLAS's threads spin for a while after every call
/// and would take cores from the library's own loops; see docs/benchmarks.md).
/// Layers that leave the batch to BLAS (the LSTM's products) get BLAS threads from
/// set_blas_threads.
inline void set_threads(std::size_t n) {
    if (n == 0) throw invalid_argument("set_threads: need at least one thread");
    detail::pool().resize(n);
    set_blas_threads(1);
}

inline std::size_t threads() { return detail::pool().size(); }

/// About this many elements of simple work (a few flops each) per thread at least: below
/// that, waking a thread costs more than it saves.
inline constexpr std::size_t parallel_grain_elements = 16384;

/// The grain (items per chunk, at least 1) for items of `elements_per_item` elements each.
inline constexpr std::size_t grain_for(std::size_t elements_per_item) {
    return parallel_grain_elements / (elements_per_item + 1) + 1;
}

/// The chunk [lo, hi) of `items` that chunk `c` of `chunks` covers.
inline void chunk_range(std::size_t items, std::size_t chunks, std::size_t c, std::size_t& lo,
                        std::size_t& hi) {
    lo = items * c / chunks;
    hi = items * (c + 1) / chunks;
}

/// How many chunks parallel_for(items, body, grain) uses: one per thread, but no chunk
/// smaller than `grain` items (waking a thread costs microseconds), and at least one.
inline std::size_t parallel_chunks(std::size_t items, std::size_t grain = 1) {
    return std::max<std::size_t>(1, std::min(threads(), items / std::max<std::size_t>(grain, 1)));
}

namespace detail {

/// One chunk of a parallel_for: the pool's task for a loop body `Body`. Kept out of line so
/// that each loop body is compiled once, whether it runs on one thread or several.
template <class Body>
[[gnu::noinline]] void run_chunk(void* loop, std::size_t chunk) {
    const auto& l = *static_cast<const std::tuple<Body*, std::size_t, std::size_t>*>(loop);
    std::size_t lo, hi;
    chunk_range(std::get<1>(l), std::get<2>(l), chunk, lo, hi);
    (*std::get<0>(l))(chunk, lo, hi);
}

/// The non-template part of parallel_for: BLAS on one thread while the chunks run.
inline void run_chunks(std::size_t chunks, thread_pool::task_fn task, void* loop) {
    const int blas = blas_threads();
    if (blas > 1) set_blas_threads(1);
    try {
        pool().run(chunks, task, loop);
    } catch (...) {
        if (blas > 1) set_blas_threads(blas);
        throw;
    }
    if (blas > 1) set_blas_threads(blas);
}

}  // namespace detail

/// body(chunk, lo, hi) over contiguous chunks of [0, items), one per thread, each of at
/// least `grain` items. BLAS calls in the body run single-threaded while chunks run side
/// by side.
template <class Body>
void parallel_for(std::size_t items, Body&& body, std::size_t grain = 1) {
    using body_type = std::remove_reference_t<Body>;
    const std::size_t chunks = parallel_chunks(items, grain);
    std::tuple<body_type*, std::size_t, std::size_t> loop{&body, items, chunks};
    if (chunks == 1)
        detail::run_chunk<body_type>(&loop, 0);
    else
        detail::run_chunks(chunks, &detail::run_chunk<body_type>, &loop);
}

}  // namespace dynsparse
