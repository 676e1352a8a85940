/*
 * fetchloop: measure pmFetch throughput over ONE libpcp connection.
 *
 *   fetchloop HOST:PORT [N [METRIC ...]]
 *
 * Opens a PM_CONTEXT_HOST context to HOST:PORT, looks up the metrics
 * (default: kernel.all.load kernel.all.cpu.user mem.util.free
 * kernel.all.pswitch), performs one warm-up fetch, then N pmFetch calls
 * (default 5000) timed with clock_gettime(CLOCK_MONOTONIC).
 *
 * Output (one line, machine readable):
 *   fetches=N seconds=S fetches_per_sec=R usec_per_fetch=U cpu_usec_per_fetch=C
 * where C is this process's own CPU time (user+sys, CLOCK_PROCESS_CPUTIME_ID)
 * per fetch over the timed loop.
 *
 * With FETCHLOOP_PROVIDER=1 in the environment it first prints which shared
 * objects provide the TLS entry points in this process (to check that an
 * LD_PRELOADed replacement really is the one in use).
 *
 * Exits non-zero on any libpcp error, or if a fetch returns no value for a
 * metric, so that a broken transport can never produce a figure.
 *
 * Build: cc -O2 bench/fetchloop.c -lpcp -o fetchloop
 */
#define _GNU_SOURCE
#include <pcp/pmapi.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *default_metrics[] = {
    "kernel.all.load",
    "kernel.all.cpu.user",
    "mem.util.free",
    "kernel.all.pswitch",
};

static double
now(clockid_t clock)
{
    struct timespec ts;

    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
print_providers(void)
{
    static const char *syms[] = {
        "__pmSecureClientHandshake", "__pmSend", "__pmRecv", "select",
    };
    size_t i;

    for (i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
        void *addr = dlsym(RTLD_DEFAULT, syms[i]);
        Dl_info info;

        if (addr != NULL && dladdr(addr, &info) != 0 && info.dli_fname != NULL)
            printf("provider %s %s\n", syms[i], info.dli_fname);
        else
            printf("provider %s ?\n", syms[i]);
    }
}

static int
check_result(const pmResult *rp, int nmetrics, long iteration)
{
    int i;

    if (rp->numpmid != nmetrics) {
        fprintf(stderr, "fetchloop: fetch %ld: %d pmids returned, expected %d\n",
                iteration, rp->numpmid, nmetrics);
        return -1;
    }
    for (i = 0; i < rp->numpmid; i++) {
        if (rp->vset[i]->numval <= 0) {
            fprintf(stderr, "fetchloop: fetch %ld: metric #%d: %s\n", iteration, i,
                    rp->vset[i]->numval < 0 ? pmErrStr(rp->vset[i]->numval)
                                            : "no values");
            return -1;
        }
    }
    return 0;
}

int
main(int argc, char **argv)
{
    const char **names;
    pmID *pmids;
    pmResult *rp;
    int nmetrics, ctx, sts, i;
    long n = 5000, k;
    double t0, t1, c0, c1, secs;

    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fprintf(stderr, "usage: %s HOST:PORT [N [METRIC ...]]\n", argv[0]);
        return 2;
    }
    if (argc >= 3) {
        char *end;
        n = strtol(argv[2], &end, 10);
        if (*end != '\0' || n <= 0) {
            fprintf(stderr, "fetchloop: bad fetch count '%s'\n", argv[2]);
            return 2;
        }
    }
    if (argc >= 4) {
        names = (const char **)&argv[3];
        nmetrics = argc - 3;
    } else {
        names = default_metrics;
        nmetrics = (int)(sizeof(default_metrics) / sizeof(default_metrics[0]));
    }

    if (getenv("FETCHLOOP_PROVIDER") != NULL)
        print_providers();

    if ((ctx = pmNewContext(PM_CONTEXT_HOST, argv[1])) < 0) {
        fprintf(stderr, "fetchloop: pmNewContext(%s): %s\n", argv[1], pmErrStr(ctx));
        return 1;
    }

    pmids = calloc((size_t)nmetrics, sizeof(pmID));
    if (pmids == NULL) {
        perror("fetchloop: calloc");
        return 1;
    }
    if ((sts = pmLookupName(nmetrics, names, pmids)) < 0) {
        fprintf(stderr, "fetchloop: pmLookupName: %s\n", pmErrStr(sts));
        return 1;
    }
    if (sts != nmetrics) {
        fprintf(stderr, "fetchloop: pmLookupName: only %d of %d names found\n", sts, nmetrics);
        return 1;
    }
    for (i = 0; i < nmetrics; i++) {
        if (pmids[i] == PM_ID_NULL) {
            fprintf(stderr, "fetchloop: unknown metric %s\n", names[i]);
            return 1;
        }
    }

    /* warm-up fetch (also validates that every metric has values) */
    if ((sts = pmFetch(nmetrics, pmids, &rp)) < 0) {
        fprintf(stderr, "fetchloop: warm-up pmFetch: %s\n", pmErrStr(sts));
        return 1;
    }
    if (check_result(rp, nmetrics, 0) < 0)
        return 1;
    pmFreeResult(rp);

    c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    t0 = now(CLOCK_MONOTONIC);
    for (k = 1; k <= n; k++) {
        if ((sts = pmFetch(nmetrics, pmids, &rp)) < 0) {
            fprintf(stderr, "fetchloop: pmFetch #%ld: %s\n", k, pmErrStr(sts));
            return 1;
        }
        if (rp->numpmid != nmetrics || rp->vset[0]->numval <= 0) {
            if (check_result(rp, nmetrics, k) < 0)
                return 1;
        }
        pmFreeResult(rp);
    }
    t1 = now(CLOCK_MONOTONIC);
    c1 = now(CLOCK_PROCESS_CPUTIME_ID);
    secs = t1 - t0;

    pmDestroyContext(ctx);
    free(pmids);

    printf("fetches=%ld seconds=%.6f fetches_per_sec=%.1f usec_per_fetch=%.2f cpu_usec_per_fetch=%.2f\n",
           n, secs, (double)n / secs, secs * 1e6 / (double)n, (c1 - c0) * 1e6 / (double)n);
    return 0;
}
