// Load generator for scripts/bench: connection rate, bulk transfer and idle hold over epoll.
//
//   loadgen rate <host> <port> <hello-file> <concurrency> <duration-s> <answer-bytes>
//   loadgen bulk <host> <port> <hello-file> <up|down> <connections> <bytes-per-conn> <limit-s>
//   loadgen idle <host> <port> <hello-file> <connections> <limit-s>
//
// Every connection starts with the real ClientHello read from <hello-file>, as a TLS client
// would send it. Each mode prints one JSON line on stdout; idle prints `READY {...}` once all
// connections are through to the backend, holds them until stdin closes or a line arrives,
// then prints `DONE {...}`. alarm() bounds every run: a stuck proxy cannot hang the bench.
//
// Single-threaded and edge-triggered: one epoll_ctl per connection, no read that is known to
// find nothing. Its own cost is checked by the bench's `direct` run (no proxy in between).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 65536
#define MAX_EVENTS 1024
#define IO_BUF (256 * 1024)

enum { FREE = 0, CONNECTING, SENDING, READING, SHUT, HOLDING };

struct conn {
  uint8_t state;
  uint32_t sent;      // bytes of the prefix (ClientHello [+ count]) written
  uint64_t payload;   // bulk up: payload bytes written; bulk down: bytes read
  uint64_t started_ns;
};

static struct conn conns[MAX_FDS];
static struct sockaddr_in target;
static uint8_t *prefix;
static size_t prefix_len;
static uint8_t io_buf[IO_BUF];
static int ep;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  perror(what);
  exit(2);
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

static void load_prefix(const char *path, size_t extra) {
  FILE *file = fopen(path, "rb");
  if (!file) die(path);
  fseek(file, 0, SEEK_END);
  long size = ftell(file);
  fseek(file, 0, SEEK_SET);
  if (size <= 0) {
    fprintf(stderr, "%s: empty\n", path);
    exit(2);
  }
  prefix = malloc((size_t)size + extra);
  if (fread(prefix, 1, (size_t)size, file) != (size_t)size) die("fread");
  fclose(file);
  prefix_len = (size_t)size;
}

static void set_target(const char *host, const char *port) {
  memset(&target, 0, sizeof target);
  target.sin_family = AF_INET;
  target.sin_port = htons((uint16_t)atoi(port));
  if (inet_pton(AF_INET, host, &target.sin_addr) != 1) {
    fprintf(stderr, "bad IPv4 address %s\n", host);
    exit(2);
  }
}

/** Starts a non-blocking connect; returns the fd or -1. EPOLLOUT (edge) reports completion. */
static int start_conn(uint64_t now) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (fd >= MAX_FDS) {
    close(fd);
    return -1;
  }
  if (connect(fd, (struct sockaddr *)&target, sizeof target) < 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  struct conn *c = &conns[fd];
  c->state = CONNECTING;
  c->sent = 0;
  c->payload = 0;
  c->started_ns = now;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.fd = fd};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
  return fd;
}

static void end_conn(int fd) {
  conns[fd].state = FREE;
  close(fd);
}

