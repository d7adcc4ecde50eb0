#include "wire/Poll.hpp"

namespace mofka_py {

void writePoll(Writer& w, const PollRequest& q) {
    w.str(q.topic);
    if (q.kind == PollRequest::Kind::Fetch)
        w.put<uint32_t>(q.partition).put<uint64_t>(q.offset).put<uint64_t>(q.maxBytes);
    else
        w.put<uint64_t>(q.version);
    w.put<int64_t>(q.timeoutMs);
}

PollRequest readPoll(Reader& r, PollRequest::Kind kind) {
    PollRequest q;
    q.kind = kind;
    q.topic = r.str();
    if (kind == PollRequest::Kind::Fetch) {
        q.partition = r.get<uint32_t>();
        q.offset = r.get<uint64_t>();
        q.maxBytes = r.get<uint64_t>();
    } else {
        q.version = r.get<uint64_t>();
    }
    q.timeoutMs = r.get<int64_t>();
    return q;
}

} // namespace mofka_py
