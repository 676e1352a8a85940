/*
 * connloop: measure libpcp connection set-up (TCP connect + PCP handshake +
 * TLS handshake when secure) followed by one fetch and the close.
 *
 *   connloop HOST:PORT N [fork]
 *
 * Each of the N iterations does pmNewContext(PM_CONTEXT_HOST, HOST:PORT),
 * pmLookupName + one pmFetch of kernel.all.load and pmDestroyContext, timed
 * with CLOCK_MONOTONIC around those calls.
 *
 *   (default) all N iterations in this one process: a TLS implementation
 *             with a per-process session cache can resume sessions from the
 *             second connection on ("reconnect" case).
 *   fork      every iteration in a freshly forked child that has never used
 *             libpcp (the parent never calls libpcp): no TLS state, no session
 *             cache, every handshake is full ("first connection of a
 *             process" case, like pminfo, without the exec/ld.so start-up).
 *             The child measures itself and reports through a pipe.
 *
 * Output (one line, machine readable, times in microseconds):
 *   conns=N total_us=T mean_us=M median_us=D first_us=F rest_mean_us=R
 * where first_us is iteration 1 and rest_mean_us the mean of iterations 2..N.
 *
 * With CONNLOOP_PAUSE_US=U it sleeps U microseconds after each iteration
 * (outside the timing), so that the iterations can be told apart in traces.
 *
 * Exits non-zero on any libpcp error or a fetch without a value.
 *
 * Build: cc -O2 bench/connloop.c -lpcp -o connloop
 */
#define _GNU_SOURCE
#include <pcp/pmapi.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* one connect + fetch + close; returns elapsed us, or < 0 on error */
static double
one(const char *host, long iteration)
{
    const char *name = "kernel.all.load";
    pmResult *rp;
    pmID pmid = PM_ID_NULL;
    double t0, t1;
    int ctx, sts;

    t0 = now_us();
    if ((ctx = pmNewContext(PM_CONTEXT_HOST, host)) < 0) {
        fprintf(stderr, "connloop: #%ld pmNewContext(%s): %s\n", iteration, host, pmErrStr(ctx));
        return -1;
    }
    if ((sts = pmLookupName(1, &name, &pmid)) < 0 || pmid == PM_ID_NULL) {
        fprintf(stderr, "connloop: #%ld pmLookupName(%s): %s\n", iteration, name, pmErrStr(sts));
        return -1;
    }
    if ((sts = pmFetch(1, &pmid, &rp)) < 0) {
        fprintf(stderr, "connloop: #%ld pmFetch: %s\n", iteration, pmErrStr(sts));
        return -1;
    }
    if (rp->numpmid != 1 || rp->vset[0]->numval <= 0) {
        fprintf(stderr, "connloop: #%ld pmFetch: no value for %s\n", iteration, name);
        return -1;
    }
    pmFreeResult(rp);
    if ((sts = pmDestroyContext(ctx)) < 0) {
        fprintf(stderr, "connloop: #%ld pmDestroyContext: %s\n", iteration, pmErrStr(sts));
        return -1;
    }
    t1 = now_us();
    return t1 - t0;
}

/* run one iteration in a forked child; returns its elapsed us or < 0 */
static double
one_forked(const char *host, long iteration)
{
    int fds[2], status;
    double us = -1;
    pid_t pid;
    ssize_t got;

    if (pipe(fds) < 0) {
        perror("connloop: pipe");
        return -1;
    }
    fflush(NULL);
    if ((pid = fork()) < 0) {
        perror("connloop: fork");
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        us = one(host, iteration);
        if (write(fds[1], &us, sizeof(us)) != (ssize_t)sizeof(us))
            _exit(3);
        _exit(us < 0 ? 1 : 0);
    }
    close(fds[1]);
    do
        got = read(fds[0], &us, sizeof(us));
    while (got < 0 && errno == EINTR);
    close(fds[0]);
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        got != (ssize_t)sizeof(us)) {
        fprintf(stderr, "connloop: #%ld child failed\n", iteration);
        return -1;
    }
    return us;
}

static int
cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
    long n, k;
    int forked;
    double *t, total = 0, rest = 0, median;
    const char *pause_env = getenv("CONNLOOP_PAUSE_US");
    long pause_us = pause_env ? strtol(pause_env, NULL, 10) : 0;
    char *end;

    if (argc < 3 || argc > 4 || (argc == 4 && strcmp(argv[3], "fork") != 0)) {
        fprintf(stderr, "usage: %s HOST:PORT N [fork]\n", argv[0]);
        return 2;
    }
    n = strtol(argv[2], &end, 10);
    if (*end != '\0' || n <= 0 || n > 1000000) {
        fprintf(stderr, "connloop: bad count '%s'\n", argv[2]);
        return 2;
    }
    forked = argc == 4;
    if ((t = calloc((size_t)n, sizeof(double))) == NULL) {
        perror("connloop: calloc");
        return 1;
    }
    for (k = 0; k < n; k++) {
        t[k] = forked ? one_forked(argv[1], k + 1) : one(argv[1], k + 1);
        if (t[k] < 0)
            return 1;
        total += t[k];
        if (k > 0)
            rest += t[k];
        if (pause_us > 0)
            usleep((useconds_t)pause_us);
    }
    printf("conns=%ld total_us=%.0f mean_us=%.1f", n, total, total / (double)n);
    {
        double first = t[0];
        qsort(t, (size_t)n, sizeof(double), cmp);
        median = (n % 2) ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
        printf(" median_us=%.1f first_us=%.1f rest_mean_us=%.1f\n", median, first,
               n > 1 ? rest / (double)(n - 1) : first);
    }
    free(t);
    return 0;
}
