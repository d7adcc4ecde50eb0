#include "mofka_py/RecordBatch.hpp"

#include "mofka_py/Crc32c.hpp"
#include "mofka_py/Error.hpp"

#include <cstring>
#include <string>

namespace mofka_py {
namespace {
const uint8_t kZeros[64] = {};

size_t tablesEnd(size_t count) { return alignUp(kBatchHeaderSize + 4 * count, 8) + 8 * count; }
} // namespace

uint32_t lengthCheck(uint64_t length) { return crc32c(0, &length, sizeof(length)); }

void BatchBuilder::add(const void* meta, size_t metaLen, const DataRef* data, size_t nData, int64_t ts) {
    if (m_metaLens.empty()) m_firstTs = ts;
    m_lastTs = ts;
    m_metaLens.push_back(uint32_t(metaLen));
    auto mp = static_cast<const uint8_t*>(meta);
    m_meta.insert(m_meta.end(), mp, mp + metaLen);
    uint64_t total = 0;
    for (size_t i = 0; i < nData; ++i) {
        const DataRef& d = data[i];
        if (d.size == 0) continue;
        if (d.size < kInlineThreshold || !d.owner) {
            auto p = static_cast<const uint8_t*>(d.data);
            // Merge with the previous inline slice when contiguous in m_inline.
            size_t off = m_inline.size();
            m_inline.insert(m_inline.end(), p, p + d.size);
            if (!m_slices.empty() && m_slices.back().isInline && m_slices.back().offset + m_slices.back().size == off) {
                m_slices.back().size += d.size;
            } else {
                m_slices.push_back({true, off, nullptr, d.size});
            }
        } else {
            m_slices.push_back({false, 0, static_cast<const uint8_t*>(d.data), d.size});
            m_owners.push_back(d.owner);
        }
        total += d.size;
    }
    m_dataLens.push_back(total);
    size_t pad = alignUp(total, 8) - total;
    if (pad) {
        // Padding goes inline too, so runs of small events stay one slice.
        size_t off = m_inline.size();
        m_inline.insert(m_inline.end(), pad, 0);
        if (!m_slices.empty() && m_slices.back().isInline && m_slices.back().offset + m_slices.back().size == off)
            m_slices.back().size += pad;
        else
            m_slices.push_back({true, off, nullptr, pad});
    }
    m_bytes += metaLen + total + 12;
}

void BatchBuilder::addMany(const uint8_t* metas, size_t n, size_t metaLen, size_t stride, int64_t ts) {
    if (n == 0) return;
    if (m_metaLens.empty()) m_firstTs = ts;
    m_lastTs = ts;
    m_metaLens.insert(m_metaLens.end(), n, uint32_t(metaLen));
    m_dataLens.insert(m_dataLens.end(), n, 0);
    if (stride == metaLen) {
        m_meta.insert(m_meta.end(), metas, metas + n * metaLen);
    } else {
        size_t old = m_meta.size();
        m_meta.resize(old + n * metaLen);
        for (size_t i = 0; i < n; ++i) std::memcpy(m_meta.data() + old + i * metaLen, metas + i * stride, metaLen);
    }
    m_bytes += n * (metaLen + 12);
}

SealedBatch BatchBuilder::seal(uint64_t producerId, uint64_t sequence) {
    SealedBatch b;
    const size_t count = m_metaLens.size();
    const size_t metaTable = kBatchHeaderSize;
    const size_t dataTable = alignUp(metaTable + 4 * count, 8);
    const size_t metaStart = tablesEnd(count);
    const size_t dataStart = alignUp(metaStart + m_meta.size(), 64);
    uint64_t dataBytes = 0;
    for (auto& s : m_slices) dataBytes += s.size;

    b.head.assign(dataStart, 0);
    std::memcpy(b.head.data() + metaTable, m_metaLens.data(), 4 * count);
    std::memcpy(b.head.data() + dataTable, m_dataLens.data(), 8 * count);
    if (!m_meta.empty()) std::memcpy(b.head.data() + metaStart, m_meta.data(), m_meta.size());

    b.length = dataStart + dataBytes;
    b.count = uint32_t(count);
    BatchHeader& h = b.header();
    h.magic = kBatchMagic;
    h.version = kBatchVersion;
    h.flags = 0;
    h.length = b.length;
    h.baseOffset = 0;
    h.lengthCheck = lengthCheck(b.length);
    h.crc = 0;
    h.count = uint32_t(count);
    h.producerId = producerId;
    h.sequence = sequence;
    h.firstTimestampUs = m_firstTs;
    h.lastTimestampUs = m_lastTs;
    h.metaBytes = m_meta.size();
    h.dataBytes = dataBytes;

    b.inlineData = std::move(m_inline);
    b.owners = std::move(m_owners);
    b.pieces.reserve(m_slices.size() + 1);
    b.pieces.push_back({b.head.data(), b.head.size()});
    for (auto& s : m_slices) {
        const uint8_t* p = s.isInline ? b.inlineData.data() + s.offset : s.ptr;
        b.pieces.push_back({p, s.size});
    }
    *this = BatchBuilder();
    return b;
}

uint32_t batchCrc(const std::vector<Piece>& pieces) {
    uint32_t c = 0;
    size_t skip = kCrcCoverageStart;
    for (const Piece& p : pieces) {
        if (skip >= p.size) {
            skip -= p.size;
            continue;
        }
        c = crc32c(c, p.data + skip, p.size - skip);
        skip = 0;
    }
    return c;
}

BatchView::BatchView(const uint8_t* data, size_t size) : m_data(data), m_size(size) {
    auto fail = [](const std::string& why) { throw Error(ErrorCode::Corruption, "malformed record batch: " + why); };
    if (size < kBatchHeaderSize) fail("shorter than its header");
    const BatchHeader& h = header();
    if (h.magic != kBatchMagic) fail("bad magic");
    if (h.version != kBatchVersion) fail("unsupported version " + std::to_string(h.version));
    if (h.length != size || h.lengthCheck != lengthCheck(h.length)) fail("length mismatch");
    const uint64_t count = h.count;
    if (count > size / 12) fail("event count too large for the batch size");
    m_metaTable = kBatchHeaderSize;
    m_dataTable = alignUp(m_metaTable + 4 * count, 8);
    const uint64_t metaStart = tablesEnd(count);
    if (metaStart > size || h.metaBytes > size - metaStart) fail("metadata block out of bounds");
    const uint64_t dataStart = alignUp(metaStart + h.metaBytes, 64);
    if (dataStart > size || h.dataBytes != size - dataStart) fail("data block size mismatch");
    m_metaPos.resize(count);
    m_dataPos.resize(count);
    uint64_t mp = metaStart, dp = dataStart, metaEnd = metaStart + h.metaBytes;
    for (uint32_t i = 0; i < count; ++i) {
        m_metaPos[i] = mp;
        mp += m_metaLen(i);
        if (mp > metaEnd) fail("metadata lengths exceed the metadata block");
        m_dataPos[i] = dp;
        uint64_t dl = m_dataLen(i);
        if (dl > size - dp) fail("data lengths exceed the data block");
        dp += alignUp(dl, 8);
        if (dp > size) fail("data lengths exceed the data block");
    }
    if (mp != metaEnd || dp != size) fail("event lengths do not add up to the block sizes");
}

uint32_t BatchView::m_metaLen(uint32_t i) const {
    uint32_t v;
    std::memcpy(&v, m_data + m_metaTable + 4 * size_t(i), 4);
    return v;
}
uint64_t BatchView::m_dataLen(uint32_t i) const {
    uint64_t v;
    std::memcpy(&v, m_data + m_dataTable + 8 * size_t(i), 8);
    return v;
}

bool BatchView::crcOk() const {
    return crc32c(0, m_data + kCrcCoverageStart, m_size - kCrcCoverageStart) == header().crc;
}

} // namespace mofka_py
