#ifndef ZNBD_CFUSE3_SHIM_H
#define ZNBD_CFUSE3_SHIM_H
/* libfuse 3.14's low-level API (fuse_session_custom_io, fuse_loop_config). */
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <linux/fuse.h>
#include "fuse_ring.h"

/* ioctl is variadic and FUSE_DEV_IOC_CLONE a function-like macro: neither reaches Swift.
   Attaches `fd` (a fresh open of /dev/fuse) to the connection of `session_fd`. */
static inline int znbd_fuse_clone_device(int fd, int session_fd) {
    uint32_t source = (uint32_t)session_fd;
    return ioctl(fd, FUSE_DEV_IOC_CLONE, &source);
}

/* FOPEN_PARALLEL_DIRECT_WRITES (Linux 6.2+), which libfuse 3.14's fuse_file_info cannot carry. */
static const uint32_t znbd_fopen_parallel_direct_writes = FOPEN_PARALLEL_DIRECT_WRITES;
static const uint32_t znbd_fopen_direct_io = FOPEN_DIRECT_IO;
#endif
