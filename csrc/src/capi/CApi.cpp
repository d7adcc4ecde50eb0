// The C ABI (mofka_py/mofka_py.h) over the C++ API: handles, status codes and a thread's last
// error message. Every entry point catches everything; nothing C++ crosses the boundary.
// The MPI entry points are in CApiMpi.cpp (or CApiNoMpi.cpp in a build without MPI).
#include "capi/CApi.hpp"

#include "mofka_py/Fabric.hpp"
#include "mofka_py/Version.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <vector>

namespace mofka_py::capi {

namespace {
thread_local int t_status = MOFKA_PY_OK;
thread_local std::string t_message;
} // namespace

int fail(int status, const char* message) noexcept {
    t_status = status;
    try {
        t_message = message;
    } catch (...) {
        t_message.clear();
    }
    return status;
}

int succeed(int status) noexcept {
    t_status = status;
    return status;
}

int statusOf(ErrorCode code) noexcept { return static_cast<int>(code) + 1; }

int failCurrent() noexcept {
    try {
        throw;
    } catch (const Error& e) {
        return fail(statusOf(e.code()), e.what());
    } catch (const std::bad_alloc&) {
        return fail(MOFKA_PY_ERR_GENERIC, "out of memory in mofka-py; free memory or lower batch/prefetch sizes");
    } catch (const std::exception& e) {
        return fail(MOFKA_PY_ERR_GENERIC, e.what());
    } catch (...) {
        return fail(MOFKA_PY_ERR_GENERIC, "unknown error inside mofka-py");
    }
}

void need(const void* p, const char* what) {
    if (!p) throw Error(ErrorCode::InvalidArgument, std::string(what) + " is NULL; pass a valid pointer");
}

std::string text(const char* s, const char* what) {
    need(s, what);
    return std::string(s);
}

void checkSize(size_t given, size_t expected, const char* type) {
    if (given != expected)
        throw Error(ErrorCode::InvalidArgument, std::string(type) + ".struct_size is " + std::to_string(given) +
                                                    " but this library (ABI " + std::to_string(MOFKA_PY_C_ABI_VERSION) +
                                                    ") expects " + std::to_string(expected) + "; set it to sizeof(" +
                                                    type +
                                                    ") (or call the *_init function) and build against the "
                                                    "mofka_py.h of the library you link");
}

} // namespace mofka_py::capi

using namespace mofka_py;
using namespace mofka_py::capi;

