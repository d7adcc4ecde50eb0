#include "mofka_py/MpiFabric.hpp"

#include "mofka_py/Error.hpp"
#include "transport/Factory.hpp"
#include "transport/mpi/Backoff.hpp"
#include "transport/mpi/MpiCheck.hpp"
#include "transport/mpi/MpiTransport.hpp"
#include "transport/mpi/Placement.hpp"

#include <algorithm>
#include <filesystem>

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
                m_server = std::make_unique<MpiServer>(m_req, m_rep, m_broker, clients, opts.spindownUs);
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
                                     "mpi://" + std::to_string(servers.size()) + "-servers");
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
            int one = 1, all = 0;
            allreduce(&one, &all, MPI_MIN); // nobody frees the communicators while others still use them
        } catch (...) {
            if (!err) err = std::current_exception();
        }
        releaseComms();
        if (err) std::rethrow_exception(err);
    }

  private:
    /// A polled MPI_Iallreduce: MPICH would spin a core in the blocking one.
    void allreduce(int* in, int* out, MPI_Op op) {
        MPI_Request r;
        check(MPI_Iallreduce(in, out, 1, MPI_INT, op, m_req, &r), "MPI_Iallreduce");
        Backoff backoff;
        for (;;) {
            int flag = 0;
            check(MPI_Test(&r, &flag, MPI_STATUS_IGNORE), "MPI_Test");
            if (flag) return;
            backoff.idle();
        }
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
