/**
 * @file mofka_py.h
 * @brief The stable C ABI of mofka-py (libmofka_py_c), for C and Fortran simulation codes.
 *
 * Every function returns a status: ::MOFKA_PY_OK (0) or an error code whose name
 * (mofka_py_error_name()) is the Python class of the same error (mofka_py.InvalidArgument, ...).
 * After an error, mofka_py_last_error() gives this thread's message, which says what to do.
 * No C++ type and no exception crosses this interface.
 *
 * Objects are opaque handles. A handle that was released, never created, or is of another
 * kind gives ::MOFKA_PY_ERR_INVALID_ARGUMENT (never a crash); so does a NULL pointer where a
 * value is needed. Closing an object (mofka_py_producer_close(), ...) leaves its handle valid:
 * using it afterwards gives ::MOFKA_PY_ERR_CLOSED; release frees the handle. A handle may be
 * used from several threads, but not while another thread releases it.
 *
 * Structures passed in or out start with @c struct_size, set by the caller to sizeof the
 * structure it was compiled with (the *_init functions do it): a size this library does not
 * know gives ::MOFKA_PY_ERR_INVALID_ARGUMENT, so a program built against another version of
 * this header fails cleanly instead of reading past a structure.
 *
 * @code
 *   #include <mofka_py/mofka_py.h>
 *
 *   mofka_py_fabric_t fab; mofka_py_topic_t topic; mofka_py_producer_t prod;
 *   if (mofka_py_connect("file:///scratch/run1", &fab) != MOFKA_PY_OK) {
 *       fprintf(stderr, "%s\n", mofka_py_last_error()); return 1;
 *   }
 *   mofka_py_topic_create(fab, "field", NULL);
 *   mofka_py_topic_open(fab, "field", &topic);
 *   mofka_py_producer_create(topic, NULL, &prod);
 *   const char meta[] = "{\"step\": 1}";
 *   mofka_py_producer_push(prod, meta, sizeof meta - 1, field, nbytes, -1, NULL);
 *   mofka_py_producer_flush(prod, -1);   // field may be reused once this returns
 *   mofka_py_producer_release(prod); mofka_py_topic_release(topic); mofka_py_fabric_release(fab);
 * @endcode
 *
 * Zero copy: event data larger than 16 KiB is not copied at push; the producer reads it from
 * the caller's buffer when it sends the batch. Such a buffer must stay unchanged until the
 * event's future is done, mofka_py_producer_flush() returned, or (with
 * mofka_py_producer_push_ex()) its release callback ran. Events a consumer pulls point into
 * the fabric's storage (no copy) and stay valid until mofka_py_event_release().
 *
 * Link with `pkg-config --cflags --libs mofka_py_c` (or find_package(mofka_py) and the
 * target mofka_py::c). Fortran: the module mofka_py (mofka_py.mod, libmofka_py_fortran).
 */
#ifndef MOFKA_PY_H
#define MOFKA_PY_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define MOFKA_PY_API
#else
#define MOFKA_PY_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* cffi-begin: the declarations below are also read by cffi (no other preprocessor use). */

/** Version of this C interface: a program compiled with a higher one refuses an older library. */
#define MOFKA_PY_C_ABI_VERSION 1

