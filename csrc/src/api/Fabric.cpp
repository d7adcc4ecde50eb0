#include "mofka_py/Fabric.hpp"

#include "mofka_py/Error.hpp"
#include "transport/Factory.hpp"

namespace mofka_py {

Fabric Fabric::connect(const std::string& url, const FabricOptions& options) {
    return Fabric(openFabricClient(url, options));
}

Topic Fabric::createTopic(const std::string& name, const TopicConfig& config) {
    m_client->createTopic(name, config);
    return Topic(m_client, name);
}

Topic Fabric::topic(const std::string& name) {
    m_client->describeTopic(name); // TopicNotFound now rather than at first use
    return Topic(m_client, name);
}

std::vector<std::string> Fabric::topics() { return m_client->listTopics(); }

void Fabric::deleteTopic(const std::string& name, bool force) { m_client->deleteTopic(name, force); }

} // namespace mofka_py
