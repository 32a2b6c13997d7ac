// train/progress.hpp: the progress bar switch.
#include <doctest/doctest.h>

#include "dynsparse/train/progress.hpp"

namespace ds = dynsparse;

TEST_CASE("a disabled progress bar stays inactive") {
    ds::progress_bar bar(false);
    CHECK_FALSE(bar.active());
    bar.start(1, 1, 10);
    bar.update(3, 0.5, 100);  // draws nothing
    bar.finish();
}
