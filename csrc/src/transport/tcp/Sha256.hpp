/**
 * @file Sha256.hpp
 * @brief SHA-256 and HMAC-SHA-256, for the service's challenge-response login.
 */
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace mofka_py {

/// A 32-byte digest.
using Digest = std::array<uint8_t, 32>;

/// SHA-256 of @p size bytes.
Digest sha256(const void* data, size_t size);

/// HMAC-SHA-256 (RFC 2104) of @p message under @p key.
Digest hmacSha256(const std::string& key, const void* message, size_t size);

/// Constant-time comparison of two digests.
bool digestEqual(const Digest& a, const Digest& b);

} // namespace mofka_py
