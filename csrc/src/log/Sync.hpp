/**
 * @file Sync.hpp
 * @brief The core's one way to force a file or a directory to stable storage, with a
 *        test hook that makes syncs fail. Internal to the core (log and broker).
 *
 * Every result is checked by the callers and never retried: after a failed sync the
 * kernel may have dropped the written pages while marking them clean, so a second sync
 * that succeeds proves nothing (see PartitionLog, which becomes unwritable).
 */
#pragma once
#include <cstdint>
#include <string>

namespace mofka_py {

/// fdatasync (@p dataOnly) or fsync @p fd; returns 0, or the errno of the failure.
int syncFd(int fd, bool dataOnly);

/**
 * @brief fsync directory @p dir, so entries created or renamed in it reach the disk.
 *
 * Returns 0, or the errno of the failed fsync. EINVAL (a filesystem that cannot sync a
 * directory at all) counts as success. Throws a StorageError when the directory cannot
 * be opened: nothing was synced then, and nothing is known to be lost.
 */
int syncDirectory(const std::string& dir);

/**
 * @brief Test hook: after @p skip more successful syncs, the next one fails with EIO
 *        (without syncing). A negative @p skip disarms it. Not part of any public API.
 *
 * Processes can also arm it from outside (e.g. a Python test of the built module): when
 * the environment variable MOFKA_PY_TEST_FAIL_SYNC (read once, at the first sync) names a
 * file, a sync that finds that file removes it and fails with EIO.
 */
void failSyncForTesting(int skip);

/// Syncs tried so far in this process (syncFd(), syncDirectory()), failed ones included: lets a
/// test count how many fdatasyncs a workload took. Not part of any public API.
uint64_t syncCountForTesting();

} // namespace mofka_py
