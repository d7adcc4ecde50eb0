/**
 * @file Codec.hpp
 * @brief Little-endian encoding of request and reply bodies, shared by every
 *        transport: a Writer appends values, a Reader takes them back and
 *        refuses to read past the end (Error(Corruption)).
 */
#pragma once
#include "mofka_py/Error.hpp"

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace mofka_py {

/// Appends little-endian values to a byte buffer.
class Writer {
  public:
    std::vector<uint8_t> buf;
    template <typename T>
    Writer& put(T v) {
        size_t n = buf.size();
        buf.resize(n + sizeof(T));
        std::memcpy(buf.data() + n, &v, sizeof(T));
        return *this;
    }
    Writer& str(const std::string& s) {
        put<uint32_t>(uint32_t(s.size()));
        buf.insert(buf.end(), s.begin(), s.end());
        return *this;
    }
    /// A u32 count, then the strings.
    Writer& strs(const std::vector<std::string>& v) {
        put<uint32_t>(uint32_t(v.size()));
        for (auto& s : v) str(s);
        return *this;
    }
    /// A u32 count, then the values.
    Writer& u32s(const std::vector<uint32_t>& v) {
        put<uint32_t>(uint32_t(v.size()));
        for (uint32_t x : v) put<uint32_t>(x);
        return *this;
    }
    /// A u32 count, then (u32 partition, u64 offset) pairs.
    Writer& offsets(const std::vector<std::pair<uint32_t, uint64_t>>& v) {
        put<uint32_t>(uint32_t(v.size()));
        for (auto& po : v) put<uint32_t>(po.first).put<uint64_t>(po.second);
        return *this;
    }
    Writer& bytes(const void* p, size_t n) {
        auto b = static_cast<const uint8_t*>(p);
        buf.insert(buf.end(), b, b + n);
        return *this;
    }
};

/// Reads little-endian values, refusing to read past the end.
class Reader {
  public:
    Reader(const uint8_t* p, size_t n) : m_p(p), m_n(n) {}
    template <typename T>
    T get() {
        need(sizeof(T));
        T v;
        std::memcpy(&v, m_p, sizeof(T));
        m_p += sizeof(T);
        m_n -= sizeof(T);
        return v;
    }
    std::string str(size_t maxLen = 1 << 20) {
        uint32_t n = get<uint32_t>();
        if (n > maxLen) throw Error(ErrorCode::Corruption, "malformed message: string too long");
        need(n);
        std::string s(reinterpret_cast<const char*>(m_p), n);
        m_p += n;
        m_n -= n;
        return s;
    }
    std::vector<std::string> strs() {
        std::vector<std::string> v(count(4));
        for (auto& s : v) s = str();
        return v;
    }
    std::vector<uint32_t> u32s() {
        std::vector<uint32_t> v(count(4));
        for (auto& x : v) x = get<uint32_t>();
        return v;
    }
    std::vector<std::pair<uint32_t, uint64_t>> offsets() {
        std::vector<std::pair<uint32_t, uint64_t>> v(count(12));
        for (auto& po : v) {
            po.first = get<uint32_t>();
            po.second = get<uint64_t>();
        }
        return v;
    }
    /// A u32 element count, checked against the bytes left (each element takes @p minSize or more).
    uint32_t count(size_t minSize) {
        uint32_t n = get<uint32_t>();
        if (n > m_n / minSize) throw Error(ErrorCode::Corruption, "malformed message: list too long");
        return n;
    }
    const uint8_t* take(size_t n) {
        need(n);
        const uint8_t* p = m_p;
        m_p += n;
        m_n -= n;
        return p;
    }
    size_t remaining() const { return m_n; }
    void end() const {
        if (m_n) throw Error(ErrorCode::Corruption, "malformed message: unexpected trailing bytes");
    }

  private:
    void need(size_t n) const {
        if (n > m_n) throw Error(ErrorCode::Corruption, "malformed message: truncated body");
    }
    const uint8_t* m_p;
    size_t m_n;
};

} // namespace mofka_py