/** Status codes; every error code names the Python class of the same error. */
#define MOFKA_PY_OK 0
#define MOFKA_PY_ERR_GENERIC 1 /**< mofka_py.Error */
#define MOFKA_PY_ERR_INVALID_ARGUMENT 2 /**< also: a bad handle, a NULL, a wrong struct_size */
#define MOFKA_PY_ERR_TOPIC_NOT_FOUND 3
#define MOFKA_PY_ERR_TOPIC_EXISTS 4
#define MOFKA_PY_ERR_TIMEOUT 5 /**< also: no event arrived in time (mofka_py_consumer_pull) */
#define MOFKA_PY_ERR_CONNECTION 6
#define MOFKA_PY_ERR_AUTH 7
#define MOFKA_PY_ERR_CORRUPTION 8
#define MOFKA_PY_ERR_CLOSED 9
#define MOFKA_PY_ERR_FABRIC_LOCKED 10
#define MOFKA_PY_ERR_NOT_A_FABRIC 11
#define MOFKA_PY_ERR_EVENT_TOO_LARGE 12
#define MOFKA_PY_ERR_BUFFER_FULL 13
#define MOFKA_PY_ERR_GROUP_ACTIVE 14
#define MOFKA_PY_ERR_OFFSET_OUT_OF_RANGE 15
#define MOFKA_PY_ERR_COMMIT_FAILED 16
#define MOFKA_PY_ERR_STORAGE 17
#define MOFKA_PY_ERR_OUT_OF_SEQUENCE 18
#define MOFKA_PY_ERR_NOT_LEADER 19
#define MOFKA_PY_ERR_NOT_ENOUGH_REPLICAS 20
/** Not an error: mofka_py_consumer_pull() found the topic complete and every partition read. */
#define MOFKA_PY_END 100

/** mofka_py_consumer_options_t.start */
#define MOFKA_PY_START_COMMITTED 0 /**< the group's committed offset, else the earliest */
#define MOFKA_PY_START_EARLIEST 1
#define MOFKA_PY_START_LATEST 2
#define MOFKA_PY_START_OFFSET 3 /**< start_offset */

/** mofka_py_consumer_options_t.data */
#define MOFKA_PY_DATA_FULL 0
#define MOFKA_PY_DATA_NONE 1 /**< metadata only: data is never read */

/** mofka_py_topic_config_t.sync */
#define MOFKA_PY_SYNC_DEFAULT 0
#define MOFKA_PY_SYNC_NONE 1
#define MOFKA_PY_SYNC_BATCH 2
#define MOFKA_PY_SYNC_INTERVAL 3

/** mofka_py_producer_push_ex() flags */
#define MOFKA_PY_PUSH_NONBLOCK 1 /**< fail with MOFKA_PY_ERR_BUFFER_FULL instead of waiting for memory */

typedef struct mofka_py_fabric_s* mofka_py_fabric_t; /**< an open fabric */
typedef struct mofka_py_topic_s* mofka_py_topic_t; /**< a topic of a fabric */
typedef struct mofka_py_producer_s* mofka_py_producer_t; /**< a batching producer */
typedef struct mofka_py_future_s* mofka_py_future_t; /**< the outcome of one push */
typedef struct mofka_py_consumer_s* mofka_py_consumer_t; /**< a consumer (a group member or not) */
typedef struct mofka_py_mpi_fabric_s* mofka_py_mpi_fabric_t; /**< a fabric inside an MPI job */

/** Called once the producer no longer reads a pushed buffer (stored, failed or dropped). */
typedef void (*mofka_py_release_fn)(void* context);

/** How to open a fabric (mofka_py_connect_ex()). Zero fields take the defaults. */
typedef struct mofka_py_connect_options {
    size_t struct_size; /**< sizeof(mofka_py_connect_options_t) */
    const char* token; /**< tcp://: the service's shared secret (NULL: none) */
    int64_t connect_timeout_ms; /**< tcp://: connecting and logging in (0: 5000) */
    int64_t request_timeout_ms; /**< tcp://: a request without a reply fails (0: 30000) */
    int64_t reconnect_timeout_ms; /**< tcp://: a lost connection is retried this long (0: 300000) */
    int32_t repair; /**< embedded: truncate corrupted logs at open instead of failing */
    int32_t reserved;
} mofka_py_connect_options_t;