namespace {

struct TopicObj {
    Topic topic;
};
struct ProducerObj {
    Producer producer;
};
struct FutureObj {
    Future future;
};
struct ConsumerObj {
    Consumer consumer;
};
struct EventObj {
    Owner owner;
};

FabricObj& fabricOf(mofka_py_fabric_t h, const char* what) { return objectOf<FabricObj>(h, Kind::Fabric, what); }
TopicObj& topicOf(mofka_py_topic_t h, const char* what) { return objectOf<TopicObj>(h, Kind::Topic, what); }
ProducerObj& producerOf(mofka_py_producer_t h, const char* what) {
    return objectOf<ProducerObj>(h, Kind::Producer, what);
}
ConsumerObj& consumerOf(mofka_py_consumer_t h, const char* what) {
    return objectOf<ConsumerObj>(h, Kind::Consumer, what);
}

/// Runs the user's release callback once the producer drops the last reference to the pieces,
/// but only if the push succeeded (armed), so a failed push never calls it.
struct Releaser {
    mofka_py_release_fn fn;
    void* context;
    std::atomic<bool> armed{false};
};

TopicConfig topicConfigFrom(const mofka_py_topic_config_t* c) {
    TopicConfig cfg;
    cfg.setFields = 0;
    if (!c) return cfg;
    checkSize(c->struct_size, sizeof(mofka_py_topic_config_t), "mofka_py_topic_config_t");
    cfg.partitions = c->partitions ? c->partitions : 1;
    auto take = [&](bool given, uint32_t bit) {
        if (given) cfg.setFields |= bit;
        return given;
    };
    if (take(c->segment_bytes != 0, kSegmentBytes)) cfg.segmentBytes = c->segment_bytes;
    if (take(c->retention_bytes != 0, kRetentionBytes)) cfg.retentionBytes = c->retention_bytes;
    if (take(c->retention_ms != 0, kRetentionMs)) cfg.retentionMs = c->retention_ms;
    if (take(c->sync_interval_ms != 0, kSyncIntervalMs)) cfg.syncIntervalMs = c->sync_interval_ms;
    if (take(c->max_event_bytes != 0, kMaxEventBytes)) cfg.maxEventBytes = c->max_event_bytes;
    if (take(c->replication != 0, kReplication)) cfg.replication = c->replication;
    if (take(c->min_insync != 0, kMinInsync)) cfg.minInsync = c->min_insync;
    switch (c->sync) {
    case MOFKA_PY_SYNC_DEFAULT: break;
    case MOFKA_PY_SYNC_NONE: cfg.sync = SyncPolicy::None; break;
    case MOFKA_PY_SYNC_BATCH: cfg.sync = SyncPolicy::Batch; break;
    case MOFKA_PY_SYNC_INTERVAL: cfg.sync = SyncPolicy::Interval; break;
    default:
        throw Error(ErrorCode::InvalidArgument, "mofka_py_topic_config_t.sync is " + std::to_string(c->sync) +
                                                    "; use MOFKA_PY_SYNC_DEFAULT, _NONE, _BATCH or _INTERVAL");
    }
    if (c->sync != MOFKA_PY_SYNC_DEFAULT) cfg.setFields |= kSync;
    return cfg;
}

} // namespace

