// Linux calls that Swift cannot make cleanly: variadic functions (prctl, open with a
// mode, fcntl with an argument, ioctl) and constants that need _GNU_SOURCE (MLOCK_ONFAULT,
// MCL_ONFAULT, PR_SET_IO_FLUSHER, POSIX_SPAWN_SETSID, O_DIRECT, FALLOC_FL_PUNCH_HOLE). Each wrapper returns what the
// libc call returns and leaves errno set on failure.
#ifndef CPLATFORM_H
#define CPLATFORM_H

#include <stddef.h>
#include <sys/types.h>

/// pthread_setname_np(pthread_self(), name) (prctl PR_SET_NAME underneath), truncated
/// to the kernel's 15 bytes; returns 0 or an error number.
int cplatform_set_current_thread_name(const char *name);

/// prctl(PR_SET_IO_FLUSHER, on): the calling thread does not recurse into I/O
/// reclaim and is not throttled by dirty-page limits (Linux 5.6+, CAP_SYS_RESOURCE).
int cplatform_prctl_set_io_flusher(int on);

/// mlock2(address, length, MLOCK_ONFAULT): lock pages as they fault in.
int cplatform_mlock_on_fault(const void *address, size_t length);

/// Waits on a semaphore until `seconds` from now on CLOCK_MONOTONIC (sem_clockwait,
/// which glibc only declares under _GNU_SOURCE). 0 when posted, else -1 with errno.
int cplatform_semaphore_wait_seconds(void *semaphore, unsigned int seconds);

/// mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT).
int cplatform_mlockall_on_fault(void);

/// madvise(address, length, MADV_DONTNEED_LOCKED): drops pages even when they are
/// locked, leaving the range locked (Linux 5.18+; EINVAL before).
int cplatform_madvise_dontneed_locked(void *address, size_t length);

/// posix_spawnattr_setflags values (POSIX_SPAWN_SETSID needs _GNU_SOURCE).
extern const short cplatform_posix_spawn_setsigmask;
extern const short cplatform_posix_spawn_setsigdef;
extern const short cplatform_posix_spawn_setsid;

/// open(path, flags, mode).
int cplatform_open(const char *path, int flags, mode_t mode);

/// openat(directory, path, flags, mode).
int cplatform_openat(int directory, const char *path, int flags, mode_t mode);

/// fcntl(fd, command, argument) for the integer-argument commands.
int cplatform_fcntl(int fd, int command, int argument);

/// O_DIRECT, for fcntl(F_SETFL): I/O that bypasses the page cache.
extern const int cplatform_o_direct;

/// fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length): frees the
/// range's blocks; the file keeps its size and the range reads back as zeros.
int cplatform_punch_hole(int fd, off_t offset, off_t length);

/// ioctl(fd, BLKGETSIZE64): a block device's size in bytes.
int cplatform_block_device_size(int fd, unsigned long long *bytes);

/// ioctl(fd, BLKSSZGET): a block device's logical block size (the O_DIRECT alignment).
int cplatform_block_device_logical_block_size(int fd, int *bytes);

/// ioctl(fd, BLKDISCARD, {offset, length}): tells the device the range is unused.
int cplatform_block_device_discard(int fd, unsigned long long offset, unsigned long long length);

/// getsockopt(SO_PEERCRED): the user id of the process at the other end of a Unix socket.
int cplatform_peer_uid(int fd, uid_t *uid);

/// strerrorname_np(error): the errno's symbolic name ("ENOSPC"), or NULL when unknown.
const char *cplatform_errno_name(int error);

/// futex(FUTEX_WAIT_PRIVATE): sleeps while the 32-bit `word` still holds `expected`
/// (returns at once otherwise, or on a wake-up or signal; callers re-check).
void cplatform_futex_wait(const void *word, unsigned int expected);

/// futex(FUTEX_WAKE_PRIVATE, 1): wakes one thread sleeping on `word`.
void cplatform_futex_wake_one(const void *word);

/// Tells the CPU this thread spins (x86 PAUSE, arm64 YIELD).
static inline void cplatform_spin_hint(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/// Asks the CPU to start loading [address, address + length) into its caches, one
/// request per 64-byte line, so the lines' misses overlap instead of following one
/// another. Only a hint: it never faults and changes no result.
static inline void cplatform_prefetch(const void *address, size_t length) {
    const char *line = (const char *)address;
    const char *end = line + length;
    for (; line < end; line += 64) __builtin_prefetch(line, 0, 3);
}

#endif
