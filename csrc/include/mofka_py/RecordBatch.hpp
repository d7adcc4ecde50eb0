/**
 * @file RecordBatch.hpp
 * @brief The record batch: one format on disk and on the wire.
 *
 * Layout (little endian, every batch starts 8-byte aligned):
 * @code
 *   BatchHeader (96 B)
 *   uint32 metaLen[count]      pad to 8
 *   uint64 dataLen[count]
 *   metadata block             pad to 64 (from the batch start)
 *   data block: each event's data, padded to 8
 * @endcode
 * The CRC32C covers every byte after the crc field; base_offset and the length
 * (self-checked by length_check) precede it so a broker can assign offsets and
 * a reader can tell a torn tail from corruption without the CRC.
 */
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace mofka_py {

constexpr uint32_t kBatchMagic = 0x4259504Du; ///< "MPYB"
constexpr uint16_t kBatchVersion = 1;
constexpr size_t kBatchHeaderSize = 96;
constexpr size_t kCrcCoverageStart = 32; ///< first byte covered by the CRC

/// Fixed-size batch header, exactly as stored.
struct BatchHeader {
    uint32_t magic;
    uint16_t version;
    uint16_t flags;
    uint64_t length; ///< total bytes of the batch, a multiple of 8
    uint64_t baseOffset; ///< offset of the first event, set by the broker
    uint32_t lengthCheck; ///< crc32c of the 8 length bytes
    uint32_t crc; ///< crc32c of bytes [32, length)
    uint32_t count; ///< number of events
    uint32_t reserved0;
    uint64_t producerId; ///< 0 = anonymous
    uint64_t sequence; ///< producer's per-partition sequence of this batch
    int64_t firstTimestampUs;
    int64_t lastTimestampUs;
    uint64_t metaBytes; ///< metadata block size
    uint64_t dataBytes; ///< data block size including padding
    uint64_t reserved1;
};
static_assert(sizeof(BatchHeader) == kBatchHeaderSize, "header layout");

/// Something that keeps memory alive (a user buffer, a mapped segment).
using Owner = std::shared_ptr<const void>;

/// A contiguous piece of a batch being written.
struct Piece {
    const uint8_t* data;
    size_t size;
};

/// One piece of an event's data handed to a producer.
struct DataRef {
    const void* data;
    size_t size;
    Owner owner; ///< null: copied into the batch at push time
};

/**
 * @brief A batch ready to be appended or sent: a header+tables+metadata buffer
 *        followed by references to the data (scatter/gather, no packing copy).
 */
struct SealedBatch {
    std::vector<uint8_t> head; ///< header, tables, metadata, padding
    std::vector<Piece> pieces; ///< head first, then data and padding
    std::vector<Owner> owners; ///< user buffers referenced by pieces
    std::vector<uint8_t> inlineData; ///< small event data copied at push time
    uint64_t length = 0;
    uint32_t count = 0;

    BatchHeader& header() { return *reinterpret_cast<BatchHeader*>(head.data()); }
    const BatchHeader& header() const { return *reinterpret_cast<const BatchHeader*>(head.data()); }
};

/**
 * @brief Accumulates events of one partition; sealed into a SealedBatch.
 *
 * Data smaller than the inline threshold is copied (cheaper than keeping a
 * reference); larger data is referenced until the batch is appended.
 */
class BatchBuilder {
  public:
    static constexpr size_t kInlineThreshold = 16 * 1024;

    /// Add one event; the metadata is copied, data copied or referenced.
    void add(const void* meta, size_t metaLen, const DataRef* data, size_t nData, int64_t timestampUs);

    /// Add @p n events of @p metaStride bytes each (vectorised path, metadata only).
    void addMany(const uint8_t* metas, size_t n, size_t metaLen, size_t metaStride, int64_t timestampUs);

    size_t count() const { return m_metaLens.size(); }
    size_t bytes() const { return m_bytes; }
    bool empty() const { return m_metaLens.empty(); }
    int64_t firstTimestampUs() const { return m_firstTs; }

    /// Build the batch (CRC not yet computed; the log computes it while storing).
    SealedBatch seal(uint64_t producerId, uint64_t sequence);

  private:
    struct DataSlice {
        bool isInline;
        size_t offset;
        const uint8_t* ptr;
        size_t size;
    };
    std::vector<uint32_t> m_metaLens;
    std::vector<uint64_t> m_dataLens;
    std::vector<uint8_t> m_meta;
    std::vector<uint8_t> m_inline;
    std::vector<DataSlice> m_slices; ///< per event: its slices, then a padding slice (ptr null)
    std::vector<Owner> m_owners;
    size_t m_bytes = 0;
    int64_t m_firstTs = 0;
    int64_t m_lastTs = 0;
};

/**
 * @brief A read-only view of a stored or received batch with per-event access.
 */
class BatchView {
  public:
    /// Wrap @p size bytes at @p data; checks structure (not the CRC).
    BatchView(const uint8_t* data, size_t size);

    const BatchHeader& header() const { return *reinterpret_cast<const BatchHeader*>(m_data); }
    uint32_t count() const { return header().count; }
    uint64_t baseOffset() const { return header().baseOffset; }
    const uint8_t* data() const { return m_data; }
    size_t size() const { return m_size; }

    /// Metadata of event @p i.
    Piece metadata(uint32_t i) const { return {m_data + m_metaPos[i], m_metaLen(i)}; }
    /// Data of event @p i.
    Piece eventData(uint32_t i) const { return {m_data + m_dataPos[i], size_t(m_dataLen(i))}; }

    /// True if the CRC matches the content.
    bool crcOk() const;

  private:
    uint32_t m_metaLen(uint32_t i) const;
    uint64_t m_dataLen(uint32_t i) const;
    const uint8_t* m_data;
    size_t m_size;
    size_t m_metaTable, m_dataTable;
    std::vector<uint64_t> m_metaPos, m_dataPos;
};

/// Compute the CRC of a batch given as pieces (the first holds the header).
uint32_t batchCrc(const std::vector<Piece>& pieces);
/// The length_check value for a batch length.
uint32_t lengthCheck(uint64_t length);
/// Round up to a multiple of @p a (a power of two).
inline uint64_t alignUp(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

} // namespace mofka_py