/** Writes the rest of the prefix. 1 when all of it is out, 0 to wait for EPOLLOUT, -1 on error. */
static int send_prefix(int fd) {
  struct conn *c = &conns[fd];
  while (c->sent < prefix_len) {
    ssize_t n = send(fd, prefix + c->sent, prefix_len - c->sent, MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    c->sent += (uint32_t)n;
  }
  return 1;
}

/** Reads until EAGAIN or EOF, adding to payload. 1 on EOF, 0 on EAGAIN, -1 on error. */
static int drain(int fd) {
  for (;;) {
    ssize_t n = read(fd, io_buf, sizeof io_buf);
    if (n > 0) {
      conns[fd].payload += (uint64_t)n;
      continue;
    }
    if (n == 0) return 1;
    return errno == EAGAIN ? 0 : -1;
  }
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

// ---- rate: ClientHello → answer → EOF, `concurrency` connections in flight ----

static int run_rate(int concurrency, double duration_s, uint64_t answer_bytes) {
  size_t cap = 8u << 20;
  uint32_t *latency_us = malloc(cap * sizeof *latency_us);
  size_t done = 0;
  uint64_t errors = 0, in_flight = 0;
  struct epoll_event events[MAX_EVENTS];
  double cpu0 = cpu_seconds();
  uint64_t t0 = now_ns();
  uint64_t stop_at = t0 + (uint64_t)(duration_s * 1e9);
  uint64_t give_up_at = stop_at + 5000000000ull;
  uint64_t last_done = t0;
  int running = 1;
  for (int i = 0; i < concurrency; i++) {
    if (start_conn(t0) >= 0) in_flight++;
    else errors++;
  }
  while (in_flight > 0) {
    int n = epoll_wait(ep, events, MAX_EVENTS, 100);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    uint64_t now = now_ns();
    if (running && now >= stop_at) running = 0;
    if (now >= give_up_at) break;
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      uint32_t ev = events[i].events;
      struct conn *c = &conns[fd];
      int outcome = 0;  // 1 success, -1 failure
      if (c->state == CONNECTING) {
        int r = send_prefix(fd);
        if (r < 0) outcome = -1;
        else if (r > 0) c->state = READING;
      }
      // Right after the write the answer cannot be there yet: read only on a read event.
      if (outcome == 0 && c->state == READING && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))) {
        int r = drain(fd);
        if (r < 0) outcome = -1;
        else if (r > 0) outcome = c->payload >= answer_bytes ? 1 : -1;
      }
      if (outcome == 0) continue;
      if (outcome > 0) {
        if (done < cap) latency_us[done] = (uint32_t)((now - c->started_ns) / 1000);
        done++;
        last_done = now;
      } else {
        errors++;
      }
      end_conn(fd);
      in_flight--;
      if (running) {
        if (start_conn(now) >= 0) in_flight++;
        else errors++;
      }
    }
  }
  double cpu = cpu_seconds() - cpu0;
  double elapsed = (double)(last_done - t0) / 1e9;
  size_t kept = done < cap ? done : cap;
  qsort(latency_us, kept, sizeof *latency_us, cmp_u32);
  uint32_t p50 = kept ? latency_us[kept / 2] : 0;
  uint32_t p99 = kept ? latency_us[(size_t)((double)kept * 0.99)] : 0;
  printf(
      "{\"mode\":\"rate\",\"conns\":%zu,\"errors\":%llu,\"unfinished\":%llu,\"elapsed_s\":%.4f,"
      "\"rate\":%.1f,\"p50_us\":%u,\"p99_us\":%u,\"loadgen_cpu_us_per_conn\":%.2f}\n",
      done, (unsigned long long)errors, (unsigned long long)in_flight, elapsed,
      elapsed > 0 ? (double)done / elapsed : 0.0, p50, p99, done ? cpu * 1e6 / (double)done : 0.0);
  return 0;
}

// ---- bulk: `connections` transfers of `bytes` each, all at once ----

static int run_bulk(int up, int connections, uint64_t bytes) {
  if (!up) {  // The source backend reads how many bytes to send right after the ClientHello.
    for (int i = 0; i < 8; i++) prefix[prefix_len + i] = (uint8_t)(bytes >> (8 * i));
    prefix_len += 8;
  }
  struct epoll_event events[MAX_EVENTS];
  uint64_t t0 = now_ns();
  int in_flight = 0, errors = 0, done = 0;
  uint64_t moved = 0;
  for (int i = 0; i < connections; i++) {
    if (start_conn(t0) >= 0) in_flight++;
    else errors++;
  }
  while (in_flight > 0) {
    int n = epoll_wait(ep, events, MAX_EVENTS, 1000);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      struct conn *c = &conns[fd];
      int outcome = 0;
      if (c->state == CONNECTING) {
        int r = send_prefix(fd);
        if (r < 0) outcome = -1;
        else if (r > 0) c->state = up ? SENDING : READING;
      }
      if (outcome == 0 && c->state == SENDING) {
        while (c->payload < bytes) {
          uint64_t left = bytes - c->payload;
          ssize_t w = send(fd, io_buf, left < IO_BUF ? left : IO_BUF, MSG_NOSIGNAL);
          if (w < 0) {
            if (errno != EAGAIN) outcome = -1;
            break;
          }
          c->payload += (uint64_t)w;
        }
        if (outcome == 0 && c->payload >= bytes) {
          moved += c->payload;
          shutdown(fd, SHUT_WR);  // The sink closes once it has read everything.
          c->state = SHUT;
          c->payload = 0;
        }
      }
      if (outcome == 0 && (c->state == READING || c->state == SHUT)) {
        int r = drain(fd);
        if (r < 0) outcome = -1;
        else if (r > 0) {
          if (c->state == READING) {
            moved += c->payload;
            outcome = c->payload == bytes ? 1 : -1;
          } else {
            outcome = 1;
          }
        }
      }
      if (outcome == 0) continue;
      if (outcome > 0) done++;
      else errors++;
      end_conn(fd);
      in_flight--;
    }
  }
  double elapsed = (double)(now_ns() - t0) / 1e9;
  printf(
      "{\"mode\":\"bulk\",\"direction\":\"%s\",\"conns\":%d,\"errors\":%d,\"bytes\":%llu,"
      "\"elapsed_s\":%.4f,\"mib_s\":%.1f}\n",
      up ? "up" : "down", done, errors, (unsigned long long)moved, elapsed,
      elapsed > 0 ? (double)moved / elapsed / 1048576.0 : 0.0);
  return errors ? 1 : 0;
}

