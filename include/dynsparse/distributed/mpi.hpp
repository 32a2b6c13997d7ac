#pragma once
// Data-parallel DST over MPI: the same trainer on N processes, each on its share of every
// global batch (train/data_parallel.hpp). Needs the dynsparse::mpi target
// (-DDYNSPARSE_WITH_MPI=ON, find_package(dynsparse COMPONENTS mpi)); nothing else in the
// library includes this header.
//
//   ds::distributed::mpi_environment env(argc, argv);   // MPI_Init / MPI_Finalize
//   ds::distributed::mpi_communicator world;
//   ds::trainer<Net> trainer(net, {}, ds::sgd(...), cfg); // same cfg, global batch size
//   if (world.rank() == 0 && resuming) ds::load_checkpoint(trainer, path);
//   ds::distributed::attach(trainer, world);              // rank 0's state to every rank
//   trainer.fit(train, test);                             // every rank, same data
//
// attach broadcasts rank 0's whole checkpoint state (parameters, thresholds, reset counters,
// batch-norm statistics, optimizer state, generators, epoch and step), so that a checkpoint
// written by any number of processes resumes on any other number. Each step then makes one
// MPI_Allreduce (SUM, in place) of all raw gradients and the loss, fused in one buffer.
// After every epoch the divergence guard compares a checksum of each layer across ranks
// (one allreduce of 2 x layers integers) and throws replicas_diverged naming the first
// layer that differs; then rank 0's state is broadcast again, which makes the batch-norm
// running statistics (per-rank during the epoch, as PyTorch DDP) rank 0's everywhere.
#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "dynsparse/distributed/checksum.hpp"
#include "dynsparse/io/checkpoint.hpp"
#include "dynsparse/train/trainer.hpp"

namespace dynsparse::distributed {

/// The replicas of a data-parallel run are no longer identical.
struct replicas_diverged : std::runtime_error {
    using std::runtime_error::runtime_error;
};

inline void check_mpi(int rc, const char* what) {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    throw std::runtime_error(std::string("MPI: ") + what + " failed: " + std::string(text, static_cast<std::size_t>(len)));
}

/// MPI_Init on construction unless MPI is already initialised; MPI_Finalize on
/// destruction if this object initialised it.
class mpi_environment {
public:
    mpi_environment(int& argc, char**& argv) {
        int done = 0;
        MPI_Initialized(&done);
        if (!done) {
            check_mpi(MPI_Init(&argc, &argv), "MPI_Init");
            owner_ = true;
        }
    }
    mpi_environment() {
        int done = 0;
        MPI_Initialized(&done);
        if (!done) {
            check_mpi(MPI_Init(nullptr, nullptr), "MPI_Init");
            owner_ = true;
        }
    }
    mpi_environment(const mpi_environment&) = delete;
    mpi_environment& operator=(const mpi_environment&) = delete;
    ~mpi_environment() {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (owner_ && !finalized) MPI_Finalize();
    }

    /// Ends every process of the run (after an error on one rank, the others would wait in
    /// a collective forever).
    [[noreturn]] static void abort(int code) {
        MPI_Abort(MPI_COMM_WORLD, code);
        std::abort();
    }

private:
    bool owner_ = false;
};

/// The collectives the trainer needs, on one communicator (MPI_COMM_WORLD by default).
class mpi_communicator {
public:
    explicit mpi_communicator(MPI_Comm comm = MPI_COMM_WORLD) : comm_(comm) {
        int r = 0, n = 0;
        check_mpi(MPI_Comm_rank(comm_, &r), "MPI_Comm_rank");
        check_mpi(MPI_Comm_size(comm_, &n), "MPI_Comm_size");
        rank_ = static_cast<std::size_t>(r);
        size_ = static_cast<std::size_t>(n);
    }
    std::size_t rank() const { return rank_; }
    std::size_t size() const { return size_; }

    /// In-place element-wise sums over all ranks.
    void sum(std::span<float> v) const { allreduce(v.data(), v.size(), MPI_FLOAT, MPI_SUM); }
    void sum(std::span<double> v) const { allreduce(v.data(), v.size(), MPI_DOUBLE, MPI_SUM); }
    /// In-place element-wise maximum over all ranks.
    void max(std::span<std::uint64_t> v) const { allreduce(v.data(), v.size(), MPI_UINT64_T, MPI_MAX); }

