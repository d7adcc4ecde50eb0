// Requests and replies of the MPI transport, and the MPI helpers both sides use.
//
// Two duplicated communicators keep directions apart: requests (and produce
// payloads) travel on `requests`, replies (and fetch payloads) on `replies`.
// A request carries the tag its reply will use; a payload uses that tag too.
#pragma once
#include "mofka_py/Broker.hpp"
#include "mofka_py/Error.hpp"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace mofka_py {
namespace mpi {

constexpr int kRequestTag = 0;
constexpr int kFirstReplyTag = 1;
constexpr int kLastReplyTag = 32000; // MPI guarantees tags up to 32767

enum class Op : uint8_t {
    CreateTopic = 1, ListTopics, DescribeTopic, Produce, Fetch, WaitTopicChange, Offsets, MarkComplete,
    IsComplete, JoinGroup, LeaveGroup, Assignment, Commit, Committed, Groups, WakeTopic, Bye, ReleasePartitions
};

/// Throw a mofka_py Error if an MPI call failed (the communicators use MPI_ERRORS_RETURN).
inline void check(int rc, const char* what) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    throw Error(ErrorCode::Connection, std::string("MPI transport: ") + what + " failed: " + std::string(msg, size_t(len)));
}

/// Sleeps a little longer each idle round: MPICH would spin a core in a blocking call.
/// While a transfer is under way only yield: MPI moves large messages only
/// inside MPI calls, so sleeping between polls would throttle it.
class Backoff {
  public:
    void idle(bool transferring = false) {
        if (transferring || m_rounds < 64) {
            std::this_thread::yield();
        } else {
            int64_t us = std::min<int64_t>(250, int64_t(5) << std::min(m_rounds - 64, 6));
            std::this_thread::sleep_for(std::chrono::microseconds(us));
        }
        if (!transferring) ++m_rounds;
    }
    void reset() { m_rounds = 0; }

  private:
    int m_rounds = 0;
};

/// Little-endian-as-host encoder (all ranks of a job share the byte order).
class Writer {
  public:
    template <typename T> Writer& put(T v) {
        static_assert(std::is_trivially_copyable<T>::value, "plain values only");
        size_t n = m_buf.size();
        m_buf.resize(n + sizeof(T));
        std::memcpy(m_buf.data() + n, &v, sizeof(T));
        return *this;
    }
    Writer& str(const std::string& s) {
        put<uint32_t>(uint32_t(s.size()));
        m_buf.insert(m_buf.end(), s.begin(), s.end());
        return *this;
    }
    Writer& config(const TopicConfig& c) {
        return put(c.partitions).put(c.segmentBytes).put(c.retentionBytes).put(c.retentionMs)
            .put(uint8_t(c.sync)).put(c.syncIntervalMs).put(c.maxEventBytes);
    }
    std::vector<uint8_t>& buffer() { return m_buf; }

  private:
    std::vector<uint8_t> m_buf;
};

class Reader {
  public:
    Reader(const uint8_t* p, size_t n) : m_p(p), m_end(p + n) {}
    template <typename T> T get() {
        need(sizeof(T));
        T v;
        std::memcpy(&v, m_p, sizeof(T));
        m_p += sizeof(T);
        return v;
    }
    std::string str() {
        uint32_t n = get<uint32_t>();
        need(n);
        std::string s(reinterpret_cast<const char*>(m_p), n);
        m_p += n;
        return s;
    }
    TopicConfig config() {
        TopicConfig c;
        c.partitions = get<uint32_t>();
        c.segmentBytes = get<uint64_t>();
        c.retentionBytes = get<uint64_t>();
        c.retentionMs = get<int64_t>();
        c.sync = SyncPolicy(get<uint8_t>());
        c.syncIntervalMs = get<int64_t>();
        c.maxEventBytes = get<uint64_t>();
        return c;
    }

  private:
    void need(size_t n) {
        if (size_t(m_end - m_p) < n) throw Error(ErrorCode::Connection, "MPI transport: truncated message");
    }
    const uint8_t* m_p;
    const uint8_t* m_end;
};

/// A committed derived datatype over absolute addresses (used with MPI_BOTTOM):
/// scatter/gather without a packing copy.
class AddressList {
  public:
    void add(const void* p, size_t n) {
        if (n == 0) return;
        MPI_Aint a;
        MPI_Get_address(p, &a);
        m_addr.push_back(a);
        m_len.push_back(int(n));
    }
    bool empty() const { return m_addr.empty(); }
    /// Build and commit the type; the caller frees it with MPI_Type_free.
    MPI_Datatype commit() {
        MPI_Datatype t;
        check(MPI_Type_create_hindexed(int(m_addr.size()), m_len.data(), m_addr.data(), MPI_BYTE, &t), "MPI_Type_create_hindexed");
        check(MPI_Type_commit(&t), "MPI_Type_commit");
        return t;
    }

  private:
    std::vector<MPI_Aint> m_addr;
    std::vector<int> m_len;
};

/// Stable hash of a topic name (FNV-1a): which server hosts it.
inline uint32_t topicHash(const std::string& s) {
    uint32_t h = 2166136261u;
    for (unsigned char c : s) { h ^= c; h *= 16777619u; }
    return h;
}

} // namespace mpi
} // namespace mofka_py
