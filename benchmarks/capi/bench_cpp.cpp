// The C++ side of benchmarks/bench_capi.py: the loop of bench_c.c on the C++ API, with the
// same metadata bytes, topic settings, producer options and output (one JSON line per pass).
//
//   bench_cpp SIZE EVENTS WARM_PASSES
//
// The data is handed to the producer the way mofka_py_producer_push() does it (CApi.cpp): a
// DataRef whose owner owns nothing, so data of 16 KiB and more is referenced and smaller data
// copied, and the returned Future is dropped at once. What differs from bench_c is then only
// the C layer: the handle lookup, the exception guard and the thread's status.
// Build: c++ -O2 -std=c++17 -I<prefix>/include bench_cpp.cpp <prefix>/lib/libmofka_py_core.a -pthread
#include <mofka_py/Error.hpp>
#include <mofka_py/Fabric.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <vector>

namespace {

// The same metadata bytes in all three programs.
const char kMeta[] = "{\"step\": 1, \"var\": \"u\"}";
constexpr uint64_t kSegmentBytes = 64ull << 20;
constexpr uint64_t kRetentionBytes = 256ull << 20;

double nowS() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

unsigned long long arg(const char* s, const char* name) {
    char* end = nullptr;
    unsigned long long v = std::strtoull(s, &end, 10);
    if (!*s || *end) {
        std::fprintf(stderr, "bench_cpp: %s must be a whole number, not '%s'\n", name, s);
        std::exit(2);
    }
    return v;
}

int run(size_t size, unsigned long long events, unsigned long long warm) {
    std::vector<unsigned char> data(size ? size : 1);
    for (size_t i = 0; i < size; ++i) data[i] = static_cast<unsigned char>(i * 31u + 7u);
    const void* buf = data.data();

    // As mofka_py_connect("memory://") and mofka_py_topic_create() with the same mofka_py_topic_config_t:
    // only the fields the C program sets are given, the fabric's defaults fill the others.
    mofka_py::Fabric fab = mofka_py::Fabric::connect("memory://", mofka_py::FabricOptions{});
    mofka_py::TopicConfig cfg;
    cfg.partitions = 1;
    cfg.segmentBytes = kSegmentBytes;
    cfg.retentionBytes = kRetentionBytes;
    cfg.setFields = mofka_py::kSegmentBytes | mofka_py::kRetentionBytes;
    fab.createTopic("bench", cfg);
    mofka_py::Topic topic = fab.topic("bench");
    mofka_py::Producer prod = topic.producer(mofka_py::ProducerOptions{});

    for (unsigned long long pass = 0; pass <= warm; ++pass) {
        double t0 = nowS();
        for (unsigned long long i = 0; i < events; ++i) {
            // As mofka_py_producer_push(): an owner that owns nothing (the aliasing constructor of an empty one).
            mofka_py::DataRef ref{buf, size, size ? mofka_py::Owner(mofka_py::Owner(), buf) : mofka_py::Owner()};
            prod.push(kMeta, sizeof kMeta - 1, &ref, size ? 1 : 0, -1, nullptr, 0, true);
        }
        prod.flush(-1);
        double seconds = nowS() - t0;
        std::printf("{\"api\": \"cpp\", \"size\": %zu, \"events\": %llu, \"seconds\": %.9f, \"pass\": %llu}\n", size,
                    events, seconds, pass);
        std::fflush(stdout);
    }

    prod.close(-1);
    fab.close();
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: bench_cpp SIZE EVENTS WARM_PASSES\n");
        return 2;
    }
    try {
        return run(size_t(arg(argv[1], "SIZE")), arg(argv[2], "EVENTS"), arg(argv[3], "WARM_PASSES"));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_cpp: %s\n", e.what());
        return 1;
    }
}
