#include "mofka_py/Crc32c.hpp"

#include <array>
#include <cstring>
#include <mutex>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#include <nmmintrin.h>
#define MOFKA_PY_X86 1
#if defined(__GNUC__) && (__GNUC__ >= 9 || defined(__clang__))
#define MOFKA_PY_FOLD512 1 // AVX-512 + VPCLMULQDQ folding, chosen at run time
#endif
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
    while (n && (reinterpret_cast<uintptr_t>(p) & 7)) {
        c = (c >> 8) ^ t[0][(c ^ *p++) & 0xff];
        --n;
    }
    while (n >= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        w ^= c;
        c = t[7][w & 0xff] ^ t[6][(w >> 8) & 0xff] ^ t[5][(w >> 16) & 0xff] ^ t[4][(w >> 24) & 0xff] ^
            t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^ t[1][(w >> 48) & 0xff] ^ t[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xff];
    return c;
}

#ifdef MOFKA_PY_X86
bool detectHardware() { return __builtin_cpu_supports("sse4.2"); }

uint32_t rawHw1(uint32_t c, const uint8_t* p, size_t n) {
    uint64_t c64 = c;
    while (n && (reinterpret_cast<uintptr_t>(p) & 7)) {
        c64 = _mm_crc32_u8(uint32_t(c64), *p++);
        --n;
    }
    while (n >= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        c64 = _mm_crc32_u64(c64, w);
        p += 8;
        n -= 8;
    }
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

/// The three streams over bytes [@p from, @p to) of the lanes at @p p, p + kLane and p + 2 kLane.
inline void crc3(uint64_t& a, uint64_t& b, uint64_t& d, const uint8_t* p, size_t from, size_t to) {
    for (size_t i = from; i < to; i += 8) {
        uint64_t wa, wb, wd;
        std::memcpy(&wa, p + i, 8);
        std::memcpy(&wb, p + kLane + i, 8);
        std::memcpy(&wd, p + 2 * kLane + i, 8);
        a = _mm_crc32_u64(a, wa);
        b = _mm_crc32_u64(b, wb);
        d = _mm_crc32_u64(d, wd);
    }
}

uint32_t rawHw(uint32_t c, const uint8_t* p, size_t n) {
    if (n >= 3 * kLane) {
        const ShiftTable& st = shiftTable();
        while (n >= 3 * kLane) {
            uint64_t a = c, b = 0, d = 0;
            crc3(a, b, d, p, 0, kLane);
            c = st.shift(st.shift(uint32_t(a)) ^ uint32_t(b)) ^ uint32_t(d);
            p += 3 * kLane;
            n -= 3 * kLane;
        }
    }
    return rawHw1(c, p, n);
}
#ifdef MOFKA_PY_FOLD512
// Folding with carry-less multiplication. A 16-byte chunk A (two 64-bit halves, reflected bit
// order as loaded) is moved D bytes further down the message by
//   fold(A) = clmul(A.lo, x^(8D+31) mod P) ^ clmul(A.hi, x^(8D-33) mod P)   (constants bit-reflected)
// and XORed into the chunk found there: the message keeps its CRC and gets 16 bytes shorter.
// Four 64-byte registers walk the input 256 bytes at a time (D = 256), then fold into one
// 16-byte chunk whose CRC (two crc32 instructions) continues over the tail.
uint32_t xPowModP(size_t e) { // x^e mod P, normal (unreflected) bit order
    uint64_t r = 1;
    for (size_t i = 0; i < e; ++i) {
        r <<= 1;
        if (r & (uint64_t(1) << 32)) r ^= 0x11EDC6F41ull;
    }
    return uint32_t(r);
}
uint32_t reflect32(uint32_t v) {
    uint32_t r = 0;
    for (int i = 0; i < 32; ++i) r |= ((v >> i) & 1u) << (31 - i);
    return r;
}
struct FoldConstants {
    uint64_t k[6][2]; // distances 256, 64, 48, 32, 16, 128 bytes: {lo, hi}
    FoldConstants() {
        const size_t d[6] = {256, 64, 48, 32, 16, 128};
        for (int i = 0; i < 6; ++i) {
            k[i][0] = reflect32(xPowModP(8 * d[i] + 31));
            k[i][1] = reflect32(xPowModP(8 * d[i] - 33));
        }
    }
};
const FoldConstants& foldConstants() {
    static const FoldConstants fc;
    return fc;
}

bool detectFold512() {
    return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("vpclmulqdq");
}

#define MOFKA_PY_FOLD_TARGET __attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.2")))

MOFKA_PY_FOLD_TARGET inline __m512i fold512(__m512i x, __m512i k, __m512i next) {
    return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00), _mm512_clmulepi64_epi128(x, k, 0x11), next,
                                     0x96); // a ^ b ^ c
}
__attribute__((target("pclmul,sse4.2"))) inline __m128i fold128(__m128i x, const uint64_t* k) {
    __m128i kk = _mm_set_epi64x(int64_t(k[1]), int64_t(k[0]));
    return _mm_xor_si128(_mm_clmulepi64_si128(x, kk, 0x00), _mm_clmulepi64_si128(x, kk, 0x11));
}