extern "C" {

int mofka_py_abi_version(void) { return MOFKA_PY_C_ABI_VERSION; }

const char* mofka_py_version(int* major, int* minor, int* patch) {
    if (major) *major = MOFKA_PY_VERSION_MAJOR;
    if (minor) *minor = MOFKA_PY_VERSION_MINOR;
    if (patch) *patch = MOFKA_PY_VERSION_PATCH;
    return MOFKA_PY_VERSION_STRING;
}

const char* mofka_py_error_name(int status) {
    if (status == MOFKA_PY_OK) return "OK";
    if (status == MOFKA_PY_END) return "End";
    if (status < 1 || status > statusOf(kLastErrorCode)) return "Unknown";
    if (status == MOFKA_PY_ERR_GENERIC) return "Error";
    return errorCodeName(static_cast<ErrorCode>(status - 1));
}

const char* mofka_py_last_error(void) { return t_message.c_str(); }

int mofka_py_last_status(void) { return t_status; }

int mofka_py_connect_options_init(mofka_py_connect_options_t* o) {
    MOFKA_PY_GUARD({
        need(o, "options");
        std::memset(o, 0, sizeof *o);
        o->struct_size = sizeof *o;
        FabricOptions d;
        o->connect_timeout_ms = d.connectTimeoutMs;
        o->request_timeout_ms = d.requestTimeoutMs;
        o->reconnect_timeout_ms = d.reconnectTimeoutMs;
    })
}

int mofka_py_connect(const char* url, mofka_py_fabric_t* fabric) { return mofka_py_connect_ex(url, nullptr, fabric); }

int mofka_py_connect_ex(const char* url, const mofka_py_connect_options_t* o, mofka_py_fabric_t* fabric) {
    MOFKA_PY_GUARD({
        std::string u = text(url, "url");
        need(fabric, "fabric (the output pointer)");
        FabricOptions opts;
        if (o) {
            checkSize(o->struct_size, sizeof *o, "mofka_py_connect_options_t");
            if (o->token) opts.token = o->token;
            if (o->connect_timeout_ms) opts.connectTimeoutMs = o->connect_timeout_ms;
            if (o->request_timeout_ms) opts.requestTimeoutMs = o->request_timeout_ms;
            if (o->reconnect_timeout_ms) opts.reconnectTimeoutMs = o->reconnect_timeout_ms;
            opts.repair = o->repair != 0;
        }
        publish(Kind::Fabric, new FabricObj{Fabric::connect(u, opts)}, fabric);
    })
}

int mofka_py_fabric_topics(mofka_py_fabric_t fabric, char* buffer, size_t size, size_t* needed) {
    MOFKA_PY_GUARD({
        auto names = fabricOf(fabric, "fabric").fabric.topics();
        std::string all;
        for (auto& n : names) all += n + "\n";
        if (needed) *needed = all.size() + 1;
        if (!buffer || size < all.size() + 1)
            throw Error(ErrorCode::InvalidArgument,
                        "the topic names need a buffer of " + std::to_string(all.size() + 1) + " bytes (given " +
                            std::to_string(buffer ? size : 0) + "); call again with at least *needed bytes");
        std::memcpy(buffer, all.c_str(), all.size() + 1);
    })
}

int mofka_py_fabric_delete_topic(mofka_py_fabric_t fabric, const char* name, int force) {
    MOFKA_PY_GUARD(fabricOf(fabric, "fabric").fabric.deleteTopic(text(name, "name"), force != 0))
}

int mofka_py_fabric_close(mofka_py_fabric_t fabric) { MOFKA_PY_GUARD(fabricOf(fabric, "fabric").fabric.close()) }

int mofka_py_fabric_release(mofka_py_fabric_t fabric) {
    MOFKA_PY_GUARD({ take<FabricObj>(fabric, Kind::Fabric, "fabric")->fabric.close(); })
}

int mofka_py_topic_config_init(mofka_py_topic_config_t* c) {
    MOFKA_PY_GUARD({
        need(c, "config");
        std::memset(c, 0, sizeof *c);
        c->struct_size = sizeof *c;
        c->partitions = 1;
    })
}

int mofka_py_topic_create(mofka_py_fabric_t fabric, const char* name, const mofka_py_topic_config_t* config) {
    MOFKA_PY_GUARD({
        auto& f = fabricOf(fabric, "fabric");
        std::string n = text(name, "name");
        f.fabric.createTopic(n, topicConfigFrom(config));
    })
}

int mofka_py_topic_open(mofka_py_fabric_t fabric, const char* name, mofka_py_topic_t* topic) {
    MOFKA_PY_GUARD({
        auto& f = fabricOf(fabric, "fabric");
        std::string n = text(name, "name");
        need(topic, "topic (the output pointer)");
        publish(Kind::Topic, new TopicObj{f.fabric.topic(n)}, topic);
    })
}

int mofka_py_topic_exists(mofka_py_fabric_t fabric, const char* name, int* exists) {
    MOFKA_PY_GUARD({
        auto& f = fabricOf(fabric, "fabric");
        std::string n = text(name, "name");
        need(exists, "exists");
        auto names = f.fabric.topics();
        *exists = std::find(names.begin(), names.end(), n) != names.end() ? 1 : 0;
    })
}

int mofka_py_topic_partitions(mofka_py_topic_t topic, uint32_t* partitions) {
    MOFKA_PY_GUARD({
        auto& t = topicOf(topic, "topic");
        need(partitions, "partitions");
        *partitions = t.topic.partitions();
    })
}

int mofka_py_topic_end_offset(mofka_py_topic_t topic, uint32_t partition, uint64_t* offset) {
    MOFKA_PY_GUARD({
        auto& t = topicOf(topic, "topic");
        need(offset, "offset");
        TopicInfo info = t.topic.describe();
        if (partition >= info.partitions.size())
            throw Error(ErrorCode::InvalidArgument, "partition " + std::to_string(partition) + " of topic '" +
                                                        t.topic.name() + "' does not exist (it has " +
                                                        std::to_string(info.partitions.size()) + ")");
        *offset = info.partitions[partition].endOffset;
    })
}

int mofka_py_topic_mark_complete(mofka_py_topic_t topic) {
    MOFKA_PY_GUARD(topicOf(topic, "topic").topic.markComplete())
}

int mofka_py_topic_release(mofka_py_topic_t topic) { MOFKA_PY_GUARD(take<TopicObj>(topic, Kind::Topic, "topic")) }

int mofka_py_producer_options_init(mofka_py_producer_options_t* o) {
    MOFKA_PY_GUARD({
        need(o, "options");
        std::memset(o, 0, sizeof *o);
        o->struct_size = sizeof *o;
        ProducerOptions d;
        o->batch_size = d.batchSize;
        o->batch_bytes = d.batchBytes;
        o->linger_ms = d.lingerMs;
        o->max_pending_bytes = d.maxPendingBytes;
    })
}

int mofka_py_producer_create(mofka_py_topic_t topic, const mofka_py_producer_options_t* o,
                             mofka_py_producer_t* producer) {
    MOFKA_PY_GUARD({
        auto& t = topicOf(topic, "topic");
        need(producer, "producer (the output pointer)");
        ProducerOptions opts;
        if (o) {
            checkSize(o->struct_size, sizeof *o, "mofka_py_producer_options_t");
            if (o->batch_size) opts.batchSize = o->batch_size;
            if (o->batch_bytes) opts.batchBytes = o->batch_bytes;
            if (o->linger_ms > 0) opts.lingerMs = o->linger_ms;
            if (o->linger_ms < 0) opts.lingerMs = 0;
            if (o->max_pending_bytes) opts.maxPendingBytes = o->max_pending_bytes;
            opts.selector = o->round_robin ? PartitionSelector::RoundRobin : PartitionSelector::KeyHash;
        }
        publish(Kind::Producer, new ProducerObj{t.topic.producer(opts)}, producer);
    })
}

int mofka_py_producer_push(mofka_py_producer_t producer, const char* metadata, size_t metadata_size, const void* data,
                           size_t data_size, int64_t partition, mofka_py_future_t* future) {
    MOFKA_PY_GUARD({
        auto& p = producerOf(producer, "producer");
        if (!metadata && metadata_size) need(metadata, "metadata");
        if (!data && data_size) need(data, "data");
        // Data the producer references (over the inline threshold) gets an owner that owns nothing:
        // the caller keeps the buffer until the event is stored.
        DataRef ref{data, data_size, data_size ? Owner(Owner(), data) : Owner()};
        Future f = p.producer.push(metadata, metadata_size, &ref, data_size ? 1 : 0, partition, nullptr, 0, true);
        if (future) publish(Kind::Future, new FutureObj{std::move(f)}, future);
    })
}

int mofka_py_producer_push_ex(mofka_py_producer_t producer, const char* metadata, size_t metadata_size,
                              const mofka_py_buffer_t* pieces, size_t num_pieces, int64_t partition, const void* key,
                              size_t key_size, int32_t flags, mofka_py_release_fn release, void* release_context,
                              mofka_py_future_t* future) {
    MOFKA_PY_GUARD({
        auto& p = producerOf(producer, "producer");
        if (!metadata && metadata_size) need(metadata, "metadata");
        if (!pieces && num_pieces) need(pieces, "pieces");
        if (!key && key_size) need(key, "key");
        if (flags & ~MOFKA_PY_PUSH_NONBLOCK)
            throw Error(ErrorCode::InvalidArgument,
                        "unknown push flags " + std::to_string(flags) + "; pass 0 or MOFKA_PY_PUSH_NONBLOCK");
        Owner owner;
        Releaser* releaser = nullptr;
        if (release) {
            releaser = new Releaser{release, release_context};
            owner = Owner(releaser, [](const void* r) {
                auto* rel = static_cast<Releaser*>(const_cast<void*>(r));
                if (rel->armed.load(std::memory_order_acquire)) rel->fn(rel->context);
                delete rel;
            });
        }
        std::vector<DataRef> refs(num_pieces);
        for (size_t i = 0; i < num_pieces; ++i) {
            if (!pieces[i].data && pieces[i].size)
                throw Error(ErrorCode::InvalidArgument, "pieces[" + std::to_string(i) + "].data is NULL with size " +
                                                            std::to_string(pieces[i].size));
            Owner o = owner ? Owner(owner, pieces[i].data) : Owner(Owner(), pieces[i].data);
            refs[i] = DataRef{pieces[i].data, pieces[i].size, pieces[i].size ? o : Owner()};
        }
        Future f = p.producer.push(metadata, metadata_size, refs.data(), refs.size(), partition, key, key_size,
                                   (flags & MOFKA_PY_PUSH_NONBLOCK) == 0);
        if (releaser) releaser->armed.store(true, std::memory_order_release);
        refs.clear();
        owner.reset(); // the callback runs here if the producer kept no reference
        if (future) publish(Kind::Future, new FutureObj{std::move(f)}, future);
    })
}

int mofka_py_producer_flush(mofka_py_producer_t producer, int64_t timeout_ms) {
    MOFKA_PY_GUARD(producerOf(producer, "producer").producer.flush(timeout_ms))
}

int mofka_py_producer_close(mofka_py_producer_t producer, int64_t timeout_ms) {
    MOFKA_PY_GUARD(producerOf(producer, "producer").producer.close(timeout_ms))
}

int mofka_py_producer_release(mofka_py_producer_t producer) {
    MOFKA_PY_GUARD({ take<ProducerObj>(producer, Kind::Producer, "producer")->producer.close(-1); })
}

int mofka_py_future_test(mofka_py_future_t future, int* done) {
    MOFKA_PY_GUARD({
        auto* f = &objectOf<FutureObj>(future, Kind::Future, "future");
        need(done, "done");
        *done = f->future.done() ? 1 : 0;
    })
}

int mofka_py_future_wait(mofka_py_future_t future, int64_t timeout_ms, uint32_t* partition, uint64_t* offset) {
    MOFKA_PY_GUARD({
        auto* f = &objectOf<FutureObj>(future, Kind::Future, "future");
        EventId id = f->future.wait(timeout_ms);
        if (partition) *partition = id.partition;
        if (offset) *offset = id.offset;
    })
}

int mofka_py_future_release(mofka_py_future_t future) {
    MOFKA_PY_GUARD(take<FutureObj>(future, Kind::Future, "future"))
}

int mofka_py_consumer_options_init(mofka_py_consumer_options_t* o) {
    MOFKA_PY_GUARD({
        need(o, "options");
        std::memset(o, 0, sizeof *o);
        o->struct_size = sizeof *o;
        ConsumerOptions d;
        o->start = MOFKA_PY_START_COMMITTED;
        o->prefetch_bytes = d.prefetchBytes;
        o->auto_commit_ms = d.autoCommitMs;
    })
}

int mofka_py_consumer_create(mofka_py_topic_t topic, const mofka_py_consumer_options_t* o,
                             mofka_py_consumer_t* consumer) {
    MOFKA_PY_GUARD({
        auto& t = topicOf(topic, "topic");
        need(consumer, "consumer (the output pointer)");
        ConsumerOptions opts;
        opts.start = StartPosition::Earliest;
        if (o) {
            checkSize(o->struct_size, sizeof *o, "mofka_py_consumer_options_t");
            if (o->group) opts.group = o->group;
            if (o->member_id) opts.memberId = o->member_id;
            switch (o->start) {
            case MOFKA_PY_START_COMMITTED: opts.start = StartPosition::Committed; break;
            case MOFKA_PY_START_EARLIEST: opts.start = StartPosition::Earliest; break;
            case MOFKA_PY_START_LATEST: opts.start = StartPosition::Latest; break;
            case MOFKA_PY_START_OFFSET: opts.start = StartPosition::Offset; break;
            default:
                throw Error(ErrorCode::InvalidArgument, "mofka_py_consumer_options_t.start is " +
                                                            std::to_string(o->start) +
                                                            "; use a MOFKA_PY_START_* value");
            }
            opts.startOffset = o->start_offset;
            if (o->data == MOFKA_PY_DATA_NONE)
                opts.data = DataMode::None;
            else if (o->data != MOFKA_PY_DATA_FULL)
                throw Error(ErrorCode::InvalidArgument, "mofka_py_consumer_options_t.data is " +
                                                            std::to_string(o->data) +
                                                            "; use MOFKA_PY_DATA_FULL or MOFKA_PY_DATA_NONE");
            if (!o->partitions && o->num_partitions) need(o->partitions, "options->partitions");
            opts.partitions.assign(o->partitions, o->partitions + o->num_partitions);
            if (o->prefetch_bytes) opts.prefetchBytes = o->prefetch_bytes;
            if (o->auto_commit_ms > 0) opts.autoCommitMs = o->auto_commit_ms;
            if (o->auto_commit_ms < 0) opts.autoCommitMs = 0;
        }
        publish(Kind::Consumer, new ConsumerObj{t.topic.consumer(opts)}, consumer);
    })
}

int mofka_py_consumer_pull(mofka_py_consumer_t consumer, int64_t timeout_ms, mofka_py_event_t* event) {
    try {
        auto& c = consumerOf(consumer, "consumer");
        need(event, "event");
        checkSize(event->struct_size, sizeof *event, "mofka_py_event_t");
        std::optional<Event> ev = c.consumer.pull(timeout_ms);
        if (!ev) {
            if (c.consumer.exhausted()) return succeed(MOFKA_PY_END);
            return fail(
                MOFKA_PY_ERR_TIMEOUT,
                ("no event arrived within " + std::to_string(timeout_ms) + " ms; pull again, or wait longer").c_str());
        }
        publish(Kind::Event, new EventObj{std::move(ev->owner)}, &event->internal);
        event->partition = ev->partition;
        event->epoch = ev->epoch;
        event->offset = ev->offset;
        event->metadata = reinterpret_cast<const char*>(ev->metadata.data);
        event->metadata_size = ev->metadata.size;
        event->data = ev->data.data;
        event->data_size = ev->data.size;
        event->timestamp_us = ev->timestampUs;
        return succeed(MOFKA_PY_OK);
    } catch (...) {
        return failCurrent();
    }
}

int mofka_py_consumer_ack(mofka_py_consumer_t consumer, const mofka_py_event_t* event) {
    MOFKA_PY_GUARD({
        auto& c = consumerOf(consumer, "consumer");
        need(event, "event");
        checkSize(event->struct_size, sizeof *event, "mofka_py_event_t");
        c.consumer.ack(event->partition, event->offset, event->epoch);
    })
}

int mofka_py_consumer_commit(mofka_py_consumer_t consumer) {
    MOFKA_PY_GUARD(consumerOf(consumer, "consumer").consumer.commit())
}

int mofka_py_consumer_close(mofka_py_consumer_t consumer) {
    MOFKA_PY_GUARD(consumerOf(consumer, "consumer").consumer.close())
}

int mofka_py_consumer_release(mofka_py_consumer_t consumer) {
    MOFKA_PY_GUARD({ take<ConsumerObj>(consumer, Kind::Consumer, "consumer")->consumer.close(); })
}

int mofka_py_event_release(mofka_py_event_t* event) {
    MOFKA_PY_GUARD({
        need(event, "event");
        checkSize(event->struct_size, sizeof *event, "mofka_py_event_t");
        if (event->internal) {
            take<EventObj>(event->internal, Kind::Event, "event->internal");
            event->internal = nullptr;
            event->metadata = nullptr;
            event->data = nullptr;
            event->metadata_size = event->data_size = 0;
        }
    })
}

} // extern "C"
