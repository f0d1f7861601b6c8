/*
 * The kernel's floor for the small-rooms and big-room shapes on this machine: what an ideal server could do if
 * sequencing, storage, framing and the runtime cost nothing.
 *
 * The "server" (pinned to one CPU) is a single-threaded epoll loop that does only the system calls a document server
 * cannot avoid: one read per readable socket, then for each message one write to every connection of its document
 * (the sender's copy is its ack, the others' copies are the broadcast). The "client" (pinned to the other CPU) is an
 * open-loop generator in the same style as loadtest/: every connection sends on a fixed schedule, latency runs from the
 * scheduled send time to the sender's own copy, and everything it receives is counted as deliveries.
 *
 * If this loop cannot carry a rate at ack p99 < 50 ms, no server written in any language can on this machine, because
 * everything it does is also done by every real server. Build and run:
 *
 *   gcc -O2 -o /tmp/fanout-floor scripts/fanout-floor.c
 *   /tmp/fanout-floor --docs 200 --clients 5 --rate 40 --seconds 10     # small rooms at 40,000 ops/s
 *   /tmp/fanout-floor --docs 1 --clients 200 --rate 10 --seconds 10     # big room at 2,000 ops/s
 *
 * Options: --docs D --clients C --rate R (ops/s per client) --seconds T --warmup W --size BYTES (message size, 48)
 *          --coalesce 0|1 (1: one write per connection per epoll batch) --server-cpu N (0) --client-cpu N (1).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct { uint32_t sender; uint32_t pad; uint64_t scheduled_ns; } header_t;

static int docs = 200, clients = 5, seconds = 10, warmup = 3, size = 48, server_cpu = 0, client_cpu = 1;
static double rate = 10;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) { perror("sched_setaffinity"); exit(1); }
}

static void die(const char *what) { perror(what); exit(1); }

static void nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Moves bytes from in[*off, got) into a connection's partial message; true when that holds a whole message (the next
 * call starts a new one). Both sides read a stream of fixed-size messages that a read may split anywhere. */
static int next_message(const char *in, size_t got, size_t *off, char *partial, size_t *pending) {
    while (*off < got) {
        size_t take = (size_t)size - *pending;
        if (take > got - *off) take = got - *off;
        memcpy(partial + *pending, in + *off, take);
        *pending += take; *off += take;
        if (*pending == (size_t)size) { *pending = 0; return 1; }
    }
    return 0;
}

/* Writes the whole buffer. The sockets stay blocking on the server side on purpose: at these message sizes a write
 * never blocks unless the client stops reading, and a blocking write is the cheapest form of the one system call. */
static uint64_t server_writes, server_reads, server_messages;

static void write_all(int fd, const char *buf, size_t len) {
    server_writes++;
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) { if (errno == EINTR) continue; die("server write"); }
        buf += n; len -= (size_t)n;
    }
}

/* With --coalesce 1 (the default) a connection's messages from one epoll batch leave in one write, as a server that
 * batches its flushes would send them; with --coalesce 0 every message is its own write. */
static int coalesce = 1;
static int *server_fds;
static char **outbox;
static size_t *outbox_len, *outbox_cap;
static int *dirty, dirty_count;

static void deliver(int c, const char *msg) {
    if (!coalesce) { write_all(server_fds[c], msg, (size_t)size); return; }
    if (outbox_len[c] == 0) dirty[dirty_count++] = c;
    if (outbox_len[c] + (size_t)size > outbox_cap[c]) {
        outbox_cap[c] = outbox_cap[c] * 2 + (size_t)size;
        outbox[c] = realloc(outbox[c], outbox_cap[c]);
    }
    memcpy(outbox[c] + outbox_len[c], msg, (size_t)size);
    outbox_len[c] += (size_t)size;
}

static void flush_all(void) {
    for (int i = 0; i < dirty_count; i++) {
        int c = dirty[i];
        write_all(server_fds[c], outbox[c], outbox_len[c]);
        outbox_len[c] = 0;
    }
    dirty_count = 0;
}

