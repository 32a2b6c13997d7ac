#pragma once
// The sparse wing in one include: an exported model's data (sparse/op.hpp), the engine
// that runs it (sparse/engine.hpp), dead-unit pruning (sparse/prune.hpp) and the file
// format (sparse/format.hpp); evaluate and predict on data (sparse/evaluate.hpp).
// export_sparse(net), which makes one from a typed network, lives in sparse/export.hpp.
#include "dynsparse/sparse/engine.hpp"
#include "dynsparse/sparse/evaluate.hpp"
#include "dynsparse/sparse/format.hpp"
#include "dynsparse/sparse/op.hpp"
#include "dynsparse/sparse/prune.hpp"
