#include "mofka_py/MpiFabric.hpp"

#include "mofka_py/Error.hpp"
#include "transport/Factory.hpp"
#include "transport/mpi/Backoff.hpp"
#include "transport/mpi/MpiCheck.hpp"
#include "transport/mpi/MpiTransport.hpp"
#include "transport/mpi/Placement.hpp"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <random>

#include <unistd.h>

namespace mofka_py {

using namespace mpi;

class MpiFabricImpl {
  public:
    MpiFabricImpl(MPI_Comm comm, const MpiFabricOptions& opts) {
        int initialized = 0, finalized = 0;
        MPI_Initialized(&initialized);
        MPI_Finalized(&finalized);
        if (!initialized || finalized)
            throw Error(ErrorCode::InvalidArgument,
                        "MPI is not initialised: import mpi4py (from mpi4py import MPI) or call "
                        "MPI_Init_thread(..., MPI_THREAD_MULTIPLE, ...) before creating an MPI fabric");
        int level = 0;
        MPI_Query_thread(&level);
        if (level < MPI_THREAD_MULTIPLE)
            throw Error(ErrorCode::InvalidArgument,
                        "the MPI fabric needs MPI_THREAD_MULTIPLE (its progress and producer threads call MPI); "
                        "initialise MPI with MPI_Init_thread(MPI_THREAD_MULTIPLE) or leave mpi4py.rc.thread_level "
                        "at its default 'multiple'");
        MPI_Comm_rank(comm, &m_rank);
        MPI_Comm_size(comm, &m_size);
        std::vector<int> servers = opts.servers;
        std::sort(servers.begin(), servers.end());
        servers.erase(std::unique(servers.begin(), servers.end()), servers.end());
        if (servers.empty()) throw Error(ErrorCode::InvalidArgument, "an MPI fabric needs at least one server rank");
        if (opts.spindownUs < 0 || opts.spindownUs > int64_t(3600) * 1000000)
            throw Error(ErrorCode::InvalidArgument,
                        "spindown must be between 0 and one hour (got " + std::to_string(opts.spindownUs) + " us)");
        if (servers.front() < 0 || servers.back() >= m_size)
            throw Error(ErrorCode::InvalidArgument, "server ranks must be between 0 and " + std::to_string(m_size - 1) +
                                                        " (the communicator has " + std::to_string(m_size) + " ranks)");
        int clients = opts.colocated ? m_size : m_size - int(servers.size());
        if (clients == 0)
            throw Error(ErrorCode::InvalidArgument,
                        "every rank is a server, so no rank could use the fabric; use fewer servers or colocated=True");
        m_servers = servers;
        m_isServer = std::binary_search(servers.begin(), servers.end(), m_rank);
        m_isClient = opts.colocated || !m_isServer;

        check(MPI_Comm_dup(comm, &m_req), "MPI_Comm_dup");
        check(MPI_Comm_dup(comm, &m_rep), "MPI_Comm_dup");
        MPI_Comm_set_errhandler(m_req, MPI_ERRORS_RETURN);
        MPI_Comm_set_errhandler(m_rep, MPI_ERRORS_RETURN);
        m_wake = makeWakeChannel();

        // Start the servers, then agree that every rank succeeded before anyone sends.
        std::string failure;
        ErrorCode failureCode = ErrorCode::Generic;
        if (m_isServer) {
            try {
                FabricUrl url = parseFabricUrl(opts.storage);
                std::string directory;
                if (url.scheme == "file") {
                    std::filesystem::path dir = std::filesystem::path(url.path) / ("rank" + std::to_string(m_rank));
                    std::filesystem::create_directories(dir);
                    directory = dir.string();
                }
                m_broker = std::make_shared<Broker>(hostedBrokerOptions(opts.defaults, opts.repair, directory));
                m_server = std::make_unique<MpiServer>(m_req, m_rep, m_broker, clients, opts.spindownUs, m_wake);
            } catch (const Error& e) {
                failure = e.what();
                failureCode = e.code();
            } catch (const std::exception& e) {
                failure = e.what();
            }
        }
        int ok = failure.empty() ? 1 : 0, allOk = 0;
        allreduce(&ok, &allOk, MPI_MIN);
        if (!allOk) {
            // Servers that did start will never see their clients.
            if (m_server) m_server->stop();
            m_server.reset();
            m_broker.reset();
            m_closed = true;
            releaseComms();
            if (!failure.empty())
                throw Error(failureCode, "MPI fabric server rank " + std::to_string(m_rank) + ": " + failure);
            throw Error(ErrorCode::Connection,
                        "an MPI fabric server rank failed to start (see its error); no fabric was created");
        }
        if (m_isClient)
            m_client = makeMpiClient(m_req, m_rep, servers, opts.requestTimeoutMs, opts.spindownUs,
                                     "mpi://" + std::to_string(servers.size()) + "-servers", m_wake);
    }

    ~MpiFabricImpl() {
        try {
            close();
        } catch (...) {}
    }

    bool isServer() const { return m_isServer; }
    bool isClient() const { return m_isClient; }
    int rank() const { return m_rank; }
    const std::vector<int>& servers() const { return m_servers; }
    int partitionServer(const std::string& topic, uint32_t partition) const {
        return m_servers[partitionServerIndex(topic, partition, m_servers.size())];
    }

