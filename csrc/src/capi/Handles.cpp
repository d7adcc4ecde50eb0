#include "capi/Handles.hpp"

namespace mofka_py::capi {

const char* kindName(Kind kind) noexcept {
    switch (kind) {
    case Kind::Fabric: return "fabric";
    case Kind::Topic: return "topic";
    case Kind::Producer: return "producer";
    case Kind::Future: return "future";
    case Kind::Consumer: return "consumer";
    case Kind::Event: return "event";
    case Kind::MpiFabric: return "MPI fabric";
    }
    return "object";
}

HandleTable& HandleTable::instance() {
    // Never destroyed: handles may be released from other libraries' destructors at exit.
    static HandleTable* table = new HandleTable();
    return *table;
}

uint64_t HandleTable::add(Kind kind, void* object) {
    std::lock_guard<std::mutex> lock(m_mutex);
    uint64_t index;
    if (!m_free.empty()) {
        index = m_free.back();
        m_free.pop_back();
    } else {
        index = m_next;
        uint64_t chunk = index >> kChunkBits;
        if (chunk >= kMaxChunks)
            throw Error(ErrorCode::BufferFull, "too many live mofka-py handles (16.7 million); release the futures, "
                                               "events and objects you no longer need");
        if (!m_chunks[chunk].load(std::memory_order_relaxed))
            m_chunks[chunk].store(new Slot[1u << kChunkBits], std::memory_order_release);
        ++m_next;
    }
    Slot* s = slot(index);
    s->object = object;
    s->generation = (s->generation + 1) & 0xFFFFFFFu; // 28 bits, so a handle fits in 56 bits
    if (s->generation == 0) s->generation = 1;
    s->tag.store((uint64_t(s->generation) << 4) | static_cast<uint64_t>(kind), std::memory_order_release);
    return (uint64_t(s->generation) << (4 + kIndexBits)) | (index << 4) | static_cast<uint64_t>(kind);
}

void* HandleTable::remove(uint64_t handle, Kind kind, const char* what) {
    std::lock_guard<std::mutex> lock(m_mutex);
    void* object = get(handle, kind, what);
    uint64_t index = (handle >> 4) & ((1ull << kIndexBits) - 1);
    Slot* s = slot(index);
    s->tag.store(0, std::memory_order_release);
    s->object = nullptr;
    m_free.push_back(index);
    return object;
}

void HandleTable::refuse(uint64_t handle, Kind kind, const char* what) {
    if (!handle)
        throw Error(ErrorCode::InvalidArgument, std::string(what) + " is NULL; pass the " + kindName(kind) +
                                                    " handle that its create/open call gave");
    throw Error(ErrorCode::InvalidArgument, std::string(what) + " is not a live " + kindName(kind) +
                                                " handle (already released, never created, or another kind of "
                                                "handle); pass the one its create/open call gave");
}

} // namespace mofka_py::capi
