#include "log/Sync.hpp"

#include "mofka_py/Error.hpp"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <unistd.h>

namespace mofka_py {
namespace {

/// Syncs still to succeed before the armed failure; -1: not armed.
std::atomic<int> g_failAfter{-1};

/// Syncs tried (see syncCountForTesting()).
std::atomic<uint64_t> g_syncs{0};

/// The trigger file named by MOFKA_PY_TEST_FAIL_SYNC (empty: none), read once.
const std::string& triggerFile() {
    static const std::string path = [] {
        const char* v = std::getenv("MOFKA_PY_TEST_FAIL_SYNC");
        return std::string(v ? v : "");
    }();
    return path;
}

/// True if the test hook says this sync fails.
bool failThisSync() {
    int n = g_failAfter.load(std::memory_order_relaxed);
    while (n >= 0) {
        if (g_failAfter.compare_exchange_weak(n, n - 1, std::memory_order_relaxed)) {
            if (n == 0) return true;
            break;
        }
    }
    const std::string& trigger = triggerFile();
    return !trigger.empty() && ::unlink(trigger.c_str()) == 0; // one failure per trigger file
}

} // namespace

int syncFd(int fd, bool dataOnly) {
    g_syncs.fetch_add(1, std::memory_order_relaxed);
    if (failThisSync()) return EIO;
    // Any failure counts, EINTR included: a retry could succeed without pages the kernel dropped.
    return (dataOnly ? ::fdatasync(fd) : ::fsync(fd)) == 0 ? 0 : errno;
}

int syncDirectory(const std::string& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throwError(ErrorCode::Storage, "cannot open directory " + dir + " to sync it", true);
    int err = syncFd(fd, false);
    ::close(fd);
    return err == EINVAL ? 0 : err;
}

uint64_t syncCountForTesting() { return g_syncs.load(std::memory_order_relaxed); }

void failSyncForTesting(int skip) { g_failAfter.store(skip < 0 ? -1 : skip, std::memory_order_relaxed); }

} // namespace mofka_py