    Fabric fabric() const {
        if (!m_client)
            throw Error(ErrorCode::InvalidArgument,
                        "rank " + std::to_string(m_rank) + " is a server only; its fabric is used by the other ranks");
        return Fabric(m_client);
    }

    bool waitServed(int64_t timeoutMs) { return m_server ? m_server->waitDone(timeoutMs) : true; }

    void close() {
        if (m_closed) return;
        m_closed = true;
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (finalized) return; // too late for MPI; the process is ending
        std::exception_ptr err;
        if (m_client) {
            try {
                m_client->close();
            } catch (...) {
                err = std::current_exception();
            }
        }
        if (m_server) {
            try {
                m_server->join();
            } catch (...) {
                if (!err) err = std::current_exception();
            }
            m_server.reset();
        }
        if (m_broker) {
            try {
                m_broker->close();
            } catch (...) {
                if (!err) err = std::current_exception();
            }
        }
        try {
            barrier(); // nobody frees the communicators while others still use them
        } catch (...) {
            if (!err) err = std::current_exception();
        }
        releaseComms();
        if (err) std::rethrow_exception(err);
    }

  private:
    /// Wait for a collective by polling: MPICH would spin a core in the blocking one.
    static void complete(MPI_Request& r) {
        Backoff backoff;
        for (;;) {
            int flag = 0;
            check(MPI_Test(&r, &flag, MPI_STATUS_IGNORE), "MPI_Test");
            if (flag) return;
            backoff.idle();
        }
    }

    void allreduce(int* in, int* out, MPI_Op op) {
        MPI_Request r;
        check(MPI_Iallreduce(in, out, 1, MPI_INT, op, m_req, &r), "MPI_Iallreduce");
        complete(r);
    }

    void barrier() {
        MPI_Request r;
        check(MPI_Ibarrier(m_req, &r), "MPI_Ibarrier");
        complete(r);
    }

    /// This rank's wake-up socket, named after a token drawn by rank 0 (two fabrics of one job, or
    /// two jobs on a node, never share names); the ranks on this node are those with the same
    /// processor name. MOFKA_PY_MPI_WAKE=0 turns wake-ups off (pollers sleep their backoff).
    std::shared_ptr<WakeChannel> makeWakeChannel() {
        const char* env = std::getenv("MOFKA_PY_MPI_WAKE");
        int on = env && std::string(env) == "0" ? 0 : 1, allOn = 0;
        allreduce(&on, &allOn, MPI_MIN); // every rank takes the same path
        if (!allOn) return nullptr;
        uint64_t token = 0;
        if (m_rank == 0) token = (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}() ^ uint64_t(getpid());
        MPI_Request r;
        check(MPI_Ibcast(&token, 1, MPI_UINT64_T, 0, m_req, &r), "MPI_Ibcast");
        complete(r);
        char name[MPI_MAX_PROCESSOR_NAME] = {};
        int len = 0;
        MPI_Get_processor_name(name, &len);
        uint64_t host = std::hash<std::string>()(std::string(name, size_t(len)));
        std::vector<uint64_t> hosts(static_cast<size_t>(m_size));
        check(MPI_Iallgather(&host, 1, MPI_UINT64_T, hosts.data(), 1, MPI_UINT64_T, m_req, &r), "MPI_Iallgather");
        complete(r);
        std::vector<bool> local(static_cast<size_t>(m_size));
        for (int i = 0; i < m_size; ++i) local[size_t(i)] = hosts[size_t(i)] == host;
        auto channel = std::make_shared<WakeChannel>(token, m_rank, std::move(local));
        // Every rank's page exists before the others map it, and is unlinked once they have.
        // A rank whose socket or page could not be made sleeps its backoff and is never woken.
        barrier();
        channel->openPeers();
        barrier();
        channel->unlinkOwn();
        return channel;
    }

    void releaseComms() {
        if (m_req != MPI_COMM_NULL) MPI_Comm_free(&m_req);
        if (m_rep != MPI_COMM_NULL) MPI_Comm_free(&m_rep);
    }

    int m_rank = 0, m_size = 0;
    std::vector<int> m_servers;
    bool m_isServer = false, m_isClient = false, m_closed = false;
    MPI_Comm m_req = MPI_COMM_NULL, m_rep = MPI_COMM_NULL;
    std::shared_ptr<Broker> m_broker;
    std::unique_ptr<MpiServer> m_server;
    std::shared_ptr<BrokerClient> m_client;
    std::shared_ptr<WakeChannel> m_wake; ///< this rank's wake-ups (null when turned off)
};

MpiFabric::MpiFabric(MPI_Comm comm, const MpiFabricOptions& options)
: m_impl(std::make_shared<MpiFabricImpl>(comm, options)) {}
MpiFabric::~MpiFabric() = default;
bool MpiFabric::isServer() const { return m_impl->isServer(); }
bool MpiFabric::isClient() const { return m_impl->isClient(); }
int MpiFabric::rank() const { return m_impl->rank(); }
const std::vector<int>& MpiFabric::servers() const { return m_impl->servers(); }
int MpiFabric::partitionServer(const std::string& topic, uint32_t partition) const {
    return m_impl->partitionServer(topic, partition);
}
Fabric MpiFabric::fabric() const { return m_impl->fabric(); }
bool MpiFabric::waitServed(int64_t timeoutMs) { return m_impl->waitServed(timeoutMs); }
void MpiFabric::close() { m_impl->close(); }

} // namespace mofka_py
