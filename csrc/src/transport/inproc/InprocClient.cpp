#include "transport/inproc/InprocClient.hpp"

#include "mofka_py/Error.hpp"

#include "broker/ControlHandler.hpp"

namespace mofka_py {
namespace {

/// Calls the broker directly: no copy, no serialisation.
class InprocClient final : public BrokerClient {
  public:
    InprocClient(std::shared_ptr<Broker> b, std::string url) : m_broker(std::move(b)), m_url(std::move(url)) {}
    void createTopic(const std::string& n, const TopicConfig& c) override { m_broker->createTopic(n, c); }
    std::vector<std::string> listTopics() override { return m_broker->listTopics(); }
    std::shared_ptr<Broker> localBroker() const override { return m_broker; }
    TopicInfo describeTopic(const std::string& n) override { return m_broker->describeTopic(n); }
    AppendResult produce(const std::string& t, uint32_t p, SealedBatch& b) override {
        return m_broker->produce(t, p, b);
    }
    std::vector<StoredBatch> fetch(const std::string& t, uint32_t p, uint64_t o, size_t m, int64_t to) override {
        return m_broker->fetch(t, p, o, m, to);
    }
    uint64_t waitTopicChange(const std::string& t, uint64_t v, int64_t to) override {
        return m_broker->waitTopicChange(t, v, to);
    }
    void wakeTopic(const std::string& t) override { m_broker->wakeTopic(t); }
    std::pair<uint64_t, uint64_t> offsets(const std::string& t, uint32_t p) override { return m_broker->offsets(t, p); }
    void markComplete(const std::string& t) override { m_broker->markComplete(t); }
    bool isComplete(const std::string& t) override { return m_broker->isComplete(t); }
    std::string joinGroup(const std::string& g, const std::string& t, const std::string& m) override {
        return m_broker->joinGroup(g, t, m);
    }
    void leaveGroup(const std::string& g, const std::string& t, const std::string& m) override {
        m_broker->leaveGroup(g, t, m);
    }
    Assignment assignment(const std::string& g, const std::string& t, const MemberHeartbeat& h) override {
        return m_broker->assignment(g, t, h);
    }
    void releasePartitions(const std::string& g, const std::string& t, const std::string& m,
                           const std::vector<uint32_t>& p) override {
        m_broker->releasePartitions(g, t, m, p);
    }
    void commit(const std::string& g, const std::string& t, const std::vector<std::pair<uint32_t, uint64_t>>& o,
                const std::string& m) override {
        m_broker->commit(g, t, o, m);
    }
    /// Through the same decoder as the networked transports (control requests are rare).
    std::vector<uint8_t> control(const ControlRoute&, const std::vector<uint8_t>& request) override {
        return handleControl(*m_broker, request.data(), request.size()).reply;
    }
    std::optional<uint64_t> committed(const std::string& g, const std::string& t, uint32_t p) override {
        return m_broker->committed(g, t, p);
    }
    std::vector<std::string> groups(const std::string& t) override { return m_broker->groups(t); }
    void close() override { m_broker->close(); }
    std::string url() const override { return m_url; }

  private:
    std::shared_ptr<Broker> m_broker;
    std::string m_url;
};

} // namespace

std::shared_ptr<BrokerClient> makeInprocClient(std::shared_ptr<Broker> broker, std::string url) {
    return std::make_shared<InprocClient>(std::move(broker), std::move(url));
}

} // namespace mofka_py
