/*
 * httpsload: HTTPS load client for bench/pmproxy (OpenSSL libssl, so that
 * the client is the same whatever TLS stack the server uses).
 *
 *   httpsload [options] keepalive|newconn|hold
 *
 *   -h HOST     address to connect to (default 127.0.0.1)
 *   -p PORT     port (required)
 *   -a CAFILE   CA certificate that must verify the server (required); the
 *               server name checked (and sent as SNI) is "localhost"
 *   -m METHOD   GET (default) or OPTIONS
 *   -u PATH     request target, e.g. /pmapi/metric?name=hinv.ncpu
 *   -x          give every client connection its own pmapi context: before
 *               the timed part, each thread asks GET /pmapi/context?polltimeout=T
 *               and appends &context=N (or ?context=N) to PATH; a context is
 *               never used by two connections at the same time
 *   -T SECONDS  polltimeout of those contexts (default 20)
 *   -e STRING   every response body must contain STRING
 *   -c CONC     concurrent client connections (threads; default 8)
 *   -n TOTAL    requests in total, spread over the threads (default 800)
 *   -k K        connections for "hold" (default 200)
 *   -P PID      server process: its CPU time (all threads, user+system) is
 *               read right before and right after the timed part, from its
 *               process CPU clock (clock_getcpuclockid, ns resolution), or
 *               utime+stime from /proc/PID/stat (clock ticks) if unreadable
 *   -V 1.2|1.3  highest TLS version offered (default: library default)
 *
 * Modes:
 *   keepalive  every thread opens one TLS connection and sends its share of
 *              the requests sequentially on it (HTTP/1.1 persistent
 *              connection, next request after the full response)
 *   newconn    every request on a new TCP connection with a full TLS
 *              handshake: the SSL_CTX has its session cache off and no
 *              session is ever offered, so nothing is resumed (checked with
 *              SSL_session_reused).  The request is HTTP/1.1 keep-alive
 *              (stock pmproxy sends empty replies to HTTP/1.0 and
 *              "Connection: close" over HTTPS); after the full response the
 *              client sends close_notify and closes the socket itself.
 *   hold       one thread opens K connections one after the other, each with
 *              a handshake and one request (full response read), and keeps
 *              them open; then prints "held K" and waits for a line (or EOF)
 *              on stdin before closing them all.
 *
 * Connection set-up for keepalive (handshake + context) and the context
 * requests are outside the timed part; in newconn every connect, handshake
 * and close is inside it.
 *
 * Responses are parsed: status line (must be 200), headers, body by
 * Content-Length or chunked transfer coding.  A missing or empty reply, a
 * status other than 200, a short body, a body without STRING, a server that
 * closes a keep-alive connection or a TLS/socket error (30 s socket
 * timeouts) counts as an error; any error makes the exit status 1.
 *
 * Output (one line, machine readable):
 *   mode=M requests=N errors=E elapsed_us=T rps=R server_cpu_us=S
 *   server_cpu_us_per_req=U server_cpu_source=cpuclock|stat client_cpu_us=C
 *   handshakes=H resumed=0
 *   proto=TLSv1.3 cipher=...
 * Errors are described on stderr (the first few of them).
 *
 * Build: gcc -O2 -Wall -Wextra -Werror -pthread bench/httpsload.c -lssl -lcrypto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define SERVER_NAME "localhost"
#define IO_TIMEOUT_S 30
#define MAX_REPORTED_ERRORS 5

static const char *opt_host = "127.0.0.1";
static int opt_port;
static const char *opt_ca;
static const char *opt_method = "GET";
static const char *opt_path;
static int opt_ctx;
static int opt_polltimeout = 20;
static const char *opt_expect;
static int opt_conc = 8;
static long opt_total = 800;
static int opt_hold = 200;
static int opt_pid;
static int opt_maxver;

static SSL_CTX *ctx;
static atomic_long n_errors;
static atomic_long n_ok;
static atomic_long n_handshakes;
static atomic_long n_resumed;
static pthread_barrier_t b_ready, b_go, b_done, b_close;
static char proto_seen[64] = "?", cipher_seen[128] = "?";
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;

static void
error(const char *fmt, ...)
{
    long n = atomic_fetch_add(&n_errors, 1);
    va_list ap;

    if (n >= MAX_REPORTED_ERRORS) {
        if (n == MAX_REPORTED_ERRORS)
            fprintf(stderr, "httpsload: further errors not shown\n");
        return;
    }
    va_start(ap, fmt);
    fprintf(stderr, "httpsload: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static double
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/*
 * CPU time (all threads, user + system) consumed so far by process pid, in
 * microseconds, or < 0: the process CPU clock (nanosecond resolution) if the
 * kernel lets us read it, else utime+stime from /proc/PID/stat (clock ticks).
 */