/// Raw register update over @p n >= 256 bytes.
MOFKA_PY_FOLD_TARGET uint32_t rawFold512(uint32_t c, const uint8_t* p, size_t n) {
    const FoldConstants& fc = foldConstants();
    const __m512i k256 =
        _mm512_set_epi64(int64_t(fc.k[0][1]), int64_t(fc.k[0][0]), int64_t(fc.k[0][1]), int64_t(fc.k[0][0]),
                         int64_t(fc.k[0][1]), int64_t(fc.k[0][0]), int64_t(fc.k[0][1]), int64_t(fc.k[0][0]));
    const __m512i k64 =
        _mm512_set_epi64(int64_t(fc.k[1][1]), int64_t(fc.k[1][0]), int64_t(fc.k[1][1]), int64_t(fc.k[1][0]),
                         int64_t(fc.k[1][1]), int64_t(fc.k[1][0]), int64_t(fc.k[1][1]), int64_t(fc.k[1][0]));
    __m512i x0 = _mm512_xor_si512(_mm512_loadu_si512(p), _mm512_set_epi64(0, 0, 0, 0, 0, 0, 0, int64_t(c)));
    __m512i x1 = _mm512_loadu_si512(p + 64);
    __m512i x2 = _mm512_loadu_si512(p + 128);
    __m512i x3 = _mm512_loadu_si512(p + 192);
    p += 256;
    n -= 256;
    while (n >= 256) {
        x0 = fold512(x0, k256, _mm512_loadu_si512(p));
        x1 = fold512(x1, k256, _mm512_loadu_si512(p + 64));
        x2 = fold512(x2, k256, _mm512_loadu_si512(p + 128));
        x3 = fold512(x3, k256, _mm512_loadu_si512(p + 192));
        p += 256;
        n -= 256;
    }
    x1 = fold512(x0, k64, x1);
    x2 = fold512(x1, k64, x2);
    x3 = fold512(x2, k64, x3);
    alignas(64) uint8_t lane[64];
    _mm512_store_si512(lane, x3);
    auto at = [&](int i) { return _mm_load_si128(reinterpret_cast<const __m128i*>(lane + 16 * i)); };
    __m128i r = _mm_xor_si128(fold128(at(0), fc.k[2]), fold128(at(1), fc.k[3]));
    r = _mm_xor_si128(r, fold128(at(2), fc.k[4]));
    r = _mm_xor_si128(r, at(3));
    uint64_t lo = uint64_t(_mm_cvtsi128_si64(r)), hi = uint64_t(_mm_extract_epi64(r, 1));
    uint64_t c64 = _mm_crc32_u64(_mm_crc32_u64(0, lo), hi);
    return rawHw(uint32_t(c64), p, n);
}
const bool g_fold512 = detectFold512();
constexpr size_t kFoldMin = 1024; // below this the crc32 instruction is as fast

// The same folding with 32-byte registers (AVX2 + VPCLMULQDQ, e.g. AMD Zen 3): four registers
// walk the input 128 bytes at a time (D = 128), fold into one register (D = 32), whose two
// 16-byte halves fold into one (D = 16).
bool detectFold256() {
    return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("vpclmulqdq");
}

#define MOFKA_PY_FOLD256_TARGET __attribute__((target("avx2,vpclmulqdq,pclmul,sse4.2")))

MOFKA_PY_FOLD256_TARGET inline __m256i fold256(__m256i x, __m256i k, __m256i next) {
    return _mm256_xor_si256(
        _mm256_xor_si256(_mm256_clmulepi64_epi128(x, k, 0x00), _mm256_clmulepi64_epi128(x, k, 0x11)), next);
}

MOFKA_PY_FOLD256_TARGET inline __m256i pair256(const uint64_t* k) {
    return _mm256_set_epi64x(int64_t(k[1]), int64_t(k[0]), int64_t(k[1]), int64_t(k[0]));
}
MOFKA_PY_FOLD256_TARGET inline __m256i load(const uint8_t* q) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
}

