// Long polls held at the server: a fetch that found no data, a wait that saw no topic change.
// One registry for every transport: it decides when a parked request can be answered and with
// what (answerPoll), keeps the parked ones with their deadlines, and hands each answer to the
// transport's reply function, which only moves bytes. Single-threaded: a server's progress loop
// owns its registry.
#pragma once
#include "mofka_py/Broker.hpp"
#include "mofka_py/Error.hpp"
#include "wire/Poll.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mofka_py {

/// What a poll is answered with: the batches (a fetch), the topic version (a wait) or an error.
struct PollAnswer {
    std::vector<StoredBatch> batches;
    uint64_t version = 0;
    uint64_t highWatermark = 0; ///< a replica's fetch: the leader's high watermark
    bool failed = false;
    ErrorCode code = ErrorCode::Generic;
    std::string message;
};

/**
 * @brief Answer @p q from @p broker if it can be answered now, or at once with whatever there is
 *        when @p force (the deadline passed, the client went away, the server stops).
 *
 * A fetch can be answered once its partition has data at the offset or the topic is complete; a
 * wait once the topic's version differs from the one the client saw. A broker error (unknown
 * topic, offset out of range...) is an answer too.
 */
std::optional<PollAnswer> answerPoll(Broker& broker, const PollRequest& q, bool force);

/// Milliseconds on the steady clock, the registry's time base.
inline int64_t steadyMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

/**
 * @brief The parked long polls of one server, keyed by @p Who (the transport's way to address a
 *        reply: a connection and request id for TCP, a rank and tag for MPI).
 *
 * Every answering call takes a reply function `void(const Who&, const PollRequest&, PollAnswer&)`
 * that sends the answer; an answered request leaves the registry before its reply is sent.
 */
template <typename Who>
class ParkedPolls {
  public:
    /// Answer @p q now if it can be (or its timeout is 0), else park it until its timeout; true if answered now.
    template <typename Reply>
    bool submit(Broker& broker, Who who, PollRequest q, Reply&& reply) {
        std::optional<PollAnswer> a = answerPoll(broker, q, q.timeoutMs <= 0);
        if (a) {
            reply(who, q, *a);
            return true;
        }
        int64_t deadline = steadyMs() + q.timeoutMs;
        m_entries.push_back({std::move(who), std::move(q), deadline});
        return false;
    }

    /// Answer, at once and with whatever there is, the parked requests @p match selects.
    template <typename Match, typename Reply>
    size_t answerNow(Broker& broker, Match&& match, Reply&& reply) {
        return sweep(broker, [&](const Entry& e) { return match(e.who, e.req) ? Due::Force : Due::No; }, reply);
    }

    /// Answer the requests that can be answered now and force those whose deadline has passed.
    template <typename Reply>
    size_t poll(Broker& broker, int64_t nowMs, Reply&& reply) {
        return sweep(broker, [&](const Entry& e) { return e.deadline <= nowMs ? Due::Force : Due::Try; }, reply);
    }

    /// Force only the requests whose deadline has passed (for a server told of every change).
    template <typename Reply>
    size_t expire(Broker& broker, int64_t nowMs, Reply&& reply) {
        return sweep(broker, [&](const Entry& e) { return e.deadline <= nowMs ? Due::Force : Due::No; }, reply);
    }

    /// Forget, unanswered, the parked requests @p match selects (their client is gone).
    template <typename Match>
    size_t drop(Match&& match) {
        size_t n = 0;
        for (auto it = m_entries.begin(); it != m_entries.end();) {
            if (match(it->who, it->req)) {
                it = m_entries.erase(it);
                ++n;
            } else {
                ++it;
            }
        }
        return n;
    }

    /// The earliest deadline, or @p cap if none is earlier.
    int64_t nextDeadline(int64_t cap) const {
        for (const Entry& e : m_entries) cap = std::min(cap, e.deadline);
        return cap;
    }

    bool empty() const { return m_entries.empty(); }
    size_t size() const { return m_entries.size(); }

  private:
    enum class Due { No, Try, Force };
    struct Entry {
        Who who;
        PollRequest req;
        int64_t deadline;
    };

    template <typename Decide, typename Reply>
    size_t sweep(Broker& broker, Decide&& decide, Reply& reply) {
        // Take the answered entries out first: a reply function may park or answer others.
        std::vector<std::pair<Entry, PollAnswer>> answered;
        for (auto it = m_entries.begin(); it != m_entries.end();) {
            Due d = decide(*it);
            std::optional<PollAnswer> a;
            if (d != Due::No) a = answerPoll(broker, it->req, d == Due::Force);
            if (a) {
                answered.emplace_back(std::move(*it), std::move(*a));
                it = m_entries.erase(it);
            } else {
                ++it;
            }
        }
        for (auto& [e, a] : answered) reply(e.who, e.req, a);
        return answered.size();
    }

    std::list<Entry> m_entries;
};

} // namespace mofka_py