static double
proc_cpu_us(int pid, const char **source)
{
    char path[64], buf[2048], *p;
    unsigned long ut, st;
    struct timespec ts;
    clockid_t clk;
    FILE *f;
    size_t n;

    if (clock_getcpuclockid((pid_t)pid, &clk) == 0 && clock_gettime(clk, &ts) == 0) {
        *source = "cpuclock";
        return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
    }
    *source = "stat";
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* after "pid (comm) ": state is field 3, utime 14, stime 15 */
    if ((p = strrchr(buf, ')')) == NULL)
        return -1;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

static double
self_cpu_us(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* ------------------------------------------------------------ connection */

struct conn {
    int fd;
    SSL *ssl;
    char buf[65536]; /* received, not yet consumed: buf[off .. len) */
    size_t off, len;
};

static const char *
ssl_reason(void)
{
    static __thread char msg[256];
    unsigned long e = ERR_get_error();

    if (e == 0)
        return errno ? strerror(errno) : "no further detail";
    ERR_error_string_n(e, msg, sizeof(msg));
    ERR_clear_error();
    return msg;
}

static void
conn_close(struct conn *c)
{
    if (c->ssl) {
        SSL_shutdown(c->ssl); /* sends close_notify, does not wait for the peer's */
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

static int
conn_open(struct conn *c)
{
    struct sockaddr_in sa;
    struct timeval tv = {IO_TIMEOUT_S, 0};
    int one = 1, rc;

    c->fd = -1;
    c->ssl = NULL;
    c->off = c->len = 0;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)opt_port);
    if (inet_pton(AF_INET, opt_host, &sa.sin_addr) != 1) {
        error("bad IPv4 address %s", opt_host);
        return -1;
    }
    if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
        error("socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        error("connect %s:%d: %s", opt_host, opt_port, strerror(errno));
        conn_close(c);
        return -1;
    }
    if ((c->ssl = SSL_new(ctx)) == NULL) {
        error("SSL_new: %s", ssl_reason());
        conn_close(c);
        return -1;
    }
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, SERVER_NAME);
    SSL_set1_host(c->ssl, SERVER_NAME);
    errno = 0;
    if ((rc = SSL_connect(c->ssl)) != 1) {
        error("TLS handshake with %s:%d failed (SSL_get_error %d): %s", opt_host, opt_port,
              SSL_get_error(c->ssl, rc), ssl_reason());
        conn_close(c);
        return -1;
    }
    atomic_fetch_add(&n_handshakes, 1);
    if (SSL_session_reused(c->ssl))
        atomic_fetch_add(&n_resumed, 1);
    if (proto_seen[0] == '?') {
        pthread_mutex_lock(&seen_lock);
        snprintf(proto_seen, sizeof(proto_seen), "%s", SSL_get_version(c->ssl));
        snprintf(cipher_seen, sizeof(cipher_seen), "%s", SSL_get_cipher_name(c->ssl));
        pthread_mutex_unlock(&seen_lock);
    }
    return 0;
}

static int
conn_write(struct conn *c, const char *data, size_t n)
{
    size_t done = 0;
    int rc;

    while (done < n) {
        errno = 0;
        rc = SSL_write(c->ssl, data + done, (int)(n - done));
        if (rc <= 0) {
            error("SSL_write failed (SSL_get_error %d): %s", SSL_get_error(c->ssl, rc), ssl_reason());
            return -1;
        }
        done += (size_t)rc;
    }
    return 0;
}

/* more bytes into c->buf; returns bytes read, 0 on EOF (clean or not), -1 on error */
static int
conn_fill(struct conn *c)
{
    int rc, e;

    if (c->off > 0) {
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->len >= sizeof(c->buf)) {
        error("response line or header too long");
        return -1;
    }
    errno = 0;
    rc = SSL_read(c->ssl, c->buf + c->len, (int)(sizeof(c->buf) - c->len));
    if (rc > 0) {
        c->len += (size_t)rc;
        return rc;
    }
    e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0))
        return 0;
    error("SSL_read failed (SSL_get_error %d): %s", e, ssl_reason());
    return -1;
}

