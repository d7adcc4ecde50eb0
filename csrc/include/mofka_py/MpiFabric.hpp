/**
 * @file MpiFabric.hpp
 * @brief A fabric inside an MPI job: some ranks host partitions, every client
 *        rank gets an ordinary mofka_py::Fabric.
 *
 * The only public header that includes <mpi.h>. Placement: every server holds
 * each topic's metadata; partition p of topic t stores its events on server
 * number (p + FNV-1a(t)) mod nservers (of the sorted server ranks), so a topic
 * with more partitions than servers uses them all. The server of partition 0
 * coordinates the topic's consumer groups, commits and completion.
 *
 * @code
 *   mofka_py::MpiFabricOptions opts;
 *   opts.servers = {0};
 *   mofka_py::MpiFabric mf(MPI_COMM_WORLD, opts);   // collective
 *   if (mf.isClient()) {
 *       mofka_py::Fabric fab = mf.fabric();
 *       // ... Producer / Consumer over fab.client() ...
 *   }
 *   mf.close();                                       // collective
 * @endcode
 */
#pragma once
#include "mofka_py/Fabric.hpp"
#include "mofka_py/Types.hpp"

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mofka_py {

/// Settings of an MPI fabric; every rank must pass the same values.
struct MpiFabricOptions {
    std::vector<int> servers{0}; ///< ranks (in the communicator) that host partitions
    bool colocated = false; ///< server ranks are clients too
    std::string storage = "memory://"; ///< "memory://" or "file:///dir" (server r uses dir/rank<r>)
    TopicConfig defaults; ///< settings of topics created without their own
    bool repair = false; ///< servers truncate corrupted logs at open instead of failing
    int64_t requestTimeoutMs = 60000; ///< a request without an answer this long fails with Timeout
    /// After events went through a rank, its pollers keep polling (yielding the core, never
    /// sleeping) this long: low latency in a stream. Past it they sleep up to 250 us between
    /// polls, so an idle rank costs a few percent of a core. 0: sleep as soon as idle.
    int64_t spindownUs = 10000;
};

class MpiFabricImpl;

/**
 * @brief The MPI transport: a duplicated communicator, a broker and progress
 *        thread on server ranks, and an MPI client on client ranks.
 *
 * MPI must be initialised with MPI_THREAD_MULTIPLE (mpi4py does so by
 * default). The application's communicator is duplicated, so its own traffic
 * never mixes with the fabric's.
 */
class MpiFabric {
  public:
    /// Collective over @p comm: duplicate it, start servers, connect clients.
    /// @throws InvalidArgument for bad options or a thread level below MPI_THREAD_MULTIPLE.
    MpiFabric(MPI_Comm comm, const MpiFabricOptions& options);
    /// Calls close() if it was not called (errors are swallowed then).
    ~MpiFabric();
    MpiFabric(const MpiFabric&) = delete;
    MpiFabric& operator=(const MpiFabric&) = delete;

    /// Whether this rank hosts partitions.
    bool isServer() const;
    /// Whether this rank may use fabric().
    bool isClient() const;
    /// Rank of this process in the communicator.
    int rank() const;
    /// The server ranks, sorted.
    const std::vector<int>& servers() const;
    /// The server rank that stores partition @p partition of @p topic (placement, no request made).
    int partitionServer(const std::string& topic, uint32_t partition) const;
    /// The fabric of a client rank; throws InvalidArgument on a server-only rank.
    Fabric fabric() const;
    /// On a server rank, wait up to @p timeoutMs (< 0: forever) until every
    /// client rank has left; true once they all have. Always true on clients.
    bool waitServed(int64_t timeoutMs);
    /// Collective: leave (clients), stop serving once all clients left
    /// (servers), then release the duplicated communicators. Idempotent.
    void close();

  private:
    std::shared_ptr<MpiFabricImpl> m_impl;
};

} // namespace mofka_py
