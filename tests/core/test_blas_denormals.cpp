// core/blas.hpp and core/denormals.hpp: the GEMM wrapper and flush-to-zero scopes.
#include <doctest/doctest.h>

#include <limits>

#include "dynsparse/core/blas.hpp"
#include "dynsparse/core/denormals.hpp"

namespace ds = dynsparse;

TEST_CASE("flush_denormals_scope flushes denormals inside and restores the mode after") {
    volatile float tiny = std::numeric_limits<float>::min();  // smallest normal
    volatile float half = 0.5f;
    {
        const ds::flush_denormals_scope ftz;
#ifdef DYNSPARSE_HAS_MXCSR
        CHECK(tiny * half == 0.0f);
#endif
    }
    CHECK(tiny * half > 0.0f);  // denormal again outside the scope
    {
        const ds::flush_denormals_scope off(false);
        CHECK(tiny * half > 0.0f);
    }
}

TEST_CASE("gemm computes op(A) op(B) with transpose flags") {
    const float a[6] = {1, 2, 3, 4, 5, 6};  // 2 x 3
    const float b[6] = {1, 0, 0, 1, 1, 1};  // 3 x 2
    float c[4] = {10, 10, 10, 10};
    ds::gemm(ds::transpose::no, ds::transpose::no, 2, 2, 3, 1.0f, a, 3, b, 2, 0.0f, c, 2);
    CHECK(c[0] == 4.0f);
    CHECK(c[1] == 5.0f);
    CHECK(c[2] == 10.0f);
    CHECK(c[3] == 11.0f);
    // A^T A (3 x 3), beta = 1 adds to what is there.
    float d[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    ds::gemm(ds::transpose::yes, ds::transpose::no, 3, 3, 2, 1.0f, a, 3, a, 3, 1.0f, d, 3);
    CHECK(d[0] == 1.0f + 1 + 16);
    CHECK(d[5] == 1.0f + 2 * 3 + 5 * 6);
    CHECK(ds::blas_core_name().size() > 0);
}