/* a line ending in CRLF from the buffer (NUL-terminated, CRLF removed) */
static char *
conn_line(struct conn *c, int *eof)
{
    char *start, *nl;
    int rc;

    *eof = 0;
    for (;;) {
        start = c->buf + c->off;
        nl = memmem(start, c->len - c->off, "\r\n", 2);
        if (nl) {
            *nl = '\0';
            c->off = (size_t)(nl + 2 - c->buf);
            return start;
        }
        if ((rc = conn_fill(c)) <= 0) {
            *eof = rc == 0;
            return NULL;
        }
    }
}

/* consume n body bytes, appending up to cap-1 of them to body */
static int
conn_body(struct conn *c, size_t n, char *body, size_t cap, size_t *blen)
{
    size_t avail, take;

    while (n > 0) {
        if (c->off == c->len && conn_fill(c) <= 0) {
            error("response body cut short (%zu bytes missing)", n);
            return -1;
        }
        avail = c->len - c->off;
        take = avail < n ? avail : n;
        if (*blen + 1 < cap) {
            size_t room = cap - 1 - *blen;
            size_t copy = take < room ? take : room;
            memcpy(body + *blen, c->buf + c->off, copy);
            *blen += copy;
            body[*blen] = '\0';
        }
        c->off += take;
        n -= take;
    }
    return 0;
}

/*
 * One request and its full response.  Returns 0 if it was a 200 with a
 * complete body (copied, truncated, to body) containing expect (unless NULL),
 * -1 otherwise (error counted).
 * *server_closes is set if the server announced "Connection: close".
 */
static int
request(struct conn *c, const char *method, const char *target, const char *expect, char *body,
        size_t cap, int *server_closes)
{
    char req[2048], *line;
    long clen = -1;
    int chunked = 0, status = 0, eof, n;
    size_t blen = 0;

    *server_closes = 0;
    body[0] = '\0';
    n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: */*\r\n\r\n", method,
                 target, SERVER_NAME, opt_port);
    if (n <= 0 || (size_t)n >= sizeof(req)) {
        error("request target too long");
        return -1;
    }
    if (conn_write(c, req, (size_t)n) < 0)
        return -1;
    if ((line = conn_line(c, &eof)) == NULL) {
        if (eof)
            error("empty reply to %s %s (connection closed before any response byte)", method, target);
        return -1;
    }
    if (sscanf(line, "HTTP/1.%*d %d", &status) != 1) {
        error("bad status line '%.80s'", line);
        return -1;
    }
    for (;;) {
        if ((line = conn_line(c, &eof)) == NULL) {
            error("response headers cut short");
            return -1;
        }
        if (*line == '\0')
            break;
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            clen = strtol(line + 15, NULL, 10);
        else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0 && strcasestr(line + 18, "chunked"))
            chunked = 1;
        else if (strncasecmp(line, "Connection:", 11) == 0 && strcasestr(line + 11, "close"))
            *server_closes = 1;
    }
    if (chunked) {
        for (;;) {
            long size;
            char *end;

            if ((line = conn_line(c, &eof)) == NULL) {
                error("chunk size line missing");
                return -1;
            }
            size = strtol(line, &end, 16);
            if (end == line || size < 0) {
                error("bad chunk size line '%.40s'", line);
                return -1;
            }
            if (size == 0) {
                /* trailers up to the empty line */
                do {
                    if ((line = conn_line(c, &eof)) == NULL) {
                        error("chunked trailer cut short");
                        return -1;
                    }
                } while (*line != '\0');
                break;
            }
            if (conn_body(c, (size_t)size, body, cap, &blen) < 0)
                return -1;
            if ((line = conn_line(c, &eof)) == NULL || *line != '\0') {
                error("chunk not followed by CRLF");
                return -1;
            }
        }
    } else if (clen >= 0) {
        if (conn_body(c, (size_t)clen, body, cap, &blen) < 0)
            return -1;
    } else {
        error("response (status %d) with neither Content-Length nor chunked coding", status);
        return -1;
    }
    if (status != 200) {
        error("status %d for %s %s: %.200s", status, method, target, body);
        return -1;
    }
    if (expect && strstr(body, expect) == NULL) {
        error("response body to %s %s lacks '%s': %.200s", method, target, expect, body);
        return -1;
    }
    return 0;
}

