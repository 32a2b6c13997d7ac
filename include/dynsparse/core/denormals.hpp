#pragma once
// Flush-to-zero for the duration of a scope. In DST many gradients stop (weights far
// below their threshold get H = 0), so momentum buffers decay geometrically into the
// denormal range, where x86 arithmetic is much slower (the effect on a training run is in
// docs/benchmarks.md). Setting FTZ/DAZ makes such values exactly 0, deterministically.
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define DYNSPARSE_HAS_MXCSR 1
#endif

namespace dynsparse {

class flush_denormals_scope {
public:
    explicit flush_denormals_scope(bool enable = true) {
#ifdef DYNSPARSE_HAS_MXCSR
        saved_ = _mm_getcsr();
        if (enable) _mm_setcsr(saved_ | flush_to_zero | denormals_are_zero);
#else
        (void)enable;
#endif
    }
    ~flush_denormals_scope() {
#ifdef DYNSPARSE_HAS_MXCSR
        _mm_setcsr(saved_);
#endif
    }
    flush_denormals_scope(const flush_denormals_scope&) = delete;
    flush_denormals_scope& operator=(const flush_denormals_scope&) = delete;

private:
#ifdef DYNSPARSE_HAS_MXCSR
    static constexpr unsigned flush_to_zero = 0x8000;       // MXCSR.FZ
    static constexpr unsigned denormals_are_zero = 0x0040;  // MXCSR.DAZ
    unsigned saved_ = 0;
#endif
};

}  // namespace dynsparse
