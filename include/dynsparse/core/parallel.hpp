#pragma once
// The library's own loops (batch norm, im2col groups, elementwise passes) run on OpenMP
// threads when the program is compiled with OpenMP (the CMake target dynsparse::dynsparse
// carries it when CMake finds it); GEMMs run on OpenBLAS's threads. set_threads(n) sets
// both. Loops split work into fixed per-thread chunks of independent items (channels,
// samples), each computed in the same order as on one thread, so results do not depend on
// the thread count.
#include <cstddef>

#include "dynsparse/core/blas.hpp"

#if defined(_OPENMP)
#include <omp.h>
#define DYNSPARSE_PRAGMA(x) _Pragma(#x)
/// Parallel for over independent iterations when `cond` holds (small loops stay serial).
#define DYNSPARSE_PARALLEL_FOR_IF(cond) DYNSPARSE_PRAGMA(omp parallel for schedule(static) if (cond))
#else
#define DYNSPARSE_PARALLEL_FOR_IF(cond)
#endif

namespace dynsparse {

/// Loops below this many elements of work stay on one thread (a parallel region costs
/// a few microseconds).
inline constexpr std::size_t parallel_min_work = std::size_t{1} << 15;

/// Sets the OpenBLAS threads and, when compiled with OpenMP, the library's loop threads.
inline void set_threads(int n) {
    if (n < 1) n = 1;
    set_blas_threads(n);
#if defined(_OPENMP)
    omp_set_num_threads(n);
#endif
}

/// Threads of the library's own loops (1 without OpenMP).
inline int loop_threads() {
#if defined(_OPENMP)
    return omp_get_max_threads();
#else
    return 1;
#endif
}

}  // namespace dynsparse