static void run_server(int listener, int connections) {
    pin(server_cpu);
    int *fds = server_fds = calloc((size_t)connections, sizeof(int));
    outbox = calloc((size_t)connections, sizeof(char *));
    outbox_len = calloc((size_t)connections, sizeof(size_t));
    outbox_cap = calloc((size_t)connections, sizeof(size_t));
    dirty = calloc((size_t)connections, sizeof(int));
    int ep = epoll_create1(0);
    for (int i = 0; i < connections; i++) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) die("accept");
        nodelay(fd);
        /* The client connects in order and waits for each accept, so the i-th accepted socket is connection i. */
        fds[i] = fd;
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
    }
    char *in = malloc(65536);
    size_t *pending = calloc((size_t)connections, sizeof(size_t));
    char **partial = calloc((size_t)connections, sizeof(char *));
    for (int i = 0; i < connections; i++) partial[i] = malloc((size_t)size);
    struct epoll_event events[256];
    int open = connections;
    while (open > 0) {
        int n = epoll_wait(ep, events, 256, -1);
        if (n < 0) { if (errno == EINTR) continue; die("epoll_wait"); }
        for (int e = 0; e < n; e++) {
            int c = (int)events[e].data.u32;
            ssize_t got = read(fds[c], in, 65536);
            server_reads++;
            if (got <= 0) { epoll_ctl(ep, EPOLL_CTL_DEL, fds[c], NULL); close(fds[c]); open--; continue; }
            /* Each whole message goes to every connection of its document. */
            size_t off = 0;
            while (next_message(in, (size_t)got, &off, partial[c], &pending[c])) {
                server_messages++;
                /* The sender's copy (its ack) first, then the broadcast to the rest of the document. */
                int first = (c / clients) * clients;
                deliver(c, partial[c]);
                for (int k = first; k < first + clients; k++) if (k != c) deliver(k, partial[c]);
            }
        }
        flush_all();
    }
    /* Whole run, warm-up included. */
    fprintf(stderr, "server: %.2f writes and %.2f reads per op\n", (double)server_writes / (double)server_messages,
            (double)server_reads / (double)server_messages);
    exit(0);
}

/* Latency histogram: 1 µs buckets up to 10 ms, then 100 µs buckets up to 10 s. */
#define FINE 10000
#define COARSE 100000
static uint64_t hist[FINE + COARSE + 1];
static uint64_t recorded;

static void record(uint64_t ns) {
    uint64_t us = ns / 1000;
    size_t b = us < FINE ? us : (us / 100 < FINE + COARSE - FINE / 100 ? FINE + (us - FINE) / 100 : FINE + COARSE);
    if (b > FINE + COARSE) b = FINE + COARSE;
    hist[b]++; recorded++;
}

static double percentile(double p) {
    if (recorded == 0) return -1;
    uint64_t target = (uint64_t)(p * (double)recorded), seen = 0;
    if (target >= recorded) target = recorded - 1;
    for (size_t b = 0; b <= FINE + COARSE; b++) {
        seen += hist[b];
        if (seen > target) return b < FINE ? (double)b / 1000.0 : (double)(FINE + (b - FINE) * 100) / 1000.0;
    }
    return -1;
}

