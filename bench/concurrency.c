/*
 * concurrency: many simultaneous libpcp connections to one pmcd.
 *
 *   concurrency HOST:PORT N ROUNDS PMCD_PID [METRIC ...]
 *
 * 1. reads pmcd's VmRSS from /proc/PMCD_PID/status ("before");
 * 2. opens N PM_CONTEXT_HOST contexts to HOST:PORT and keeps them all open
 *    (each its own TCP connection and, when secure, its own TLS session);
 * 3. one warm-up pmFetch on every context, then reads pmcd's VmRSS ("open");
 * 4. ROUNDS rounds of one pmFetch on each of the N contexts (pmUseContext +
 *    pmFetch), timed with CLOCK_MONOTONIC; then pmcd's VmRSS again ("after");
 * 5. destroys all contexts; pmcd's VmRSS once more ("closed", after 0.3 s).
 *
 * Default metrics: those of fetchloop (kernel.all.load kernel.all.cpu.user
 * mem.util.free kernel.all.pswitch).
 *
 * Output (one line, machine readable; RSS in kB, times in microseconds):
 *   conns=N open_us=O fetches=F seconds=S fetches_per_sec=R
 *   pmcd_rss_before=B pmcd_rss_open=P pmcd_rss_after=A pmcd_rss_closed=C
 *   client_rss_before=b client_rss_after=a
 * (on one line). Exits non-zero on any libpcp error, a fetch without values,
 * or when pmcd's status cannot be read.
 *
 * Build: cc -O2 bench/concurrency.c -lpcp -o concurrency
 */
#define _GNU_SOURCE
#include <pcp/pmapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *default_metrics[] = {
    "kernel.all.load",
    "kernel.all.cpu.user",
    "mem.util.free",
    "kernel.all.pswitch",
};

static double
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* VmRSS of a process in kB, or -1 */
static long
vmrss(const char *pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%s/status", pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

static int
fetch_one(int nmetrics, pmID *pmids, int ctx)
{
    pmResult *rp;
    int sts, i;

    if ((sts = pmUseContext(ctx)) < 0) {
        fprintf(stderr, "concurrency: pmUseContext(%d): %s\n", ctx, pmErrStr(sts));
        return -1;
    }
    if ((sts = pmFetch(nmetrics, pmids, &rp)) < 0) {
        fprintf(stderr, "concurrency: pmFetch (context %d): %s\n", ctx, pmErrStr(sts));
        return -1;
    }
    if (rp->numpmid != nmetrics) {
        fprintf(stderr, "concurrency: pmFetch (context %d): %d pmids\n", ctx, rp->numpmid);
        return -1;
    }
    for (i = 0; i < nmetrics; i++) {
        if (rp->vset[i]->numval <= 0) {
            fprintf(stderr, "concurrency: pmFetch (context %d): no value for metric #%d\n", ctx, i);
            return -1;
        }
    }
    pmFreeResult(rp);
    return 0;
}

int
main(int argc, char **argv)
{
    const char **names;
    const char *pmcd_pid;
    pmID *pmids;
    int *ctx, nmetrics, sts, i;
    long n, rounds, r, rss_before, rss_open, rss_after, rss_closed, crss_before, crss_after;
    double t0, t1, o0, o1;
    char self[32], *end;

    if (argc < 5) {
        fprintf(stderr, "usage: %s HOST:PORT N ROUNDS PMCD_PID [METRIC ...]\n", argv[0]);
        return 2;
    }
    n = strtol(argv[2], &end, 10);
    if (*end != '\0' || n <= 0 || n > 100000) {
        fprintf(stderr, "concurrency: bad connection count '%s'\n", argv[2]);
        return 2;
    }
    rounds = strtol(argv[3], &end, 10);
    if (*end != '\0' || rounds <= 0 || rounds > 1000000) {
        fprintf(stderr, "concurrency: bad round count '%s'\n", argv[3]);
        return 2;
    }
    pmcd_pid = argv[4];
    if (argc > 5) {
        names = (const char **)&argv[5];
        nmetrics = argc - 5;
    } else {
        names = default_metrics;
        nmetrics = (int)(sizeof(default_metrics) / sizeof(default_metrics[0]));
    }
    snprintf(self, sizeof(self), "%d", (int)getpid());

    ctx = calloc((size_t)n, sizeof(int));
    pmids = calloc((size_t)nmetrics, sizeof(pmID));
    if (ctx == NULL || pmids == NULL) {
        perror("concurrency: calloc");
        return 1;
    }

    if ((rss_before = vmrss(pmcd_pid)) < 0) {
        fprintf(stderr, "concurrency: cannot read /proc/%s/status\n", pmcd_pid);
        return 1;
    }
    crss_before = vmrss(self);

    o0 = now_us();
    for (i = 0; i < n; i++) {
        if ((ctx[i] = pmNewContext(PM_CONTEXT_HOST, argv[1])) < 0) {
            fprintf(stderr, "concurrency: pmNewContext #%d of %ld (%s): %s\n", i + 1, n, argv[1],
                    pmErrStr(ctx[i]));
            return 1;
        }
    }
    o1 = now_us();

    /* names are looked up on the last context; PMIDs are the same on all */
    if ((sts = pmLookupName(nmetrics, names, pmids)) != nmetrics) {
        fprintf(stderr, "concurrency: pmLookupName: %s\n",
                sts < 0 ? pmErrStr(sts) : "not all names found");
        return 1;
    }
    for (i = 0; i < n; i++)
        if (fetch_one(nmetrics, pmids, ctx[i]) < 0)
            return 1;
    rss_open = vmrss(pmcd_pid);

    t0 = now_us();
    for (r = 0; r < rounds; r++)
        for (i = 0; i < n; i++)
            if (fetch_one(nmetrics, pmids, ctx[i]) < 0)
                return 1;
    t1 = now_us();
    rss_after = vmrss(pmcd_pid);
    crss_after = vmrss(self);

    for (i = 0; i < n; i++) {
        if ((sts = pmDestroyContext(ctx[i])) < 0) {
            fprintf(stderr, "concurrency: pmDestroyContext(%d): %s\n", ctx[i], pmErrStr(sts));
            return 1;
        }
    }
    usleep(300000);
    rss_closed = vmrss(pmcd_pid);

    printf("conns=%ld open_us=%.0f fetches=%ld seconds=%.6f fetches_per_sec=%.1f "
           "pmcd_rss_before=%ld pmcd_rss_open=%ld pmcd_rss_after=%ld pmcd_rss_closed=%ld "
           "client_rss_before=%ld client_rss_after=%ld\n",
           n, o1 - o0, n * rounds, (t1 - t0) / 1e6, (double)(n * rounds) / ((t1 - t0) / 1e6),
           rss_before, rss_open, rss_after, rss_closed, crss_before, crss_after);
    free(ctx);
    free(pmids);
    return 0;
}