/* a new pmapi context over connection c: the request target to use with it */
static int
make_target(struct conn *c, char *target, size_t cap)
{
    char path[128], body[4096], *p;
    unsigned long id;
    int closes;

    if (!opt_ctx) {
        snprintf(target, cap, "%s", opt_path);
        return 0;
    }
    snprintf(path, sizeof(path), "/pmapi/context?polltimeout=%d", opt_polltimeout);
    if (request(c, "GET", path, "\"context\":", body, sizeof(body), &closes) < 0)
        return -1;
    if ((p = strstr(body, "\"context\":")) == NULL || sscanf(p + 10, "%lu", &id) != 1) {
        error("no context number in /pmapi/context reply: %.200s", body);
        return -1;
    }
    snprintf(target, cap, "%s%ccontext=%lu", opt_path, strchr(opt_path, '?') ? '&' : '?', id);
    return 0;
}

/* ------------------------------------------------------------ modes */

struct worker {
    pthread_t tid;
    int mode; /* 0 keepalive, 1 newconn */
    long requests;
};

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    static __thread struct conn c; /* 64 KB buffer: not on the thread stack */
    char target[1024], body[8192];
    int ok = 1, closes;
    long i;

    c.fd = -1;
    c.ssl = NULL;
    if (conn_open(&c) < 0 || make_target(&c, target, sizeof(target)) < 0)
        ok = 0;
    if (ok && w->mode == 1)
        conn_close(&c);
    pthread_barrier_wait(&b_ready);
    pthread_barrier_wait(&b_go);
    for (i = 0; ok && i < w->requests; i++) {
        if (w->mode == 1 && conn_open(&c) < 0)
            break;
        if (request(&c, opt_method, target, opt_expect, body, sizeof(body), &closes) < 0)
            break;
        atomic_fetch_add(&n_ok, 1);
        if (w->mode == 1)
            conn_close(&c);
        else if (closes) {
            error("server announced Connection: close on a keep-alive connection");
            break;
        }
    }
    if (i < w->requests)
        ok = 0;
    pthread_barrier_wait(&b_done);
    pthread_barrier_wait(&b_close);
    conn_close(&c);
    return NULL;
}

static int
run_load(int mode)
{
    struct worker *w = calloc((size_t)opt_conc, sizeof(*w));
    double t0, t1, cpu0, cpu1, secs, srv0 = -1, srv1 = -1;
    const char *source = "none";
    long total;
    int i;

    if (w == NULL)
        return 2;
    pthread_barrier_init(&b_ready, NULL, (unsigned)opt_conc + 1);
    pthread_barrier_init(&b_go, NULL, (unsigned)opt_conc + 1);
    pthread_barrier_init(&b_done, NULL, (unsigned)opt_conc + 1);
    pthread_barrier_init(&b_close, NULL, (unsigned)opt_conc + 1);
    for (i = 0; i < opt_conc; i++) {
        pthread_attr_t attr;

        w[i].mode = mode;
        w[i].requests = opt_total / opt_conc + (i < opt_total % opt_conc);
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        if (pthread_create(&w[i].tid, &attr, worker_main, &w[i]) != 0) {
            fprintf(stderr, "httpsload: pthread_create failed\n");
            exit(2);
        }
        pthread_attr_destroy(&attr);
    }
    pthread_barrier_wait(&b_ready);
    if (atomic_load(&n_errors) > 0)
        fprintf(stderr, "httpsload: set-up failed, measuring anyway to let the threads finish\n");
    atomic_store(&n_handshakes, 0);
    if (opt_pid)
        srv0 = proc_cpu_us(opt_pid, &source);
    cpu0 = self_cpu_us();
    t0 = now_us();
    pthread_barrier_wait(&b_go);
    pthread_barrier_wait(&b_done);
    t1 = now_us();
    cpu1 = self_cpu_us();
    if (opt_pid)
        srv1 = proc_cpu_us(opt_pid, &source);
    pthread_barrier_wait(&b_close);
    for (i = 0; i < opt_conc; i++)
        pthread_join(w[i].tid, NULL);
    free(w);

    total = atomic_load(&n_ok);
    secs = (t1 - t0) / 1e6;
    printf("mode=%s requests=%ld errors=%ld elapsed_us=%.0f rps=%.1f", mode ? "newconn" : "keepalive",
           total, atomic_load(&n_errors), t1 - t0, secs > 0 ? (double)total / secs : 0.0);
    if (opt_pid && srv0 >= 0 && srv1 >= 0)
        printf(" server_cpu_us=%.0f server_cpu_us_per_req=%.2f server_cpu_source=%s", srv1 - srv0,
               total ? (srv1 - srv0) / (double)total : 0.0, source);
    else if (opt_pid) {
        fprintf(stderr, "httpsload: cannot read the CPU time of process %d\n", opt_pid);
        atomic_fetch_add(&n_errors, 1);
    }
    printf(" client_cpu_us=%.0f handshakes=%ld resumed=%ld proto=%s cipher=%s\n", cpu1 - cpu0,
           atomic_load(&n_handshakes), atomic_load(&n_resumed), proto_seen, cipher_seen);
    fflush(stdout);
    return atomic_load(&n_errors) > 0 || total != opt_total ? 1 : 0;
}

