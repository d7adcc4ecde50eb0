#include "mofka_py/Crc32c.hpp"

#include <array>
#include <cstring>
#include <mutex>

#if defined(__x86_64__) || defined(_M_X64)
#include <nmmintrin.h>
#define MOFKA_PY_X86 1
#endif

namespace mofka_py {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u; // reflected Castagnoli polynomial

struct Tables {
    uint32_t t[8][256];
    Tables() {
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
            t[0][i] = c;
        }
        for (uint32_t i = 0; i < 256; ++i)
            for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
    }
};
const Tables& tables() {
    static const Tables tb;
    return tb;
}

// Raw register update (no pre/post inversion), slicing by 8.
uint32_t rawPortable(uint32_t c, const uint8_t* p, size_t n) {
    const auto& t = tables().t;
    while (n && (reinterpret_cast<uintptr_t>(p) & 7)) { c = (c >> 8) ^ t[0][(c ^ *p++) & 0xff]; --n; }
    while (n >= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        w ^= c;
        c = t[7][w & 0xff] ^ t[6][(w >> 8) & 0xff] ^ t[5][(w >> 16) & 0xff] ^ t[4][(w >> 24) & 0xff]
          ^ t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^ t[1][(w >> 48) & 0xff] ^ t[0][w >> 56];
        p += 8; n -= 8;
    }
    while (n--) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xff];
    return c;
}

#ifdef MOFKA_PY_X86
bool detectHardware() { return __builtin_cpu_supports("sse4.2"); }

uint32_t rawHw1(uint32_t c, const uint8_t* p, size_t n) {
    uint64_t c64 = c;
    while (n && (reinterpret_cast<uintptr_t>(p) & 7)) { c64 = _mm_crc32_u8(uint32_t(c64), *p++); --n; }
    while (n >= 8) { uint64_t w; std::memcpy(&w, p, 8); c64 = _mm_crc32_u64(c64, w); p += 8; n -= 8; }
    while (n--) c64 = _mm_crc32_u8(uint32_t(c64), *p++);
    return uint32_t(c64);
}

// Three independent streams hide the instruction's latency; the partial CRCs
// are joined with a table that applies "append kLane zero bytes" (a linear map).
constexpr size_t kLane = 8192;
struct ShiftTable {
    uint32_t t[4][256];
    ShiftTable() {
        static const uint8_t zeros[kLane] = {};
        for (int k = 0; k < 4; ++k)
            for (uint32_t v = 0; v < 256; ++v) t[k][v] = rawHw1(v << (8 * k), zeros, kLane);
    }
    uint32_t shift(uint32_t c) const {
        return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^ t[3][c >> 24];
    }
};
const ShiftTable& shiftTable() {
    static const ShiftTable st;
    return st;
}

uint32_t rawHw(uint32_t c, const uint8_t* p, size_t n) {
    if (n >= 3 * kLane) {
        const ShiftTable& st = shiftTable();
        while (n >= 3 * kLane) {
            uint64_t a = c, b = 0, d = 0;
            const uint8_t* pa = p;
            const uint8_t* pb = p + kLane;
            const uint8_t* pd = p + 2 * kLane;
            for (size_t i = 0; i < kLane; i += 8) {
                uint64_t wa, wb, wd;
                std::memcpy(&wa, pa + i, 8);
                std::memcpy(&wb, pb + i, 8);
                std::memcpy(&wd, pd + i, 8);
                a = _mm_crc32_u64(a, wa);
                b = _mm_crc32_u64(b, wb);
                d = _mm_crc32_u64(d, wd);
            }
            c = st.shift(st.shift(uint32_t(a)) ^ uint32_t(b)) ^ uint32_t(d);
            p += 3 * kLane;
            n -= 3 * kLane;
        }
    }
    return rawHw1(c, p, n);
}
#else
bool detectHardware() { return false; }
uint32_t rawHw(uint32_t c, const uint8_t* p, size_t n) { return rawPortable(c, p, n); }
#endif

const bool g_hw = detectHardware();

} // namespace

uint32_t crc32cPortable(uint32_t crc, const void* data, size_t size) noexcept {
    return ~rawPortable(~crc, static_cast<const uint8_t*>(data), size);
}

uint32_t crc32c(uint32_t crc, const void* data, size_t size) noexcept {
    auto p = static_cast<const uint8_t*>(data);
    return g_hw ? ~rawHw(~crc, p, size) : ~rawPortable(~crc, p, size);
}

bool crc32cIsHardware() noexcept { return g_hw; }

uint32_t crc32cCopy(uint32_t crc, void* dst, const void* src, size_t size) noexcept {
    constexpr size_t kChunk = 3 * 8192 * 2; // a cache-resident chunk, a multiple of the 3-lane block
    auto d = static_cast<uint8_t*>(dst);
    auto s = static_cast<const uint8_t*>(src);
    while (size) {
        size_t n = size < kChunk ? size : kChunk;
        std::memcpy(d, s, n);
        crc = crc32c(crc, d, n);
        d += n; s += n; size -= n;
    }
    return crc;
}

} // namespace mofka_py
