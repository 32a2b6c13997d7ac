#pragma once
// Exceptions thrown by the library. Each message names the file, layer or step at fault.
#include <stdexcept>
#include <string>

namespace dynsparse {

/// A file could not be read or does not hold what it should (bad magic, truncated, ...).
struct data_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Training produced a non-finite loss; the message names the epoch and step.
struct training_diverged : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// A runtime argument is out of range (batch size 0, mismatched shapes, ...).
struct invalid_argument : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

}  // namespace dynsparse
