#ifndef ZNBD_CFUSE3_FUSE_RING_H
#define ZNBD_CFUSE3_FUSE_RING_H
/* FUSE over io_uring (Linux 6.14+): the uapi structs, which Debian 12's headers predate,
   and a minimal io_uring with 128-byte SQEs, driven by raw syscalls (no liburing needed). */
#include <errno.h>
#include <linux/io_uring.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* FUSE_INIT: FUSE_INIT_EXT in flags, FUSE_OVER_IO_URING (bit 41) in flags2. */
static const uint32_t znbd_fuse_init_ext = 1u << 30;
static const uint32_t znbd_fuse_over_io_uring_flags2 = 1u << 9;

enum { znbd_fuse_ring_register = 1, znbd_fuse_ring_commit_and_fetch = 2 };

struct znbd_fuse_ring_ent_in_out {
    uint64_t flags;
    uint64_t commit_id;
    uint32_t payload_sz;
    uint32_t padding;
    uint64_t reserved;
};

/* One ring entry's header buffer: the fuse_in_header (or fuse_out_header), the request's
   first argument, and the entry's bookkeeping. */
struct znbd_fuse_ring_header {
    char in_out[128];
    char op_in[128];
    struct znbd_fuse_ring_ent_in_out ent;
};

struct znbd_fuse_ring_cmd {
    uint64_t flags;
    uint64_t commit_id;
    uint16_t qid;
    uint8_t padding[6];
};

struct znbd_uring {
    int fd;
    unsigned sq_entries;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_cqe *cqes;
    char *sqes;
    void *sq_map, *cq_map;
    size_t sq_map_size, cq_map_size, sqes_size;
    unsigned prepared; /* SQEs filled, the next tail */
};

/* A ring whose task work runs only when its one thread waits for completions. Returns 0 or -errno. */
static inline int znbd_uring_init(struct znbd_uring *ring, unsigned entries) {
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    memset(ring, 0, sizeof *ring);
    params.flags = IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int fd = (int)syscall(__NR_io_uring_setup, entries, &params);
    if (fd < 0) return -errno;
    ring->fd = fd;
    ring->sq_entries = params.sq_entries;
    ring->sq_map_size = params.sq_off.array + params.sq_entries * sizeof(unsigned);
    ring->cq_map_size = params.cq_off.cqes + params.cq_entries * sizeof(struct io_uring_cqe);
    int single = (params.features & IORING_FEAT_SINGLE_MMAP) != 0;
    if (single && ring->cq_map_size > ring->sq_map_size) ring->sq_map_size = ring->cq_map_size;
    ring->sq_map = mmap(0, ring->sq_map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    if (ring->sq_map == MAP_FAILED) goto fail;
    ring->cq_map = single ? ring->sq_map
        : mmap(0, ring->cq_map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
    if (ring->cq_map == MAP_FAILED) goto fail;
    ring->sqes_size = (size_t)params.sq_entries * 128;
    ring->sqes = mmap(0, ring->sqes_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (ring->sqes == MAP_FAILED) goto fail;
    char *sq = ring->sq_map, *cq = ring->cq_map;
    ring->sq_head = (unsigned *)(sq + params.sq_off.head);
    ring->sq_tail = (unsigned *)(sq + params.sq_off.tail);
    ring->sq_mask = (unsigned *)(sq + params.sq_off.ring_mask);
    ring->sq_array = (unsigned *)(sq + params.sq_off.array);
    ring->cq_head = (unsigned *)(cq + params.cq_off.head);
    ring->cq_tail = (unsigned *)(cq + params.cq_off.tail);
    ring->cq_mask = (unsigned *)(cq + params.cq_off.ring_mask);
    ring->cqes = (struct io_uring_cqe *)(cq + params.cq_off.cqes);
    ring->prepared = *ring->sq_tail;
    return 0;
fail:;
    int error = errno;
    if (ring->sqes && ring->sqes != MAP_FAILED) munmap(ring->sqes, ring->sqes_size);
    if (ring->cq_map && ring->cq_map != MAP_FAILED && ring->cq_map != ring->sq_map) munmap(ring->cq_map, ring->cq_map_size);
    if (ring->sq_map && ring->sq_map != MAP_FAILED) munmap(ring->sq_map, ring->sq_map_size);
    close(fd);
    return -error;
}

static inline void znbd_uring_destroy(struct znbd_uring *ring) {
    munmap(ring->sqes, ring->sqes_size);
    if (ring->cq_map != ring->sq_map) munmap(ring->cq_map, ring->cq_map_size);
    munmap(ring->sq_map, ring->sq_map_size);
    close(ring->fd);
}

/* Queues a FUSE ring command for entry `user_data`: REGISTER names the entry's two buffers,
   COMMIT_AND_FETCH answers request `commit_id`. Returns 0, or -EBUSY when the SQ is full. */
static inline int znbd_fuse_ring_prepare(struct znbd_uring *ring, int fuse_fd, uint32_t op, uint16_t qid,
                                         uint64_t commit_id, const struct iovec *buffers, uint64_t user_data) {
    unsigned head = __atomic_load_n(ring->sq_head, __ATOMIC_ACQUIRE);
    if (ring->prepared - head >= ring->sq_entries) return -EBUSY;
    unsigned index = ring->prepared & *ring->sq_mask;
    struct io_uring_sqe *sqe = (struct io_uring_sqe *)(ring->sqes + (size_t)index * 128);
    memset(sqe, 0, 128);
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = fuse_fd;
    sqe->cmd_op = op;
    sqe->addr = (uint64_t)(uintptr_t)buffers;
    sqe->len = 2;
    sqe->user_data = user_data;
    struct znbd_fuse_ring_cmd *command = (struct znbd_fuse_ring_cmd *)sqe->cmd;
    command->commit_id = commit_id;
    command->qid = qid;
    ring->sq_array[index] = index;
    ring->prepared++;
    return 0;
}

/* Submits what was prepared and waits for `wait` completions. Returns 0 or -errno. */
static inline int znbd_uring_submit_and_wait(struct znbd_uring *ring, unsigned wait) {
    __atomic_store_n(ring->sq_tail, ring->prepared, __ATOMIC_RELEASE);
    unsigned pending = ring->prepared - __atomic_load_n(ring->sq_head, __ATOMIC_ACQUIRE);
    int result = (int)syscall(__NR_io_uring_enter, ring->fd, pending, wait, wait ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
    return result < 0 ? -errno : 0;
}

/* Takes the next completion: 1 with its user_data and result, or 0 when there is none. */
static inline int znbd_uring_next_completion(struct znbd_uring *ring, uint64_t *user_data, int32_t *result) {
    unsigned head = *ring->cq_head;
    if (head == __atomic_load_n(ring->cq_tail, __ATOMIC_ACQUIRE)) return 0;
    struct io_uring_cqe *completion = &ring->cqes[head & *ring->cq_mask];
    *user_data = completion->user_data;
    *result = completion->res;
    __atomic_store_n(ring->cq_head, head + 1, __ATOMIC_RELEASE);
    return 1;
}
#endif
