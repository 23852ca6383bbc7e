// Plain TCP backend for scripts/bench: skips the ClientHello record, then behaves by port.
//
//   backend            listens on four 127.0.0.1 ports and prints
//                      `PORTS <rate> <sink> <source> <idle>` on stdout
//
//   rate    answers 64 bytes and closes (the connection-rate workload)
//   sink    reads everything until EOF, then closes (bulk up)
//   source  reads a little-endian u64 count, sends that many bytes, closes (bulk down)
//   idle    answers 1 byte ("through to the backend") and holds the connection until EOF
//
// It stops when stdin closes, so the bench cannot leave it behind. Single-threaded epoll.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FDS 65536
#define MAX_EVENTS 1024
#define IO_BUF (256 * 1024)
#define ANSWER_BYTES 64
#define TLS_RECORD_HEADER 5

enum { RATE = 0, SINK, SOURCE, IDLE, MODES };
enum { HEADER = 1, BODY, COUNT, SENDING, DRAINING, HOLDING };

struct conn {
  uint8_t mode;
  uint8_t state;
  uint8_t header[TLS_RECORD_HEADER];
  uint8_t have;       // bytes of header (or count) so far
  uint32_t body_left; // record bytes still to skip
  uint64_t to_send;
};

static struct conn conns[MAX_FDS];
static int listeners[MODES];
static uint8_t io_buf[IO_BUF];
static uint8_t zeros[IO_BUF];
static int ep;

static void die(const char *what) {
  perror(what);
  exit(2);
}

static int listen_on_any_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
  if (listen(fd, 4096) < 0) die("listen");
  return fd;
}

static int port_of(int fd) {
  struct sockaddr_in addr;
  socklen_t len = sizeof addr;
  if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0) die("getsockname");
  return ntohs(addr.sin_port);
}

static void end_conn(int fd) {
  conns[fd].state = 0;
  close(fd);
}

static void watch_writable(int fd) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.fd = fd};
  epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

/** Sends what is left of to_send. 1 when done, 0 to wait for EPOLLOUT, -1 on error. */
static int pump(int fd) {
  struct conn *c = &conns[fd];
  while (c->to_send > 0) {
    size_t chunk = c->to_send < IO_BUF ? (size_t)c->to_send : IO_BUF;
    ssize_t n = send(fd, zeros, chunk, MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    c->to_send -= (uint64_t)n;
  }
  return 1;
}

/**
 * Consumes `n` bytes read from `fd`. Returns 1 when the connection was closed here, else 0.
 * The ClientHello is one TLS record (node:tls sends it so); its length is in the header.
 */
static int feed(int fd, const uint8_t *data, size_t n) {
  struct conn *c = &conns[fd];
  while (n > 0) {
    switch (c->state) {
    case HEADER:
      c->header[c->have++] = *data++;
      n--;
      if (c->have == TLS_RECORD_HEADER) {
        c->body_left = ((uint32_t)c->header[3] << 8) | c->header[4];
        c->have = 0;
        c->state = BODY;
      }
      break;
    case BODY: {
      size_t skip = n < c->body_left ? n : c->body_left;
      c->body_left -= (uint32_t)skip;
      data += skip;
      n -= skip;
      break;
    }
    case COUNT:
      c->to_send |= (uint64_t)*data++ << (8 * c->have++);
      n--;
      if (c->have == 8) {
        c->state = SENDING;
        int r = pump(fd);
        if (r != 0) {
          end_conn(fd);
          return 1;
        }
        watch_writable(fd);
        return 0;
      }
      break;
    default:  // DRAINING, HOLDING, SENDING: the payload itself is not looked at
      return 0;
    }
    if (c->state == BODY && c->body_left == 0) {
      switch (c->mode) {
      case RATE:
        send(fd, zeros, ANSWER_BYTES, MSG_NOSIGNAL);
        end_conn(fd);
        return 1;
      case SINK:
        c->state = DRAINING;
        return 0;
      case SOURCE:
        c->state = COUNT;
        c->to_send = 0;
        break;
      case IDLE:
        send(fd, zeros, 1, MSG_NOSIGNAL);
        c->state = HOLDING;
        return 0;
      }
    }
  }
  return 0;
}

/** Reads until EAGAIN, EOF or a close decided by feed(). */
static void on_readable(int fd) {
  for (;;) {
    ssize_t n = read(fd, io_buf, sizeof io_buf);
    if (n > 0) {
      if (feed(fd, io_buf, (size_t)n)) return;
      continue;
    }
    if (n < 0 && errno == EAGAIN) return;
    end_conn(fd);  // EOF or error: the peer is done
    return;
  }
}

static void on_accept(int mode) {
  for (;;) {
    int fd = accept4(listeners[mode], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (fd >= MAX_FDS) {
      close(fd);
      continue;
    }
    struct conn *c = &conns[fd];
    memset(c, 0, sizeof *c);
    c->mode = (uint8_t)mode;
    c->state = HEADER;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.fd = fd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    // The ClientHello is usually queued already: read it now instead of waiting for epoll.
    on_readable(fd);
  }
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  for (int mode = 0; mode < MODES; mode++) {
    listeners[mode] = listen_on_any_port();
    // Listening sockets use data.fd = -1 - mode, so they never collide with connection fds.
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = -1 - mode};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, listeners[mode], &ev) < 0) die("epoll_ctl listen");
  }
  struct epoll_event stdin_ev = {.events = EPOLLIN | EPOLLHUP, .data.fd = 0};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &stdin_ev) < 0) die("epoll_ctl stdin");
  printf("PORTS %d %d %d %d\n", port_of(listeners[RATE]), port_of(listeners[SINK]),
         port_of(listeners[SOURCE]), port_of(listeners[IDLE]));
  fflush(stdout);
  struct epoll_event events[MAX_EVENTS];
  for (;;) {
    int n = epoll_wait(ep, events, MAX_EVENTS, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd < 0) {
        on_accept(-1 - fd);
        continue;
      }
      if (fd == 0) return 0;  // stdin closed: the bench is over
      struct conn *c = &conns[fd];
      if (c->state == 0) continue;
      if (c->state == SENDING) {
        int r = pump(fd);
        if (r != 0) end_conn(fd);
        continue;
      }
      on_readable(fd);
    }
  }
}
