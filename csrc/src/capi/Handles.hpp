// Handles of the C API: opaque values that are looked up, never dereferenced.
//
// A handle encodes a slot index, the slot's generation and the object's kind. Releasing a
// handle bumps its slot's generation, so a released, forged or wrong-kind handle is refused
// with InvalidArgument instead of being followed into freed memory. Lookups take no lock;
// creating and releasing take one (a free list).
#pragma once
#include "mofka_py/Error.hpp"

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace mofka_py::capi {

/// What a handle refers to (part of the handle value, so kinds cannot be confused).
enum class Kind : uint64_t { Fabric = 1, Topic, Producer, Future, Consumer, Event, MpiFabric };

const char* kindName(Kind kind) noexcept;

/// The process-wide table of live C handles.
class HandleTable {
  public:
    static constexpr uint64_t kChunkBits = 12; // 4096 slots per chunk
    static constexpr uint64_t kMaxChunks = 4096; // 16.7 M live handles
    static constexpr uint64_t kIndexBits = 24;

    /// Register @p object; returns the handle value (never 0).
    uint64_t add(Kind kind, void* object);
    /// The object of a live handle of @p kind; throws InvalidArgument otherwise.
    void* get(uint64_t handle, Kind kind, const char* what) const;
    /// Unregister a live handle of @p kind and return its object; throws InvalidArgument otherwise.
    void* remove(uint64_t handle, Kind kind, const char* what);

    static HandleTable& instance();

  private:
    struct Slot {
        std::atomic<uint64_t> tag{0}; // (generation << 4 | kind) while live; 0 when free
        void* object = nullptr;
        uint32_t generation = 0;
    };
    Slot* slot(uint64_t index) const;
    [[noreturn]] static void refuse(uint64_t handle, Kind kind, const char* what);

    std::atomic<Slot*> m_chunks[kMaxChunks] = {};
    std::mutex m_mutex;
    std::vector<uint64_t> m_free;
    uint64_t m_next = 0;
};

inline HandleTable::Slot* HandleTable::slot(uint64_t index) const {
    uint64_t chunk = index >> kChunkBits;
    if (chunk >= kMaxChunks) return nullptr;
    Slot* base = m_chunks[chunk].load(std::memory_order_acquire);
    return base ? base + (index & ((1u << kChunkBits) - 1)) : nullptr;
}

inline void* HandleTable::get(uint64_t handle, Kind kind, const char* what) const {
    uint64_t index = (handle >> 4) & ((1ull << kIndexBits) - 1);
    uint64_t tag = ((handle >> (4 + kIndexBits)) << 4) | static_cast<uint64_t>(kind);
    const Slot* s = handle ? slot(index) : nullptr;
    if (!s || (handle & 15) != static_cast<uint64_t>(kind) || s->tag.load(std::memory_order_acquire) != tag)
        refuse(handle, kind, what);
    return s->object;
}

} // namespace mofka_py::capi
