// Requests and replies of the MPI transport: tags and operations.
//
// Two duplicated communicators keep directions apart: requests (and produce
// payloads) travel on `requests`, replies (and fetch payloads) on `replies`.
// A request carries the tag its reply will use; a payload uses that tag too.
// Payloads travel as MessagePlan.hpp plans them; message bodies are encoded
// with wire/Codec.hpp (Writer, Reader).
#pragma once
#include <cstddef>
#include <cstdint>

namespace mofka_py {
namespace mpi {

constexpr int kRequestTag = 0;
constexpr int kFirstReplyTag = 1;
constexpr int kLastReplyTag = 32000; // MPI guarantees tags up to 32767
/// Fetch replies up to this size carry the stored bytes in the reply message itself.
constexpr size_t kInlineFetchBytes = 16 << 10;
/// Produce payloads travel in messages of at most this size: the server checks each one's CRC
/// as soon as it has landed, while it is still in cache, instead of reading the whole batch
/// again from memory once it is complete.
constexpr size_t kProduceMessageBytes = size_t(1) << 20;

/// Requests: the streaming ones the MPI transport carries its own way (batches sent and received
/// without packing, parked long polls), the transport's own bookkeeping, and every other request
/// as a transport-neutral control request (wire/Control.hpp).
enum class Op : uint8_t {
    Produce = 1,
    Fetch,
    WaitTopicChange,
    WakeTopic, ///< a closing consumer: answer this source's long polls on the topic now
    Bye, ///< a client leaves the fabric
    CancelWait, ///< one-way: answer the parked WaitTopicChange of this source with the tag given now
    Control ///< a control request, the rest of the message as is
};

} // namespace mpi
} // namespace mofka_py
