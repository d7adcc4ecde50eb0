// Transport-neutral encodings of the values requests and replies carry (topic settings and
// descriptions, group assignments and heartbeats), shared by every transport.
#pragma once
#include "mofka_py/Group.hpp"
#include "mofka_py/Types.hpp"
#include "wire/Codec.hpp"

namespace mofka_py {

/// A group member's assignment on the wire.
void writeAssignment(Writer& w, const Assignment& a);
Assignment readAssignment(Reader& r);
/// A member's heartbeat (id, session timeout, owned partitions with positions) on the wire.
void writeHeartbeat(Writer& w, const MemberHeartbeat& h);
MemberHeartbeat readHeartbeat(Reader& r);

/// Topic settings and info on the wire.
void writeTopicConfig(Writer& w, const TopicConfig& c);
TopicConfig readTopicConfig(Reader& r);
void writeTopicInfo(Writer& w, const TopicInfo& i);
TopicInfo readTopicInfo(Reader& r);

} // namespace mofka_py
