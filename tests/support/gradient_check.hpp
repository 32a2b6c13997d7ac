#pragma once
// The installed gradient checker (dynsparse/testing/) plus a doctest assertion on its result.
#include <doctest/doctest.h>

#include "dynsparse/testing/gradient_check.hpp"

#define DYNSPARSE_CHECK_GRADIENTS(result)                     \
    do {                                                      \
        const auto& r_ = (result);                            \
        INFO(r_.summary());                                   \
        CHECK(r_.checked > 0);                                \
        CHECK(r_.failed == 0);                                \
    } while (0)