/** Settings of a new topic (mofka_py_topic_create()). Zero fields take the fabric's defaults. */
typedef struct mofka_py_topic_config {
    size_t struct_size; /**< sizeof(mofka_py_topic_config_t) */
    uint32_t partitions; /**< 0: 1 */
    uint32_t replication; /**< copies in a cluster (0: 1) */
    uint32_t min_insync; /**< 0: min(2, replication) */
    int32_t sync; /**< MOFKA_PY_SYNC_* */
    uint64_t segment_bytes;
    uint64_t retention_bytes; /**< 0: no size limit (or the fabric's default) */
    int64_t retention_ms; /**< 0: no age limit (or the fabric's default) */
    int64_t sync_interval_ms;
    uint64_t max_event_bytes;
} mofka_py_topic_config_t;

/** Producer settings (mofka_py_producer_create()). Zero fields take the defaults. */
typedef struct mofka_py_producer_options {
    size_t struct_size; /**< sizeof(mofka_py_producer_options_t) */
    uint64_t batch_size; /**< seal a batch at this many events (0: 16384) */
    uint64_t batch_bytes; /**< ... or at this many bytes (0: 4 MiB) */
    double linger_ms; /**< ... or when its first event is this old (0: 1 ms; < 0: 0 ms) */
    uint64_t max_pending_bytes; /**< pushed, not yet stored: push waits past this (0: 256 MiB) */
    int32_t round_robin; /**< 1: event i to partition i mod N; 0: by key hash (round robin without key) */
    int32_t reserved;
} mofka_py_producer_options_t;

/** Consumer settings (mofka_py_consumer_create()). Zero fields take the defaults. */
typedef struct mofka_py_consumer_options {
    size_t struct_size; /**< sizeof(mofka_py_consumer_options_t) */
    const char* group; /**< consumer group (NULL or "": none, no commits) */
    const char* member_id; /**< stable member id in the group (NULL: a new one) */
    int32_t start; /**< MOFKA_PY_START_* */
    int32_t data; /**< MOFKA_PY_DATA_* */
    uint64_t start_offset; /**< for MOFKA_PY_START_OFFSET */
    const uint32_t* partitions; /**< without a group: read only these (NULL: all) */
    size_t num_partitions;
    uint64_t prefetch_bytes; /**< fetched, not yet pulled (0: 64 MiB) */
    int64_t auto_commit_ms; /**< commit acknowledged offsets this often (0: 1000; < 0: only on commit/close) */
} mofka_py_consumer_options_t;

/** One pulled event. The pointers stay valid until mofka_py_event_release(). */
typedef struct mofka_py_event {
    size_t struct_size; /**< set by the caller: sizeof(mofka_py_event_t) */
    uint32_t partition;
    uint32_t epoch; /**< which ownership of the partition delivered it (used by ack) */
    uint64_t offset;
    const char* metadata; /**< JSON text, not NUL-terminated */
    size_t metadata_size;
    const void* data;
    size_t data_size;
    int64_t timestamp_us; /**< when the batch holding it was sealed (microseconds since the epoch) */
    void* internal; /**< keeps the bytes alive; NULL once released */
} mofka_py_event_t;

/** One piece of an event's data (mofka_py_producer_push_ex()). */
typedef struct mofka_py_buffer {
    const void* data;
    size_t size;
} mofka_py_buffer_t;

/** Settings of an MPI fabric (mofka_py_mpi_fabric_create_f()); every rank passes the same. */
typedef struct mofka_py_mpi_options {
    size_t struct_size; /**< sizeof(mofka_py_mpi_options_t) */
    const int32_t* servers; /**< ranks that host partitions (NULL: rank 0 only) */
    size_t num_servers;
    const char* storage; /**< "memory://" (NULL) or "file:///dir" (server rank r uses dir/rank<r>) */
    int32_t colocated; /**< server ranks are clients too */
    int32_t reserved;
    int64_t request_timeout_ms; /**< 0: 60000 */
} mofka_py_mpi_options_t;

/* ---- versions and errors ---- */