    /// Rank 0's bytes on every rank (others pass anything).
    std::string broadcast(std::string bytes) const {
        std::uint64_t n = bytes.size();
        check_mpi(MPI_Bcast(&n, 1, MPI_UINT64_T, 0, comm_), "MPI_Bcast");
        bytes.resize(n);
        for (std::uint64_t at = 0; at < n; at += chunk) {
            const int count = static_cast<int>(std::min<std::uint64_t>(chunk, n - at));
            check_mpi(MPI_Bcast(bytes.data() + at, count, MPI_BYTE, 0, comm_), "MPI_Bcast");
        }
        return bytes;
    }

    void barrier() const { check_mpi(MPI_Barrier(comm_), "MPI_Barrier"); }

private:
    static constexpr std::uint64_t chunk = std::uint64_t{1} << 30;

    void allreduce(void* data, std::size_t n, MPI_Datatype type, MPI_Op op) const {
        auto* p = static_cast<char*>(data);
        int bytes_per = 0;
        MPI_Type_size(type, &bytes_per);
        for (std::size_t at = 0; at < n; at += chunk) {
            const int count = static_cast<int>(std::min<std::size_t>(chunk, n - at));
            check_mpi(MPI_Allreduce(MPI_IN_PLACE, p + at * static_cast<std::size_t>(bytes_per), count, type, op, comm_),
                      "MPI_Allreduce");
        }
    }

    MPI_Comm comm_;
    std::size_t rank_ = 0, size_ = 1;
};

/// Copies rank 0's state (the view's checkpoint) to every rank.
inline void broadcast_state(const checkpoint_view& view, const mpi_communicator& comm) {
    if (comm.size() <= 1) return;
    const std::string bytes = comm.broadcast(comm.rank() == 0 ? checkpoint_bytes(view) : std::string());
    if (comm.rank() != 0) restore_checkpoint(view, bytes, "the state broadcast by rank 0");
}

/// The divergence guard: throws replicas_diverged, on every rank, naming the first layer
/// whose checksum (distributed/checksum.hpp) differs between ranks. One allreduce (max of
/// the checksums and of their complements, i.e. max and min).
inline void check_replicas(const checkpoint_view& view, const mpi_communicator& comm, std::size_t epoch) {
    if (comm.size() <= 1) return;
    const std::vector<std::uint64_t> sums = layer_checksums(view);
    std::vector<std::uint64_t> both(2 * sums.size());
    for (std::size_t i = 0; i < sums.size(); ++i) {
        both[i] = sums[i];
        both[sums.size() + i] = ~sums[i];
    }
    comm.max(both);
    for (std::size_t i = 0; i < sums.size(); ++i)
        if (both[i] != ~both[sums.size() + i])
            throw replicas_diverged("data-parallel training: after epoch " + std::to_string(epoch) + ", " +
                                    layer_label(view, i) + " differs between the " +
                                    std::to_string(comm.size()) +
                                    " processes (the first layer that does): the replicas are no "
                                    "longer identical");
}

struct attach_options {
    bool guard = true;              ///< the divergence guard after every epoch
    bool sync_each_epoch = true;    ///< rank 0's state broadcast after every epoch
};

/// Makes `trainer` one rank of the data-parallel run on `comm`: broadcasts rank 0's state
/// now, then sets the trainer's data-parallel hooks. `view` is the trainer's
/// checkpoint_view; comm and the trainer must outlive the training.
template <class L, class O>
void attach(training_loop<L, O>& trainer, const checkpoint_view& view, const mpi_communicator& comm,
            attach_options opts = {}) {
    broadcast_state(view, comm);
    if (comm.size() <= 1) return;
    data_parallel_hooks h;
    h.rank = comm.rank();
    h.ranks = comm.size();
    h.sum = [&comm](std::span<float> v) { comm.sum(v); };
    h.sum_doubles = [&comm](std::span<double> v) { comm.sum(v); };
    h.end_of_epoch = [view, &comm, &trainer, opts] {
        if (opts.guard) check_replicas(view, comm, trainer.epoch());
        if (opts.sync_each_epoch) broadcast_state(view, comm);
    };
    trainer.set_data_parallel(std::move(h));
}

template <Checkpointable T>
void attach(T& trainer, const mpi_communicator& comm, attach_options opts = {}) {
    attach(trainer, checkpoint_view_of(trainer), comm, opts);
}

}  // namespace dynsparse::distributed
