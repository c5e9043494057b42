#define _GNU_SOURCE
#include "CPlatform.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/falloc.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/futex.h>
#include <pthread.h>
#include <semaphore.h>
#include <time.h>
#include <spawn.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>

enum { thread_name_capacity = 16 };  // TASK_COMM_LEN, with the terminating NUL

int cplatform_set_current_thread_name(const char *name) {
    char truncated[thread_name_capacity];
    strncpy(truncated, name, thread_name_capacity - 1);
    truncated[thread_name_capacity - 1] = '\0';
    return pthread_setname_np(pthread_self(), truncated);
}

int cplatform_prctl_set_io_flusher(int on) {
    return prctl(PR_SET_IO_FLUSHER, (unsigned long)on, 0UL, 0UL, 0UL);
}

int cplatform_mlock_on_fault(const void *address, size_t length) {
    return mlock2(address, length, MLOCK_ONFAULT);
}

int cplatform_mlockall_on_fault(void) {
    return mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT);
}

#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif

int cplatform_madvise_dontneed_locked(void *address, size_t length) {
    return madvise(address, length, MADV_DONTNEED_LOCKED);
}

const short cplatform_posix_spawn_setsigmask = POSIX_SPAWN_SETSIGMASK;
const short cplatform_posix_spawn_setsigdef = POSIX_SPAWN_SETSIGDEF;
const short cplatform_posix_spawn_setsid = POSIX_SPAWN_SETSID;

int cplatform_open(const char *path, int flags, mode_t mode) {
    return open(path, flags, mode);
}

int cplatform_openat(int directory, const char *path, int flags, mode_t mode) {
    return openat(directory, path, flags, mode);
}

int cplatform_fcntl(int fd, int command, int argument) {
    return fcntl(fd, command, argument);
}

const int cplatform_o_direct = O_DIRECT;

int cplatform_punch_hole(int fd, off_t offset, off_t length) {
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
}

int cplatform_block_device_size(int fd, unsigned long long *bytes) {
    uint64_t size = 0;
    int result = ioctl(fd, BLKGETSIZE64, &size);
    *bytes = size;
    return result;
}

int cplatform_block_device_logical_block_size(int fd, int *bytes) {
    return ioctl(fd, BLKSSZGET, bytes);
}

int cplatform_block_device_discard(int fd, unsigned long long offset, unsigned long long length) {
    uint64_t range[2] = {offset, length};
    return ioctl(fd, BLKDISCARD, range);
}

int cplatform_peer_uid(int fd, uid_t *uid) {
    struct ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
    *uid = credentials.uid;
    return 0;
}

const char *cplatform_errno_name(int error) {
    return strerrorname_np(error);
}

int cplatform_semaphore_wait_seconds(void *semaphore, unsigned int seconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += seconds;
    return sem_clockwait((sem_t *)semaphore, CLOCK_MONOTONIC, &deadline);
}

void cplatform_futex_wait(const void *word, unsigned int expected) {
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

void cplatform_futex_wake_one(const void *word) {
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}
