/*
 * The C side of benchmarks/bench_capi.py: push N events of S data bytes through the C ABI
 * (mofka_py.h) into a memory:// fabric, then flush; one JSON line per pass on stdout.
 *
 *   bench_c SIZE EVENTS WARM_PASSES
 *
 * Pass 0 runs in the fresh process (cold), passes 1..WARM_PASSES reuse the topic and the
 * producer (warm). The topic keeps at most 256 MiB (retention_bytes, 64 MiB segments), so
 * memory stays bounded over the passes. bench_cpp.cpp and bench_py.py do the same on the C++
 * and Python APIs with the same metadata bytes, topic settings and data.
 * Build: cc -O2 -std=c11 -I<prefix>/include bench_c.c -L<prefix>/lib -lmofka_py_c
 */
#define _POSIX_C_SOURCE 199309L
#include <mofka_py/mofka_py.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The same metadata bytes in all three programs. */
static const char META[] = "{\"step\": 1, \"var\": \"u\"}";
#define SEGMENT_BYTES (64ull << 20)
#define RETENTION_BYTES (256ull << 20)

static void check(int status, const char* what) {
    if (status != MOFKA_PY_OK) {
        fprintf(stderr, "bench_c: %s failed: %s (%s)\n", what, mofka_py_error_name(status), mofka_py_last_error());
        exit(1);
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static unsigned long long arg(const char* s, const char* name) {
    char* end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end) {
        fprintf(stderr, "bench_c: %s must be a whole number, not '%s'\n", name, s);
        exit(2);
    }
    return v;
}

int main(int argc, char** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: bench_c SIZE EVENTS WARM_PASSES\n");
        return 2;
    }
    size_t size = (size_t)arg(argv[1], "SIZE");
    unsigned long long events = arg(argv[2], "EVENTS");
    unsigned long long warm = arg(argv[3], "WARM_PASSES");

    unsigned char* data = malloc(size ? size : 1);
    if (!data) {
        fprintf(stderr, "bench_c: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < size; ++i) data[i] = (unsigned char)(i * 31u + 7u);

    mofka_py_fabric_t fab;
    mofka_py_topic_t topic;
    mofka_py_producer_t prod;
    mofka_py_topic_config_t cfg;
    check(mofka_py_connect("memory://", &fab), "mofka_py_connect");
    check(mofka_py_topic_config_init(&cfg), "mofka_py_topic_config_init");
    cfg.partitions = 1;
    cfg.segment_bytes = SEGMENT_BYTES;
    cfg.retention_bytes = RETENTION_BYTES;
    check(mofka_py_topic_create(fab, "bench", &cfg), "mofka_py_topic_create");
    check(mofka_py_topic_open(fab, "bench", &topic), "mofka_py_topic_open");
    check(mofka_py_producer_create(topic, NULL, &prod), "mofka_py_producer_create");

    for (unsigned long long pass = 0; pass <= warm; ++pass) {
        double t0 = now_s();
        for (unsigned long long i = 0; i < events; ++i) {
            int st = mofka_py_producer_push(prod, META, sizeof META - 1, data, size, -1, NULL);
            if (st != MOFKA_PY_OK) check(st, "mofka_py_producer_push");
        }
        check(mofka_py_producer_flush(prod, -1), "mofka_py_producer_flush");
        double seconds = now_s() - t0;
        printf("{\"api\": \"c\", \"size\": %zu, \"events\": %llu, \"seconds\": %.9f, \"pass\": %llu}\n", size, events,
               seconds, pass);
        fflush(stdout);
    }

    check(mofka_py_producer_release(prod), "mofka_py_producer_release");
    check(mofka_py_topic_release(topic), "mofka_py_topic_release");
    check(mofka_py_fabric_release(fab), "mofka_py_fabric_release");
    free(data);
    return 0;
}
