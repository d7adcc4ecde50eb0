/**
 * @file Error.hpp
 * @brief The one error type of mofka-py, with a code that maps onto the
 *        Python hierarchy (mofka_py.Error and its subclasses).
 */
#pragma once
#include <stdexcept>
#include <string>

namespace mofka_py {

/// What went wrong; each code is a Python subclass of mofka_py.Error.
enum class ErrorCode : int {
    Generic = 0,
    InvalidArgument,
    TopicNotFound,
    TopicExists,
    Timeout,
    Connection,
    Auth,
    Corruption,
    Closed,
    FabricLocked,
    NotAFabric,
    EventTooLarge,
    BufferFull,
    GroupActive, ///< an admin change refused while a group has live members
    OffsetOutOfRange, ///< a consumer's position was deleted by retention before it read it
    CommitFailed, ///< a commit by a member that no longer owns the partition (fenced)
    Storage, ///< the storage refused a write (disk full, I/O error); names the path and free space
    OutOfSequence, ///< a producer's batch follows one of its batches that was not stored (a gap)
    NotLeader, ///< a replicated partition's request reached a node that does not lead it (now)
    NotEnoughReplicas, ///< fewer in-sync replicas than the topic's min_insync: writes refused
};

/// The highest code in use (a peer's reply with a higher one is treated as Generic).
constexpr ErrorCode kLastErrorCode = ErrorCode::NotEnoughReplicas;

/// Human-readable name of an error code (e.g. "InvalidArgument").
const char* errorCodeName(ErrorCode code) noexcept;

/**
 * @brief Exception thrown by every public mofka-py call.
 *
 * The message says what was wrong and what to do about it.
 */
class Error : public std::runtime_error {
  public:
    /// Build an error with a code and a message for the user.
    Error(ErrorCode code, const std::string& message) : std::runtime_error(message), m_code(code) {}

    /// The error's category.
    ErrorCode code() const noexcept { return m_code; }

  private:
    ErrorCode m_code;
};

/// Throw an Error of the given code; errno text is appended when @p withErrno.
[[noreturn]] void throwError(ErrorCode code, const std::string& message, bool withErrno = false);

} // namespace mofka_py
