/**
 * @file Crc32c.hpp
 * @brief CRC32C (Castagnoli), hardware accelerated where the CPU has it.
 */
#pragma once
#include <cstddef>
#include <cstdint>

namespace mofka_py {

/**
 * @brief Extend a CRC32C over @p size bytes.
 *
 * Start with crc = 0; feed pieces in order to checksum a scattered buffer
 * (`c = crc32c(c, a, na); c = crc32c(c, b, nb);` equals the CRC of a||b).
 * Uses carry-less multiplication folding (AVX-512 VPCLMULQDQ) for inputs of
 * 1 KiB or more where the CPU has it, the SSE4.2 instruction with three
 * interleaved streams otherwise when available, a slicing-by-8 table as the
 * last resort; all give the same result.
 */
uint32_t crc32c(uint32_t crc, const void* data, size_t size) noexcept;

/// Portable table implementation (exposed to test it against the hardware one).
uint32_t crc32cPortable(uint32_t crc, const void* data, size_t size) noexcept;

/// True when crc32c() uses the CPU's CRC32 instruction.
bool crc32cIsHardware() noexcept;

/**
 * @brief Copy @p size bytes from @p src to @p dst and extend @p crc over them,
 *        touching each byte from memory once (the CRC runs on cached chunks).
 */
uint32_t crc32cCopy(uint32_t crc, void* dst, const void* src, size_t size) noexcept;

} // namespace mofka_py
