// Produce and consume one event through the installed headers and library.
#include <mofka_py/Fabric.hpp>
#include <mofka_py/Version.hpp>

#include <cstdio>
#include <cstring>

int main() {
    if (std::strcmp(MOFKA_PY_VERSION_STRING, EXPECTED_VERSION) != 0) {
        std::fprintf(stderr, "Version.hpp says %s, the CMake package %s\n", MOFKA_PY_VERSION_STRING, EXPECTED_VERSION);
        return 1;
    }
    mofka_py::Fabric fab = mofka_py::Fabric::connect("memory://");
    mofka_py::TopicConfig cfg;
    cfg.partitions = 2;
    mofka_py::Topic topic = fab.createTopic("frames", cfg);
    mofka_py::Producer prod = topic.producer();
    const char meta[] = "{\"frame\": 1}";
    prod.push(meta, sizeof(meta) - 1, nullptr, 0, -1, nullptr, 0, true).wait(-1);
    prod.close();
    topic.markComplete();
    mofka_py::ConsumerOptions co;
    co.start = mofka_py::StartPosition::Earliest;
    mofka_py::Consumer cons = topic.consumer(co);
    int n = 0;
    while (auto ev = cons.pull(1000)) ++n;
    cons.close();
    if (n != 1) {
        std::fprintf(stderr, "expected 1 event, got %d\n", n);
        return 1;
    }
    std::printf("mofka-py %s package OK\n", MOFKA_PY_VERSION_STRING);
    return 0;
}
