/**
 * @file Fabric.hpp
 * @brief Entry point of the C++ API: open a fabric by URL, then topics, producers and
 *        consumers. The handles are small values sharing their implementation.
 *
 * @code
 *   #include <mofka_py/Fabric.hpp>
 *
 *   mofka_py::Fabric fab = mofka_py::Fabric::connect("memory://");
 *   mofka_py::TopicConfig cfg;
 *   cfg.partitions = 4;
 *   mofka_py::Topic topic = fab.createTopic("frames", cfg);
 *   mofka_py::Producer prod = topic.producer();
 *   const char meta[] = "{\"frame\": 1}";
 *   prod.push(meta, sizeof(meta) - 1, nullptr, 0, -1, nullptr, 0, true).wait(-1);
 *   prod.close();
 *   topic.markComplete();
 *   mofka_py::ConsumerOptions co;
 *   co.start = mofka_py::StartPosition::Earliest;
 *   mofka_py::Consumer cons = topic.consumer(co);
 *   while (auto ev = cons.pull(1000)) { (void)ev->metadata; }
 *   cons.close();
 *   fab.close();
 * @endcode
 */
#pragma once
#include "mofka_py/BrokerClient.hpp"
#include "mofka_py/Consumer.hpp"
#include "mofka_py/Group.hpp"
#include "mofka_py/Producer.hpp"
#include "mofka_py/Types.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mofka_py {

/// A parsed fabric URL.
struct FabricUrl {
    std::string scheme; ///< "memory", "file" or "tcp"
    std::string path; ///< directory for file://
    std::string host; ///< tcp://host:port
    uint16_t port = 0;
    /// tcp://host1:port1,host2:port2,...: the nodes of a cluster (the first also in host/port).
    std::vector<std::pair<std::string, uint16_t>> nodes;
};

/// Parse @p url; throws InvalidArgument with the accepted forms.
FabricUrl parseFabricUrl(const std::string& url);

/// How to open a fabric (the Python keyword arguments of mofka_py.connect, one to one).
struct FabricOptions {
    /// Embedded fabrics: settings of topics created without their own (setFields ignored).
    TopicConfig defaults;
    /// Embedded fabrics: truncate corrupted logs at open instead of failing.
    bool repair = false;
    /// tcp://: the shared secret (empty: none; only a loopback service accepts that).
    std::string token;
    /// tcp://: connecting and logging in, at most this long.
    int64_t connectTimeoutMs = 5000;
    /// tcp://: a request without a reply this long fails with Timeout.
    int64_t requestTimeoutMs = 30000;
    /// tcp://: a lost connection is retried this long before requests fail.
    int64_t reconnectTimeoutMs = 300000;
};

class Topic;

/**
 * @brief A connection to a fabric: embedded (memory://, file:///path) or a service (tcp://).
 */
class Fabric {
  public:
    /// Open a fabric; a file:// directory is created if missing (and locked: one owner).
    static Fabric connect(const std::string& url, const FabricOptions& options = {});
    /// Wrap an existing client (used by the MPI transport).
    explicit Fabric(std::shared_ptr<BrokerClient> client) : m_client(std::move(client)) {}

    /// Create a topic; throws TopicExists or InvalidArgument (writing nothing then).
    Topic createTopic(const std::string& name, const TopicConfig& config = {});
    /// Open an existing topic; throws TopicNotFound.
    Topic topic(const std::string& name);
    /// Names of all topics, sorted (system topics, starting with "__", included).
    std::vector<std::string> topics();
    /// Delete a topic, its events and its groups' offsets (see Topic and Broker::deleteTopic).
    void deleteTopic(const std::string& name, bool force = false);
    /// The URL this fabric was opened with.
    std::string url() const { return m_client->url(); }
    /// Close the fabric (for embedded ones, the broker and its files).
    void close() { m_client->close(); }
    /// The transport underneath (for tools and transports; not needed by applications).
    const std::shared_ptr<BrokerClient>& client() const { return m_client; }

  private:
    std::shared_ptr<BrokerClient> m_client;
};

/**
 * @brief A named, partitioned event stream of a fabric.
 */
class Topic {
  public:
    Topic(std::shared_ptr<BrokerClient> client, std::string name)
    : m_client(std::move(client)), m_name(std::move(name)) {}

    /// The topic's name.
    const std::string& name() const { return m_name; }
    /// Settings, completion flag and per-partition offsets.
    TopicInfo describe() const { return m_client->describeTopic(m_name); }
    /// Number of partitions.
    uint32_t partitions() const { return describe().config.partitions; }
    /// A batching producer of this topic.
    Producer producer(const ProducerOptions& options = {}) const { return Producer(m_client, m_name, options); }
    /// A consumer of this topic (a group member when options.group is set).
    Consumer consumer(const ConsumerOptions& options = {}) const { return Consumer(m_client, m_name, options); }
    /// Declare the topic finished: consumers stop after its last event; pushes are refused.
    void markComplete() const { m_client->markComplete(m_name); }
    /// Whether markComplete() was called.
    bool complete() const { return m_client->isComplete(m_name); }
    /// Drop every stored event; offsets go on from where they were. Returns how many.
    uint64_t purge() const { return m_client->purgeTopic(m_name); }
    /// Change retention (the TopicField bits of @p changes say which fields).
    void alter(const TopicConfig& changes) const { m_client->alterTopic(m_name, changes); }
    /// A consumer group's members, committed offsets and skipped counts on this topic.
    GroupState describeGroup(const std::string& group) const { return m_client->describeGroup(group, m_name); }
    /// Set a group's committed offsets; refused (GroupActive) while it has live members.
    void resetGroup(const std::string& group, const std::vector<std::pair<uint32_t, uint64_t>>& offsets) const {
        m_client->resetGroup(group, m_name, offsets);
    }

  private:
    std::shared_ptr<BrokerClient> m_client;
    std::string m_name;
};

} // namespace mofka_py
