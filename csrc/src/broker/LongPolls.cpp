#include "broker/LongPolls.hpp"

namespace mofka_py {

std::optional<PollAnswer> answerPoll(Broker& broker, const PollRequest& q, bool force) {
    PollAnswer a;
    try {
        if (q.replica) {
            a.batches = broker.fetchForReplica(q.topic, q.partition, q.offset, size_t(q.maxBytes));
            a.highWatermark = broker.replicaMarks(q.topic, q.partition).second;
            if (a.batches.empty() && !force) return std::nullopt;
        } else if (q.kind == PollRequest::Kind::Fetch) {
            a.batches = broker.fetch(q.topic, q.partition, q.offset, size_t(q.maxBytes), 0);
            if (a.batches.empty() && !force && !broker.isComplete(q.topic)) return std::nullopt;
        } else {
            a.version = broker.waitTopicChange(q.topic, q.version, 0);
            if (a.version == q.version && !force) return std::nullopt;
        }
    } catch (const Error& e) {
        a = PollAnswer{};
        a.failed = true;
        a.code = e.code();
        a.message = e.what();
    } catch (const std::exception& e) {
        a = PollAnswer{};
        a.failed = true;
        a.message = e.what();
    }
    return a;
}

} // namespace mofka_py
