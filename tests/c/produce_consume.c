/* A produce/consume cycle through the C API, run by tests/integration/test_capi_native.py
 * (plainly and under valgrind's leak checker). Exit 0 when every check passed.
 * Usage: produce_consume DIR  (a file:// fabric is created in DIR) */
#include <mofka_py/mofka_py.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                                                    \
    do {                                                                                                               \
        int rc_ = (call);                                                                                              \
        if (rc_ != MOFKA_PY_OK) {                                                                                      \
            fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #call, mofka_py_error_name(rc_),              \
                    mofka_py_last_error());                                                                            \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

#define EXPECT(cond)                                                                                                   \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond);                                        \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

enum { EVENTS = 300, BIG = 65536 };

static int released = 0;
static void on_release(void* ctx) {
    free(ctx);
    ++released;
}

int main(int argc, char** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    char url[4096];
    snprintf(url, sizeof url, "file://%s", argv[1]);
    EXPECT(mofka_py_abi_version() == MOFKA_PY_C_ABI_VERSION);

    mofka_py_fabric_t fab;
    mofka_py_topic_t topic;
    mofka_py_producer_t prod;
    CHECK(mofka_py_connect(url, &fab));
    mofka_py_topic_config_t cfg;
    CHECK(mofka_py_topic_config_init(&cfg));
    cfg.partitions = 3;
    CHECK(mofka_py_topic_create(fab, "cycle", &cfg));
    CHECK(mofka_py_topic_open(fab, "cycle", &topic));
    CHECK(mofka_py_producer_create(topic, NULL, &prod));

    static double field[BIG / sizeof(double)];
    for (size_t i = 0; i < BIG / sizeof(double); ++i) field[i] = (double)i;
    for (int i = 0; i < EVENTS; ++i) {
        char meta[64];
        int len = snprintf(meta, sizeof meta, "{\"i\": %d}", i);
        if (i % 3 == 0) { /* zero copy, with a future */
            mofka_py_future_t fut;
            CHECK(mofka_py_producer_push(prod, meta, (size_t)len, field, sizeof field, -1, &fut));
            if (i % 2 == 0) {
                uint64_t off;
                CHECK(mofka_py_future_wait(fut, -1, NULL, &off));
            }
            CHECK(mofka_py_future_release(fut));
        } else if (i % 3 == 1) { /* heap pieces handed over: freed by the release callback */
            size_t n = (i % 2) ? 100 : 40000;
            char* buf = malloc(n);
            memset(buf, i & 0xff, n);
            mofka_py_buffer_t piece = {buf, n};
            CHECK(mofka_py_producer_push_ex(prod, meta, (size_t)len, &piece, 1, -1, "k", 1, 0, on_release, buf, NULL));
        } else { /* metadata only */
            CHECK(mofka_py_producer_push(prod, meta, (size_t)len, NULL, 0, -1, NULL));
        }
    }
    CHECK(mofka_py_producer_flush(prod, -1));
    EXPECT(released == EVENTS / 3);
    /* Error paths allocate messages and must not leak either. */
    EXPECT(mofka_py_topic_open(fab, "missing", &topic) == MOFKA_PY_ERR_TOPIC_NOT_FOUND);
    EXPECT(mofka_py_producer_push(NULL, "{}", 2, NULL, 0, -1, NULL) == MOFKA_PY_ERR_INVALID_ARGUMENT);
    CHECK(mofka_py_producer_release(prod));
    EXPECT(mofka_py_producer_flush(prod, -1) == MOFKA_PY_ERR_INVALID_ARGUMENT);
    CHECK(mofka_py_topic_mark_complete(topic));

    mofka_py_consumer_options_t co;
    CHECK(mofka_py_consumer_options_init(&co));
    co.group = "checkers";
    co.start = MOFKA_PY_START_EARLIEST;
    mofka_py_consumer_t cons;
    CHECK(mofka_py_consumer_create(topic, &co, &cons));
    mofka_py_event_t ev;
    ev.struct_size = sizeof ev;
    int seen = 0, rc;
    while ((rc = mofka_py_consumer_pull(cons, 10000, &ev)) == MOFKA_PY_OK) {
        int i = -1;
        EXPECT(sscanf(ev.metadata, "{\"i\": %d}", &i) == 1 && i >= 0 && i < EVENTS);
        if (i % 3 == 0) EXPECT(ev.data_size == sizeof field && memcmp(ev.data, field, sizeof field) == 0);
        if (i % 3 == 2) EXPECT(ev.data_size == 0);
        CHECK(mofka_py_consumer_ack(cons, &ev));
        CHECK(mofka_py_event_release(&ev));
        ++seen;
    }
    EXPECT(rc == MOFKA_PY_END);
    EXPECT(seen == EVENTS);
    CHECK(mofka_py_consumer_commit(cons));
    CHECK(mofka_py_consumer_release(cons));
    char names[256];
    size_t needed = 0;
    CHECK(mofka_py_fabric_topics(fab, names, sizeof names, &needed));
    EXPECT(strcmp(names, "cycle\n") == 0);
    CHECK(mofka_py_topic_release(topic));
    CHECK(mofka_py_fabric_release(fab));
    printf("ok %d events\n", seen);
    return 0;
}