static int
run_hold(void)
{
    struct conn *cs = calloc((size_t)opt_hold, sizeof(*cs));
    char body[4096], line[64];
    int i, opened = 0, closes;

    if (cs == NULL)
        return 2;
    for (i = 0; i < opt_hold; i++) {
        if (conn_open(&cs[i]) < 0)
            break;
        opened++;
        if (request(&cs[i], opt_method, opt_path, opt_expect, body, sizeof(body), &closes) < 0)
            break;
        if (closes) {
            error("server announced Connection: close");
            break;
        }
    }
    printf("held %d handshakes=%ld resumed=%ld errors=%ld proto=%s cipher=%s\n",
           atomic_load(&n_errors) ? 0 : opened, atomic_load(&n_handshakes), atomic_load(&n_resumed),
           atomic_load(&n_errors), proto_seen, cipher_seen);
    fflush(stdout);
    if (atomic_load(&n_errors) == 0 && fgets(line, sizeof(line), stdin) == NULL) {
        /* EOF: close as well */
    }
    for (i = 0; i < opened; i++)
        conn_close(&cs[i]);
    free(cs);
    return atomic_load(&n_errors) > 0 ? 1 : 0;
}

static void
usage(void)
{
    fprintf(stderr, "usage: httpsload -p PORT -a CAFILE -u PATH [-h HOST] [-m METHOD] [-x] [-T S]\n"
                    "       [-e STRING] [-c CONC] [-n TOTAL] [-k K] [-P PID] [-V 1.2|1.3]\n"
                    "       keepalive|newconn|hold\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    const char *mode;
    int opt;

    while ((opt = getopt(argc, argv, "h:p:a:m:u:xT:e:c:n:k:P:V:")) != -1) {
        switch (opt) {
        case 'h': opt_host = optarg; break;
        case 'p': opt_port = atoi(optarg); break;
        case 'a': opt_ca = optarg; break;
        case 'm': opt_method = optarg; break;
        case 'u': opt_path = optarg; break;
        case 'x': opt_ctx = 1; break;
        case 'T': opt_polltimeout = atoi(optarg); break;
        case 'e': opt_expect = optarg; break;
        case 'c': opt_conc = atoi(optarg); break;
        case 'n': opt_total = atol(optarg); break;
        case 'k': opt_hold = atoi(optarg); break;
        case 'P': opt_pid = atoi(optarg); break;
        case 'V':
            if (strcmp(optarg, "1.2") == 0)
                opt_maxver = TLS1_2_VERSION;
            else if (strcmp(optarg, "1.3") == 0)
                opt_maxver = TLS1_3_VERSION;
            else
                usage();
            break;
        default: usage();
        }
    }
    if (optind != argc - 1 || opt_port <= 0 || opt_port > 65535 || !opt_ca || !opt_path || opt_conc < 1 ||
        opt_total < 1 || opt_hold < 1 || opt_polltimeout < 1)
        usage();
    mode = argv[optind];
    if (opt_total < opt_conc)
        opt_conc = (int)opt_total;

    signal(SIGPIPE, SIG_IGN);
    if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
        fprintf(stderr, "httpsload: SSL_CTX_new: %s\n", ssl_reason());
        return 2;
    }
    if (SSL_CTX_load_verify_locations(ctx, opt_ca, NULL) != 1) {
        fprintf(stderr, "httpsload: cannot load CA file %s: %s\n", opt_ca, ssl_reason());
        return 2;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* no resumption: no client session cache, no tickets asked for, no session offered */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    if (opt_maxver)
        SSL_CTX_set_max_proto_version(ctx, opt_maxver);

    if (strcmp(mode, "keepalive") == 0)
        return run_load(0);
    if (strcmp(mode, "newconn") == 0)
        return run_load(1);
    if (strcmp(mode, "hold") == 0)
        return run_hold();
    usage();
    return 2;
}
