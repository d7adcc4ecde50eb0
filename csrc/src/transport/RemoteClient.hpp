// The requests a client sends as control requests (wire/Control.hpp), for transports that carry
// them to a broker elsewhere (TCP, MPI): a transport derives from RemoteClient, implements
// control() and the streaming calls (produce, fetch, waitTopicChange), and gets the rest.
#pragma once
#include "mofka_py/BrokerClient.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mofka_py {

class RemoteClient : public BrokerClient {
  public:
    void createTopic(const std::string& name, const TopicConfig& config) override;
    std::vector<std::string> listTopics() override;
    TopicInfo describeTopic(const std::string& name) override;
    std::pair<uint64_t, uint64_t> offsets(const std::string& topic, uint32_t partition) override;
    void markComplete(const std::string& topic) override;
    bool isComplete(const std::string& topic) override;
    /// An empty @p memberId gets one chosen here (group-pid-random), so a join resent after a lost
    /// reply is the same member, not a phantom one.
    std::string joinGroup(const std::string& group, const std::string& topic, const std::string& memberId) override;
    void leaveGroup(const std::string& group, const std::string& topic, const std::string& memberId) override;
    Assignment assignment(const std::string& group, const std::string& topic,
                          const MemberHeartbeat& heartbeat) override;
    void releasePartitions(const std::string& group, const std::string& topic, const std::string& memberId,
                           const std::vector<uint32_t>& partitions) override;
    void commit(const std::string& group, const std::string& topic,
                const std::vector<std::pair<uint32_t, uint64_t>>& offsets, const std::string& memberId) override;
    std::optional<uint64_t> committed(const std::string& group, const std::string& topic, uint32_t partition) override;
    std::vector<std::string> groups(const std::string& topic) override;
};

} // namespace mofka_py