/** The library's ABI version (MOFKA_PY_C_ABI_VERSION it was built with). */
MOFKA_PY_API int mofka_py_abi_version(void);
/** The mofka-py release, e.g. "0.1.0"; the numbers through the pointers (each may be NULL). */
MOFKA_PY_API const char* mofka_py_version(int* major, int* minor, int* patch);
/** The Python class name of a status ("InvalidArgument"), "OK", "End" or "Unknown". */
MOFKA_PY_API const char* mofka_py_error_name(int status);
/** The message of this thread's last failed call ("" if none); valid until this thread's next call. */
MOFKA_PY_API const char* mofka_py_last_error(void);
/** The status of this thread's last call (MOFKA_PY_OK after a success). */
MOFKA_PY_API int mofka_py_last_status(void);

/* ---- fabrics and topics ---- */

/** Fill @p options with the defaults (and struct_size). */
MOFKA_PY_API int mofka_py_connect_options_init(mofka_py_connect_options_t* options);
/** Open a fabric: "memory://", "file:///dir" or "tcp://host:port[,host:port...]". */
MOFKA_PY_API int mofka_py_connect(const char* url, mofka_py_fabric_t* fabric);
/** mofka_py_connect() with options (NULL: the defaults). */
MOFKA_PY_API int mofka_py_connect_ex(const char* url, const mofka_py_connect_options_t* options,
                                     mofka_py_fabric_t* fabric);
/** The fabric's topic names, each followed by '\n', NUL-terminated, into @p buffer of @p size bytes.
 *  @p needed (may be NULL) gets the bytes required; too small a buffer gives
 *  MOFKA_PY_ERR_INVALID_ARGUMENT and writes nothing but @p needed. */
MOFKA_PY_API int mofka_py_fabric_topics(mofka_py_fabric_t fabric, char* buffer, size_t size, size_t* needed);
/** Delete a topic, its events and its groups' offsets (force: even with live group members). */
MOFKA_PY_API int mofka_py_fabric_delete_topic(mofka_py_fabric_t fabric, const char* name, int force);
/** Close the fabric (embedded: its broker and files). Its topics, producers and consumers stop working. */
MOFKA_PY_API int mofka_py_fabric_close(mofka_py_fabric_t fabric);
/** Close (if not closed) and free the handle. */
MOFKA_PY_API int mofka_py_fabric_release(mofka_py_fabric_t fabric);

/** Fill @p config with the defaults (and struct_size). */
MOFKA_PY_API int mofka_py_topic_config_init(mofka_py_topic_config_t* config);
/** Create a topic (@p config NULL: the defaults); MOFKA_PY_ERR_TOPIC_EXISTS if it exists. */
MOFKA_PY_API int mofka_py_topic_create(mofka_py_fabric_t fabric, const char* name,
                                       const mofka_py_topic_config_t* config);
/** Open an existing topic; MOFKA_PY_ERR_TOPIC_NOT_FOUND if there is none. */
MOFKA_PY_API int mofka_py_topic_open(mofka_py_fabric_t fabric, const char* name, mofka_py_topic_t* topic);
/** Whether a topic of that name exists (1 or 0 into @p exists). */
MOFKA_PY_API int mofka_py_topic_exists(mofka_py_fabric_t fabric, const char* name, int* exists);
/** The topic's number of partitions. */
MOFKA_PY_API int mofka_py_topic_partitions(mofka_py_topic_t topic, uint32_t* partitions);
/** The end offset (next offset to be written) of one partition. */
MOFKA_PY_API int mofka_py_topic_end_offset(mofka_py_topic_t topic, uint32_t partition, uint64_t* offset);
/** Declare the topic finished: consumers stop (MOFKA_PY_END) after its last event. */
MOFKA_PY_API int mofka_py_topic_mark_complete(mofka_py_topic_t topic);
/** Free the handle (the topic itself stays). */
MOFKA_PY_API int mofka_py_topic_release(mofka_py_topic_t topic);

/* ---- producers ---- */