/// Four registers over the first 128 bytes at @p p, the register @p c folded into the first.
MOFKA_PY_FOLD256_TARGET inline void start256(__m256i x[4], uint32_t c, const uint8_t* p) {
    x[0] = _mm256_xor_si256(load(p), _mm256_set_epi64x(0, 0, 0, int64_t(c)));
    x[1] = load(p + 32);
    x[2] = load(p + 64);
    x[3] = load(p + 96);
}
/// Fold the four registers 128 bytes down onto the 128 bytes at @p q.
MOFKA_PY_FOLD256_TARGET inline void step256(__m256i x[4], __m256i k128, const uint8_t* q) {
    x[0] = fold256(x[0], k128, load(q));
    x[1] = fold256(x[1], k128, load(q + 32));
    x[2] = fold256(x[2], k128, load(q + 64));
    x[3] = fold256(x[3], k128, load(q + 96));
}
/// The raw register after the bytes the four registers stand for.
MOFKA_PY_FOLD256_TARGET inline uint32_t finish256(__m256i x[4], const FoldConstants& fc) {
    const __m256i k32 = pair256(fc.k[3]);
    x[1] = fold256(x[0], k32, x[1]);
    x[2] = fold256(x[1], k32, x[2]);
    x[3] = fold256(x[2], k32, x[3]);
    __m128i r = _mm_xor_si128(fold128(_mm256_castsi256_si128(x[3]), fc.k[4]), _mm256_extracti128_si256(x[3], 1));
    uint64_t lo = uint64_t(_mm_cvtsi128_si64(r)), hi = uint64_t(_mm_extract_epi64(r, 1));
    return uint32_t(_mm_crc32_u64(_mm_crc32_u64(0, lo), hi));
}

/// Raw register update over @p n >= 128 bytes.
MOFKA_PY_FOLD256_TARGET uint32_t rawFold256(uint32_t c, const uint8_t* p, size_t n) {
    const FoldConstants& fc = foldConstants();
    const __m256i k128 = pair256(fc.k[5]);
    __m256i x[4];
    start256(x, c, p);
    p += 128;
    n -= 128;
    while (n >= 128) {
        step256(x, k128, p);
        p += 128;
        n -= 128;
    }
    return rawHw(finish256(x, fc), p, n);
}
const bool g_fold256 = detectFold256();

// The carry-less multiplier and the crc32 instruction run on different units: a block of
// kHybridVec bytes folded as above, followed by three kLane streams of crc32, is computed in one
// loop (each 128-byte fold step beside four words of each stream), then joined like rawHw's
// streams: crc(V A B D) = shift(shift(shift(crc(V)) ^ a) ^ b) ^ d, the streams starting from 0.
constexpr size_t kHybridVec = 256 * 128;
constexpr size_t kHybridBlock = kHybridVec + 3 * kLane;

/// Raw register update over @p n >= kHybridBlock bytes.
MOFKA_PY_FOLD256_TARGET uint32_t rawHybrid256(uint32_t c, const uint8_t* p, size_t n) {
    static_assert(kHybridVec / 128 * 32 == kLane, "one fold step per four words of each stream");
    const FoldConstants& fc = foldConstants();
    const ShiftTable& st = shiftTable();
    const __m256i k128 = pair256(fc.k[5]);
    while (n >= kHybridBlock) {
        const uint8_t* lanes = p + kHybridVec;
        uint64_t a = 0, b = 0, d = 0;
        __m256i x[4];
        start256(x, c, p);
        crc3(a, b, d, lanes, 0, 32);
        for (size_t i = 1; i < kHybridVec / 128; ++i) {
            step256(x, k128, p + 128 * i);
            crc3(a, b, d, lanes, 32 * i, 32 * i + 32);
        }
        c = st.shift(st.shift(st.shift(finish256(x, fc)) ^ uint32_t(a)) ^ uint32_t(b)) ^ uint32_t(d);
        p += kHybridBlock;
        n -= kHybridBlock;
    }
    return n >= kFoldMin ? rawFold256(c, p, n) : rawHw(c, p, n);
}
#endif
#else
bool detectHardware() { return false; }
uint32_t rawHw(uint32_t c, const uint8_t* p, size_t n) { return rawPortable(c, p, n); }
#endif

const bool g_hw = detectHardware();

uint32_t rawBest(uint32_t c, const uint8_t* p, size_t n) {
#ifdef MOFKA_PY_FOLD512
    if (g_fold512 && n >= kFoldMin) return rawFold512(c, p, n);
    if (g_fold256 && n >= kHybridBlock) return rawHybrid256(c, p, n);
    if (g_fold256 && n >= kFoldMin) return rawFold256(c, p, n);
#endif
    return g_hw ? rawHw(c, p, n) : rawPortable(c, p, n);
}

} // namespace

uint32_t crc32cPortable(uint32_t crc, const void* data, size_t size) noexcept {
    return ~rawPortable(~crc, static_cast<const uint8_t*>(data), size);
}

uint32_t crc32c(uint32_t crc, const void* data, size_t size) noexcept {
    auto p = static_cast<const uint8_t*>(data);
    return ~rawBest(~crc, p, size);
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
        d += n;
        s += n;
        size -= n;
    }
    return crc;
}

} // namespace mofka_py
