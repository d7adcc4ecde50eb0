#include "mofka_py/Error.hpp"

#include <cerrno>
#include <cstring>

namespace mofka_py {

const char* errorCodeName(ErrorCode code) noexcept {
    switch (code) {
    case ErrorCode::Generic: return "Error";
    case ErrorCode::InvalidArgument: return "InvalidArgument";
    case ErrorCode::TopicNotFound: return "TopicNotFound";
    case ErrorCode::TopicExists: return "TopicExists";
    case ErrorCode::Timeout: return "TimeoutError";
    case ErrorCode::Connection: return "ConnectionError";
    case ErrorCode::Auth: return "AuthError";
    case ErrorCode::Corruption: return "CorruptionError";
    case ErrorCode::Closed: return "Closed";
    case ErrorCode::FabricLocked: return "FabricLocked";
    case ErrorCode::NotAFabric: return "NotAFabric";
    case ErrorCode::EventTooLarge: return "EventTooLarge";
    case ErrorCode::BufferFull: return "BufferFull";
    case ErrorCode::GroupActive: return "GroupActive";
    case ErrorCode::OffsetOutOfRange: return "OffsetOutOfRange";
    case ErrorCode::CommitFailed: return "CommitFailed";
    case ErrorCode::Storage: return "StorageError";
    case ErrorCode::OutOfSequence: return "OutOfSequence";
    case ErrorCode::NotLeader: return "NotLeader";
    case ErrorCode::NotEnoughReplicas: return "NotEnoughReplicas";
    }
    return "Error";
}

void throwError(ErrorCode code, const std::string& message, bool withErrno) {
    if (withErrno) {
        int e = errno;
        throw Error(code, message + ": " + std::strerror(e));
    }
    throw Error(code, message);
}

} // namespace mofka_py