/** Fill @p options with the defaults (and struct_size). */
MOFKA_PY_API int mofka_py_producer_options_init(mofka_py_producer_options_t* options);
/** A producer of @p topic (@p options NULL: the defaults). */
MOFKA_PY_API int mofka_py_producer_create(mofka_py_topic_t topic, const mofka_py_producer_options_t* options,
                                          mofka_py_producer_t* producer);
/** Queue one event: metadata (JSON text, @p metadata_size bytes) and data (may be NULL/0).
 *  @p partition: a partition, or -1 to let the producer choose. @p future: NULL (errors then
 *  surface at flush) or where to put a future to wait on and release. Waits while the
 *  producer's memory is full. Data over 16 KiB is read from @p data later (see zero copy). */
MOFKA_PY_API int mofka_py_producer_push(mofka_py_producer_t producer, const char* metadata, size_t metadata_size,
                                        const void* data, size_t data_size, int64_t partition,
                                        mofka_py_future_t* future);
/** The general push: data in @p num_pieces pieces, an optional key (hash partitioning), flags
 *  (MOFKA_PY_PUSH_*), and a callback run once the producer no longer reads the pieces (it
 *  runs exactly once when the push succeeds, never when it fails; NULL: none). */
MOFKA_PY_API int mofka_py_producer_push_ex(mofka_py_producer_t producer, const char* metadata, size_t metadata_size,
                                           const mofka_py_buffer_t* pieces, size_t num_pieces, int64_t partition,
                                           const void* key, size_t key_size, int32_t flags, mofka_py_release_fn release,
                                           void* release_context, mofka_py_future_t* future);
/** Send everything queued and wait until it is stored (@p timeout_ms < 0: no limit). */
MOFKA_PY_API int mofka_py_producer_flush(mofka_py_producer_t producer, int64_t timeout_ms);
/** Flush and stop (@p timeout_ms < 0: no limit); later pushes give MOFKA_PY_ERR_CLOSED. */
MOFKA_PY_API int mofka_py_producer_close(mofka_py_producer_t producer, int64_t timeout_ms);
/** Close (if not closed, waiting without limit) and free the handle. */
MOFKA_PY_API int mofka_py_producer_release(mofka_py_producer_t producer);

/** Whether the event is stored or failed (1 or 0 into @p done); never waits. */
MOFKA_PY_API int mofka_py_future_test(mofka_py_future_t future, int* done);
/** Wait up to @p timeout_ms (< 0: no limit): MOFKA_PY_OK with where the event was stored
 *  (either pointer may be NULL), the event's error, or MOFKA_PY_ERR_TIMEOUT. */
MOFKA_PY_API int mofka_py_future_wait(mofka_py_future_t future, int64_t timeout_ms, uint32_t* partition,
                                      uint64_t* offset);
/** Free the future (the event is stored or not regardless). */
MOFKA_PY_API int mofka_py_future_release(mofka_py_future_t future);

/* ---- consumers ---- */

/** Fill @p options with the defaults (and struct_size). */
MOFKA_PY_API int mofka_py_consumer_options_init(mofka_py_consumer_options_t* options);
/** A consumer of @p topic (@p options NULL: all partitions, no group, from the earliest event). */
MOFKA_PY_API int mofka_py_consumer_create(mofka_py_topic_t topic, const mofka_py_consumer_options_t* options,
                                          mofka_py_consumer_t* consumer);
/** The next event into @p event (its struct_size set by the caller): MOFKA_PY_OK, MOFKA_PY_END
 *  (topic complete, all read), or MOFKA_PY_ERR_TIMEOUT after @p timeout_ms (< 0: no limit).
 *  Release every event it fills with mofka_py_event_release(). */