static double cpu_seconds(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    char *p = strrchr(buf, ')');
    unsigned long utime = 0, stime = 0;
    /* Fields after the command: state(3) ... utime(14) stime(15). */
    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime);
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--docs")) docs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--clients")) clients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rate")) rate = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--coalesce")) coalesce = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--server-cpu")) server_cpu = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--client-cpu")) client_cpu = atoi(argv[i + 1]);
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    if (size < (int)sizeof(header_t)) size = (int)sizeof(header_t);
    int connections = docs * clients;
    struct rlimit lim = { 0 };
    getrlimit(RLIMIT_NOFILE, &lim);
    if (lim.rlim_cur < (rlim_t)connections + 64) { lim.rlim_cur = lim.rlim_max; setrlimit(RLIMIT_NOFILE, &lim); }

    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0 };
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0) die("bind");
    socklen_t alen = sizeof addr;
    getsockname(listener, (struct sockaddr *)&addr, &alen);
    if (listen(listener, 4096) != 0) die("listen");
    pid_t server = fork();
    if (server == 0) run_server(listener, connections);
    close(listener);

    pin(client_cpu);
    /* Latency runs from the scheduled send time, so the generator must wake on time: no timer slack (50 µs by
     * default) and, when allowed, the highest priority on its CPU (as loadtest/ does for its scheduler thread). */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    setpriority(PRIO_PROCESS, 0, -20);
    int *fds = calloc((size_t)connections, sizeof(int));
    int ep = epoll_create1(0);
    for (int i = 0; i < connections; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("connect");
        nodelay(fd);
        fds[i] = fd;
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    size_t *pending = calloc((size_t)connections, sizeof(size_t));
    char **partial = calloc((size_t)connections, sizeof(char *));
    for (int i = 0; i < connections; i++) partial[i] = calloc(1, (size_t)size);
    char *out = calloc(1, (size_t)size), *in = malloc(65536);

    /* Open loop: the j-th send of the whole run is due at start + j / (connections * rate), on connection j mod N,
     * so each connection sends every 1/rate seconds with evenly spread phases. */
    double interval_ns = 1e9 / ((double)connections * rate);
    uint64_t start = now_ns(), measure_from = start + (uint64_t)warmup * 1000000000ull;
    uint64_t end = measure_from + (uint64_t)seconds * 1000000000ull, drain_until = end + 2000000000ull;
    uint64_t sent = 0, acked = 0, delivered = 0, sent_measured = 0;
    double server_cpu_start = -1, client_cpu_start = 0, server_cpu_used = -1, client_cpu_used = 0;
    struct epoll_event events[256];
    for (;;) {
        uint64_t t = now_ns();
        if (server_cpu_start < 0 && t >= measure_from) {
            server_cpu_start = cpu_seconds(server);
            client_cpu_start = cpu_seconds(getpid());
            acked = delivered = 0; memset(hist, 0, sizeof hist); recorded = 0;
        }
        if (server_cpu_used < 0 && server_cpu_start >= 0 && t >= end) {
            server_cpu_used = cpu_seconds(server) - server_cpu_start;
            client_cpu_used = cpu_seconds(getpid()) - client_cpu_start;
        }
        while (t < end) {
            uint64_t due = start + (uint64_t)((double)sent * interval_ns);
            if (due > t) break;
            header_t h = { .sender = (uint32_t)(sent % (uint64_t)connections), .scheduled_ns = due };
            memcpy(out, &h, sizeof h);
            if (write(fds[h.sender], out, (size_t)size) != size) die("client write");
            sent++;
            if (due >= measure_from) sent_measured++;
        }
        if (t >= drain_until) break;
        uint64_t next = start + (uint64_t)((double)sent * interval_ns);
        /* A nanosecond timeout (epoll_pwait2): with millisecond epoll_wait the generator would spin between sends. */
        uint64_t wait_ns = t >= end ? 10000000ull : (next > t ? next - t : 0);
        struct timespec timeout = { .tv_sec = (time_t)(wait_ns / 1000000000ull), .tv_nsec = (long)(wait_ns % 1000000000ull) };
        int n = epoll_pwait2(ep, events, 256, &timeout, NULL);
        for (int e = 0; e < n; e++) {
            int c = (int)events[e].data.u32;
            ssize_t got = read(fds[c], in, 65536);
            if (got <= 0) die("client read");
            size_t off = 0;
            while (next_message(in, (size_t)got, &off, partial[c], &pending[c])) {
                header_t h;
                memcpy(&h, partial[c], sizeof h);
                delivered++;
                if (h.sender == (uint32_t)c && h.scheduled_ns >= measure_from) {
                    acked++;
                    record(now_ns() - h.scheduled_ns);
                }
            }
        }
    }
    for (int i = 0; i < connections; i++) close(fds[i]);
    waitpid(server, NULL, 0);
    printf("%s%d docs x %d clients at %g ops/s each (%d B messages): offered %.0f ops/s, acked %.0f ops/s (%.1f%% of sent),"
           " %.0f deliveries/s; ack p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms; server CPU %.0f%%, client CPU %.0f%%\n",
           coalesce ? "" : "no coalescing: ", docs, clients, rate, size, (double)sent_measured / seconds, (double)acked / seconds,
           sent_measured ? 100.0 * (double)acked / (double)sent_measured : 0, (double)delivered / seconds,
           percentile(0.5), percentile(0.99), percentile(0.999), percentile(1.0),
           100.0 * server_cpu_used / seconds, 100.0 * client_cpu_used / seconds);
    return 0;
}
