/*
 * relay: bridge a guest Unix socket to virtio-serial ports.
 *
 *   relay LISTEN_SOCKET PORT_DEVICE [PORT_DEVICE ...]
 *
 * Listens on LISTEN_SOCKET.  Every accepted connection is paired with the
 * first PORT_DEVICE not in use (one connection per port), which is opened
 * only then, so that data left from an earlier host connection is discarded
 * by the kernel on close.  Bytes are copied both ways with non-blocking I/O
 * and fixed buffers; when either side reaches EOF or fails, both are closed
 * and the port becomes free again.  A connection that finds no free port is
 * closed at once.
 *
 * Written for the znbd VM swap test: the relay sits in the swap I/O path, so
 * it locks itself in memory, opts out of the OOM killer, marks itself an I/O
 * flusher and never allocates after start-up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

#define MAXPORTS 8
#define BUFSZ (256 * 1024)

struct pipe_buf {
    unsigned char data[BUFSZ];
    size_t head, len; /* ring buffer */
    int eof;          /* source reached EOF */
};

struct conn {
    const char *port_path;
    int sock, port;
    struct pipe_buf to_port, to_sock;
    unsigned long long bytes_to_port, bytes_to_sock;
};

static struct conn conns[MAXPORTS];
static int nports;

static void report_active(void)
{
    int active = 0;
    for (int i = 0; i < nports; i++) active += conns[i].sock >= 0;
    fprintf(stderr, "relay: active connections: %d\n", active);
}

static void setnb(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static void close_conn(struct conn *c, const char *why)
{
    fprintf(stderr, "relay: %s: closed (%s), %llu bytes to host, %llu to guest\n",
            c->port_path, why, c->bytes_to_port, c->bytes_to_sock);
    if (c->sock >= 0) close(c->sock);
    if (c->port >= 0) close(c->port);
    c->sock = c->port = -1;
    report_active();
}

/* read from fd into ring; returns -1 on error, 0 on EOF, 1 otherwise */
static int fill(int fd, struct pipe_buf *b)
{
    while (b->len < BUFSZ) {
        size_t tail = (b->head + b->len) % BUFSZ;
        size_t room = (tail >= b->head) ? BUFSZ - tail : b->head - tail;
        if (room > BUFSZ - b->len) room = BUFSZ - b->len;
        ssize_t n = read(fd, b->data + tail, room);
        if (n > 0) { b->len += (size_t)n; continue; }
        if (n == 0) { b->eof = 1; return 0; }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 1;
        return -1;
    }
    return 1;
}

/* write ring to fd; returns -1 on error, 1 otherwise */
static int drain(int fd, struct pipe_buf *b, unsigned long long *count)
{
    while (b->len > 0) {
        size_t chunk = BUFSZ - b->head;
        if (chunk > b->len) chunk = b->len;
        ssize_t n = write(fd, b->data + b->head, chunk);
        if (n > 0) {
            b->head = (b->head + (size_t)n) % BUFSZ;
            b->len -= (size_t)n;
            *count += (unsigned long long)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 1;
        return -1;
    }
    if (b->len == 0) b->head = 0;
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc - 2 > MAXPORTS) {
        fprintf(stderr, "usage: relay LISTEN_SOCKET PORT_DEVICE [PORT_DEVICE ...] (max %d)\n", MAXPORTS);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) perror("relay: mlockall");
    if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) != 0) perror("relay: PR_SET_IO_FLUSHER");
    int fd = open("/proc/self/oom_score_adj", O_WRONLY);
    if (fd >= 0) { if (write(fd, "-1000", 5) < 0) perror("relay: oom_score_adj"); close(fd); }

    nports = argc - 2;
    for (int i = 0; i < nports; i++) {
        conns[i].port_path = argv[i + 2];
        conns[i].sock = conns[i].port = -1;
    }

    int lsock = socket(AF_UNIX, SOCK_STREAM, 0);
    if (lsock < 0) { perror("relay: socket"); return 1; }
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(argv[1]) >= sizeof addr.sun_path) { fprintf(stderr, "relay: path too long\n"); return 1; }
    strcpy(addr.sun_path, argv[1]);
    unlink(argv[1]);
    if (bind(lsock, (struct sockaddr *)&addr, sizeof addr) != 0) { perror("relay: bind"); return 1; }
    if (listen(lsock, 16) != 0) { perror("relay: listen"); return 1; }
    setnb(lsock);
    fprintf(stderr, "relay: listening on %s for %d port(s)\n", argv[1], nports);

    struct pollfd pfd[1 + 2 * MAXPORTS];
    for (;;) {
        int n = 0;
        pfd[n++] = (struct pollfd){ .fd = lsock, .events = POLLIN };
        for (int i = 0; i < nports; i++) {
            struct conn *c = &conns[i];
            short se = 0, pe = 0;
            if (c->sock >= 0) {
                if (!c->to_port.eof && c->to_port.len < BUFSZ) se |= POLLIN;
                if (c->to_sock.len > 0) se |= POLLOUT;
                if (!c->to_sock.eof && c->to_sock.len < BUFSZ) pe |= POLLIN;
                if (c->to_port.len > 0) pe |= POLLOUT;
            }
            /* fd -1 entries are ignored by poll */
            pfd[n++] = (struct pollfd){ .fd = c->sock, .events = se };
            pfd[n++] = (struct pollfd){ .fd = c->port, .events = pe };
        }
        if (poll(pfd, (nfds_t)n, -1) < 0) {
            if (errno == EINTR) continue;
            perror("relay: poll");
            return 1;
        }
        if (pfd[0].revents & POLLIN) {
            int s;
            while ((s = accept4(lsock, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                struct conn *c = NULL;
                for (int i = 0; i < nports; i++)
                    if (conns[i].sock < 0) { c = &conns[i]; break; }
                if (!c) { fprintf(stderr, "relay: no free port, refusing connection\n"); close(s); continue; }
                int p = open(c->port_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
                if (p < 0) {
                    fprintf(stderr, "relay: open %s: %s\n", c->port_path, strerror(errno));
                    close(s);
                    continue;
                }
                c->sock = s;
                c->port = p;
                c->to_port.head = c->to_port.len = 0; c->to_port.eof = 0;
                c->to_sock.head = c->to_sock.len = 0; c->to_sock.eof = 0;
                c->bytes_to_port = c->bytes_to_sock = 0;
                fprintf(stderr, "relay: connection -> %s\n", c->port_path);
                report_active();
            }
        }
        for (int i = 0; i < nports; i++) {
            struct conn *c = &conns[i];
            if (c->sock < 0) continue;
            short sr = pfd[1 + 2 * i].revents, pr = pfd[2 + 2 * i].revents;
            /* Always try to make progress; the fds are non-blocking. */
            (void)sr; (void)pr;
            if (fill(c->sock, &c->to_port) < 0) { close_conn(c, "guest socket read error"); continue; }
            if (fill(c->port, &c->to_sock) < 0) { close_conn(c, "port read error"); continue; }
            if (drain(c->port, &c->to_port, &c->bytes_to_port) < 0) { close_conn(c, "port write error"); continue; }
            if (drain(c->sock, &c->to_sock, &c->bytes_to_sock) < 0) { close_conn(c, "guest socket write error"); continue; }
            /* EOF on either side ends the session once pending data is out. */
            if (c->to_sock.eof && c->to_sock.len == 0) { close_conn(c, "host side closed"); continue; }
            if (c->to_port.eof && c->to_port.len == 0) { close_conn(c, "guest side closed"); continue; }
        }
    }
}
