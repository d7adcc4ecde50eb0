// The two halves of the MPI transport: the client (a BrokerClient) and the
// server (a progress thread in front of a Broker).
#pragma once
#include "mofka_py/Broker.hpp"
#include "mofka_py/BrokerClient.hpp"
#include "transport/mpi/Wake.hpp"

#include <mpi.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mofka_py {

/// A client over two duplicated communicators; close() tells every server it left.
/// @p spindownUs: how long its pollers keep yielding (not sleeping) after events went through.
/// @p wake: this rank's wake-up channel (see Wake.hpp), or null.
std::shared_ptr<BrokerClient> makeMpiClient(MPI_Comm requests, MPI_Comm replies, std::vector<int> servers,
                                            int64_t requestTimeoutMs, int64_t spindownUs, std::string url,
                                            std::shared_ptr<mpi::WakeChannel> wake = nullptr);

/**
 * Serves one Broker to the client ranks from a thread of its own: polls for
 * requests with backoff, parks long polls, completes sends in the background.
 * Stops once every client said goodbye.
 */
class MpiServer {
  public:
    /// @p spindownUs: how long the loop keeps yielding (not sleeping) after events went through.
    /// @p wake: this rank's wake-up channel (see Wake.hpp), or null.
    MpiServer(MPI_Comm requests, MPI_Comm replies, std::shared_ptr<Broker> broker, int clients, int64_t spindownUs,
              std::shared_ptr<mpi::WakeChannel> wake = nullptr);
    ~MpiServer();
    /// Wait up to @p timeoutMs (< 0: forever) for every client to leave.
    bool waitDone(int64_t timeoutMs);
    /// Wait until done and join the thread; rethrows an MPI failure of the loop.
    void join();
    /// Stop serving now, whoever is still connected (startup failures).
    void stop();

  private:
    struct State;
    void run();
    std::unique_ptr<State> m_state;
    std::thread m_thread;
};

} // namespace mofka_py