// ---- idle: hold `connections` open once each has its 1-byte "through" answer ----

static int run_idle(int connections) {
  const int max_opening = 256;  // Stays well under every listen backlog.
  struct epoll_event events[MAX_EVENTS];
  uint64_t t0 = now_ns();
  int opening = 0, established = 0, errors = 0, dropped = 0, started = 0;
  int ready = 0;
  struct epoll_event stdin_ev = {.events = EPOLLIN | EPOLLHUP, .data.fd = 0};
  for (;;) {
    while (!ready && opening < max_opening && started < connections && errors < 1000) {
      if (start_conn(now_ns()) >= 0) {
        opening++;
        started++;
      } else {
        errors++;
      }
    }
    if (!ready && (established + errors >= connections || errors >= 1000 ||
                   (opening == 0 && started >= connections))) {
      ready = 1;
      printf("READY {\"established\":%d,\"errors\":%d,\"elapsed_s\":%.3f}\n", established, errors,
             (double)(now_ns() - t0) / 1e9);
      fflush(stdout);
      if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &stdin_ev) < 0) die("epoll_ctl stdin");
    }
    int n = epoll_wait(ep, events, MAX_EVENTS, 1000);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == 0) goto release;
      struct conn *c = &conns[fd];
      int failed = 0;
      if (c->state == CONNECTING) {
        int r = send_prefix(fd);
        if (r < 0) failed = 1;
        else if (r > 0) c->state = READING;
      }
      if (!failed && (c->state == READING || c->state == HOLDING)) {
        int r = drain(fd);
        if (r != 0) failed = 1;  // EOF or error: the proxy let go of it
        else if (c->state == READING && c->payload > 0) {
          c->state = HOLDING;
          opening--;
          established++;
        }
      }
      if (!failed) continue;
      if (c->state == HOLDING) {
        dropped++;
        established--;
      } else {
        opening--;
        errors++;
      }
      end_conn(fd);
    }
  }
release:;
  uint64_t r0 = now_ns();
  for (int fd = 1; fd < MAX_FDS; fd++)
    if (conns[fd].state != FREE) end_conn(fd);
  printf("DONE {\"established\":%d,\"dropped\":%d,\"close_s\":%.3f}\n", established, dropped,
         (double)(now_ns() - r0) / 1e9);
  return 0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen rate <host> <port> <hello> <concurrency> <duration-s> <answer-bytes>\n"
          "       loadgen bulk <host> <port> <hello> <up|down> <connections> <bytes> <limit-s>\n"
          "       loadgen idle <host> <port> <hello> <connections> <limit-s>\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 5) usage();
  signal(SIGPIPE, SIG_IGN);
  set_target(argv[2], argv[3]);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  const char *mode = argv[1];
  if (strcmp(mode, "rate") == 0 && argc == 8) {
    load_prefix(argv[4], 0);
    double duration = atof(argv[6]);
    alarm((unsigned)duration + 30);
    return run_rate(atoi(argv[5]), duration, strtoull(argv[7], NULL, 10));
  }
  if (strcmp(mode, "bulk") == 0 && argc == 9) {
    load_prefix(argv[4], 8);
    alarm((unsigned)atoi(argv[8]));
    return run_bulk(strcmp(argv[5], "up") == 0, atoi(argv[6]), strtoull(argv[7], NULL, 10));
  }
  if (strcmp(mode, "idle") == 0 && argc == 7) {
    load_prefix(argv[4], 0);
    alarm((unsigned)atoi(argv[6]));
    return run_idle(atoi(argv[5]));
  }
  usage();
  return 2;
}