MOFKA_PY_API int mofka_py_consumer_pull(mofka_py_consumer_t consumer, int64_t timeout_ms, mofka_py_event_t* event);
/** Mark @p event and everything before it in its partition processed (a group commits these). */
MOFKA_PY_API int mofka_py_consumer_ack(mofka_py_consumer_t consumer, const mofka_py_event_t* event);
/** Store the acknowledged positions durably now (needs a group). */
MOFKA_PY_API int mofka_py_consumer_commit(mofka_py_consumer_t consumer);
/** Commit (in a group), leave the group and stop prefetching; later pulls give MOFKA_PY_ERR_CLOSED. */
MOFKA_PY_API int mofka_py_consumer_close(mofka_py_consumer_t consumer);
/** Close (if not closed) and free the handle. Events pulled before stay valid until released. */
MOFKA_PY_API int mofka_py_consumer_release(mofka_py_consumer_t consumer);
/** Let go of a pulled event's bytes; its pointers are cleared. Releasing twice is allowed. */
MOFKA_PY_API int mofka_py_event_release(mofka_py_event_t* event);

/* ---- the MPI fabric ---- */

/** Fill @p options with the defaults (and struct_size). */
MOFKA_PY_API int mofka_py_mpi_options_init(mofka_py_mpi_options_t* options);
/** Collective over the communicator whose Fortran handle is @p comm (MPI_Comm_c2f() in C, the
 *  integer communicator in Fortran): server ranks start serving, client ranks connect. MPI must
 *  be initialised with MPI_THREAD_MULTIPLE. Gives MOFKA_PY_ERR_GENERIC in a library built without MPI. */
MOFKA_PY_API int mofka_py_mpi_fabric_create_f(int32_t comm, const mofka_py_mpi_options_t* options,
                                              mofka_py_mpi_fabric_t* mpi_fabric);
/** Whether this rank hosts partitions / may use the fabric (1 or 0). */
MOFKA_PY_API int mofka_py_mpi_fabric_is_server(mofka_py_mpi_fabric_t mpi_fabric, int* is_server);
MOFKA_PY_API int mofka_py_mpi_fabric_is_client(mofka_py_mpi_fabric_t mpi_fabric, int* is_client);
/** The fabric of a client rank (a new handle to release; it is closed by mofka_py_mpi_fabric_close()). */
MOFKA_PY_API int mofka_py_mpi_fabric_fabric(mofka_py_mpi_fabric_t mpi_fabric, mofka_py_fabric_t* fabric);
/** Collective: clients leave, servers serve until every client left, then stop. */
MOFKA_PY_API int mofka_py_mpi_fabric_close(mofka_py_mpi_fabric_t mpi_fabric);
/** Close (if not closed; collective then) and free the handle. */
MOFKA_PY_API int mofka_py_mpi_fabric_release(mofka_py_mpi_fabric_t mpi_fabric);
/** For programs without MPI bindings of their own (e.g. Fortran built without an MPI module):
 *  initialise MPI with MPI_THREAD_MULTIPLE if it is not yet, and give MPI_COMM_WORLD's Fortran
 *  handle, this process's rank and the size (each pointer may be NULL). */
MOFKA_PY_API int mofka_py_mpi_init(int32_t* comm_world, int32_t* rank, int32_t* size);
/** MPI_Finalize, if this library's mofka_py_mpi_init() initialised MPI (otherwise nothing). */
MOFKA_PY_API int mofka_py_mpi_finalize(void);

/* cffi-end */

#ifdef __cplusplus
} /* extern "C" */
#endif

/* A C program with <mpi.h> may pass an MPI_Comm directly. */
#if defined(MPI_VERSION) && !defined(MOFKA_PY_NO_MPI_HELPERS)
/** mofka_py_mpi_fabric_create_f() taking an MPI_Comm. */
static inline int mofka_py_mpi_fabric_create(MPI_Comm comm, const mofka_py_mpi_options_t* options,
                                             mofka_py_mpi_fabric_t* mpi_fabric) {
    return mofka_py_mpi_fabric_create_f((int32_t)MPI_Comm_c2f(comm), options, mpi_fabric);
}
#endif

#endif /* MOFKA_PY_H */
