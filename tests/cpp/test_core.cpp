// C++ tests of the core without Python: the library is usable from a C++ simulation.
// Plain assertions with messages; exits non-zero on the first failure.
#include "mofka_py/Consumer.hpp"
#include "mofka_py/Crc32c.hpp"
#include "mofka_py/Error.hpp"
#include "mofka_py/Fabric.hpp"
#include "mofka_py/Producer.hpp"
#include "mofka_py/Sha256.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace mofka_py;

static int g_checks = 0, g_failed = 0;
#define CHECK(cond)                                                                 \
    do {                                                                            \
        ++g_checks;                                                                 \
        if (!(cond)) {                                                              \
            ++g_failed;                                                             \
            std::fprintf(stderr, "[%s:%d] check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                           \
    } while (0)

static void testCrc() {
    const char* v = "123456789";
    CHECK(crc32c(0, v, 9) == 0xE3069283u);
    std::vector<uint8_t> buf(100000);
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = uint8_t(i * 131 + 7);
    for (size_t n : {0ul, 1ul, 7ul, 8ul, 63ul, 24576ul, 49153ul, 100000ul})
        CHECK(crc32c(0, buf.data(), n) == crc32cPortable(0, buf.data(), n));
    uint32_t split = crc32c(crc32c(0, buf.data(), 30000), buf.data() + 30000, 70000);
    CHECK(split == crc32c(0, buf.data(), 100000));
}

static void testSha() {
    // FIPS 180-2 "abc" and RFC 4231 test case 2.
    Digest d = sha256("abc", 3);
    CHECK(d[0] == 0xba && d[1] == 0x78 && d[31] == 0xad);
    const char* msg = "what do ya want for nothing?";
    Digest h = hmacSha256("Jefe", msg, std::strlen(msg));
    CHECK(h[0] == 0x5b && h[1] == 0xdc && h[31] == 0x43);
}

static void roundTrip(const std::string& url) {
    Fabric fab = Fabric::connect(url);
    TopicConfig cfg;
    cfg.partitions = 3;
    fab.client()->createTopic("t", cfg);
    std::vector<double> field(1000);
    for (size_t i = 0; i < field.size(); ++i) field[i] = double(i) * 0.5;
    {
        Producer prod(fab.client(), "t", ProducerOptions{});
        std::vector<Future> futs;
        for (int i = 0; i < 300; ++i) {
            std::string meta = "{\"i\":" + std::to_string(i) + "}";
            DataRef d{field.data(), field.size() * sizeof(double), nullptr};
            futs.push_back(prod.push(meta.data(), meta.size(), &d, 1, i % 3, nullptr, 0, true));
        }
        prod.flush(-1);
        for (int i = 0; i < 300; ++i) CHECK(futs[size_t(i)].wait(0).partition == uint32_t(i % 3));
        prod.close();
    }
    fab.client()->markComplete("t");
    ConsumerOptions co;
    co.start = StartPosition::Earliest;
    Consumer cons(fab.client(), "t", co);
    int n = 0;
    std::vector<uint64_t> last(3, 0);
    while (auto ev = cons.pull(5000)) {
        CHECK(ev->data.size == field.size() * sizeof(double));
        CHECK(std::memcmp(ev->data.data, field.data(), ev->data.size) == 0);
        CHECK(n < 3 || ev->offset >= last[ev->partition]);
        last[ev->partition] = ev->offset;
        ++n;
    }
    CHECK(n == 300);
    CHECK(cons.exhausted());
    cons.close();
    fab.close();
}

static void testErrors() {
    bool threw = false;
    try {
        Fabric::connect("nope://x");
    } catch (const Error& e) {
        threw = e.code() == ErrorCode::InvalidArgument;
    }
    CHECK(threw);
    Fabric fab = Fabric::connect("memory://");
    threw = false;
    try {
        fab.client()->describeTopic("missing");
    } catch (const Error& e) {
        threw = e.code() == ErrorCode::TopicNotFound;
    }
    CHECK(threw);
    fab.close();
}

int main() {
    testCrc();
    testSha();
    roundTrip("memory://");
    char dir[] = "/tmp/mofka-cpp-test-XXXXXX";
    if (!mkdtemp(dir)) return 2;
    roundTrip(std::string("file://") + dir + "/fab");
    {
        Fabric again = Fabric::connect(std::string("file://") + dir + "/fab"); // reopens what was written
        CHECK(again.client()->describeTopic("t").partitions.size() == 3);
        again.close();
    }
    std::string rm = std::string("rm -rf ") + dir;
    if (std::system(rm.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", dir);
    testErrors();
    std::printf("%d passed, %d failed\n", g_checks - g_failed, g_failed);
    return g_failed ? 1 : 0;
}
