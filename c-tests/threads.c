/*
 * Multi-threaded libpcp client for tests/robustness.rs: N threads, each with
 * its own PM_CONTEXT_HOST context to the same pmcd, fetch kernel.all.load
 * COUNT times concurrently. With libpcp_secure preloaded and
 * PCP_SECURE_SOCKETS=enforce every context is a TLS connection, so this
 * drives concurrent handshakes, reads, writes and closes through the
 * library from several threads at once.
 *
 *   threads HOST[:PORT] [NTHREADS] [COUNT] [reconnect]
 *
 * With "reconnect" every fetch uses a new context (connect, TLS handshake,
 * fetch, close), so descriptors are opened and closed in all threads at
 * once and their numbers are reused across threads.
 *
 * Prints one line per thread and a summary "threads: P passed, F failed";
 * exits 0 only when every thread passed.
 */
#include <pcp/pmapi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 64

struct job {
    int index;
    const char *host;
    int count;
    int reconnect;
    pthread_barrier_t *start;
    /* results */
    int fetched;
    int failed;
    char why[256];
};

static void *run(void *arg)
{
    struct job *job = arg;
    const char *name = "kernel.all.load";
    pmID pmid;
    int ctx, sts, i;

    pthread_barrier_wait(job->start);
    ctx = pmNewContext(PM_CONTEXT_HOST, job->host);
    if (ctx < 0) {
        snprintf(job->why, sizeof(job->why), "pmNewContext(%s): %s", job->host,
                 pmErrStr(ctx));
        job->failed = 1;
        return NULL;
    }
    if ((sts = pmUseContext(ctx)) < 0) {
        snprintf(job->why, sizeof(job->why), "pmUseContext(%d): %s", ctx, pmErrStr(sts));
        job->failed = 1;
        goto out;
    }
    if ((sts = pmLookupName(1, (const char **)&name, &pmid)) < 0) {
        snprintf(job->why, sizeof(job->why), "pmLookupName: %s", pmErrStr(sts));
        job->failed = 1;
        goto out;
    }
    for (i = 0; i < job->count; i++) {
        pmResult *rp = NULL;
        sts = pmFetch(1, &pmid, &rp);
        if (sts < 0) {
            snprintf(job->why, sizeof(job->why), "pmFetch #%d: %s", i, pmErrStr(sts));
            job->failed = 1;
            goto out;
        }
        if (rp->numpmid != 1 || rp->vset[0]->numval != 3) {
            snprintf(job->why, sizeof(job->why), "pmFetch #%d: numpmid %d numval %d", i,
                     rp->numpmid, rp->numpmid > 0 ? rp->vset[0]->numval : -1);
            pmFreeResult(rp);
            job->failed = 1;
            goto out;
        }
        pmFreeResult(rp);
        job->fetched++;
    }
out:
    if ((sts = pmDestroyContext(ctx)) < 0 && !job->failed) {
        snprintf(job->why, sizeof(job->why), "pmDestroyContext(%d): %s", ctx, pmErrStr(sts));
        job->failed = 1;
    }
    return NULL;
}

/* One fetch of kernel.all.load on a fresh context, destroyed afterwards. */
static int fetch_once(struct job *job, int i)
{
    const char *name = "kernel.all.load";
    pmResult *rp = NULL;
    pmID pmid;
    int ctx, sts, ok = 0;

    if ((ctx = pmNewContext(PM_CONTEXT_HOST, job->host)) < 0) {
        snprintf(job->why, sizeof(job->why), "connection #%d: pmNewContext(%s): %s", i,
                 job->host, pmErrStr(ctx));
        return 0;
    }
    if ((sts = pmUseContext(ctx)) < 0)
        snprintf(job->why, sizeof(job->why), "connection #%d: pmUseContext: %s", i, pmErrStr(sts));
    else if ((sts = pmLookupName(1, (const char **)&name, &pmid)) < 0)
        snprintf(job->why, sizeof(job->why), "connection #%d: pmLookupName: %s", i, pmErrStr(sts));
    else if ((sts = pmFetch(1, &pmid, &rp)) < 0)
        snprintf(job->why, sizeof(job->why), "connection #%d: pmFetch: %s", i, pmErrStr(sts));
    else if (rp->numpmid != 1 || rp->vset[0]->numval != 3)
        snprintf(job->why, sizeof(job->why), "connection #%d: numpmid %d numval %d", i,
                 rp->numpmid, rp->numpmid > 0 ? rp->vset[0]->numval : -1);
    else
        ok = 1;
    if (rp)
        pmFreeResult(rp);
    if ((sts = pmDestroyContext(ctx)) < 0 && ok) {
        snprintf(job->why, sizeof(job->why), "connection #%d: pmDestroyContext: %s", i,
                 pmErrStr(sts));
        ok = 0;
    }
    return ok;
}

static void *run_reconnecting(void *arg)
{
    struct job *job = arg;
    int i;

    pthread_barrier_wait(job->start);
    for (i = 0; i < job->count; i++) {
        if (!fetch_once(job, i)) {
            job->failed = 1;
            break;
        }
        job->fetched++;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t tid[MAX_THREADS];
    struct job jobs[MAX_THREADS];
    pthread_barrier_t start;
    int n = 8, count = 300, i, passed = 0, failed = 0;

    int reconnect = 0;

    if (argc < 2 || argc > 5) {
        fprintf(stderr, "usage: %s HOST[:PORT] [NTHREADS] [COUNT] [reconnect]\n", argv[0]);
        return 2;
    }
    if (argc > 2)
        n = atoi(argv[2]);
    if (argc > 3)
        count = atoi(argv[3]);
    if (argc > 4) {
        if (strcmp(argv[4], "reconnect") != 0) {
            fprintf(stderr, "unknown mode %s\n", argv[4]);
            return 2;
        }
        reconnect = 1;
    }
    if (n < 1 || n > MAX_THREADS || count < 1) {
        fprintf(stderr, "bad NTHREADS %d or COUNT %d\n", n, count);
        return 2;
    }
    pthread_barrier_init(&start, NULL, (unsigned)n);
    memset(jobs, 0, sizeof(jobs));
    for (i = 0; i < n; i++) {
        jobs[i].index = i;
        jobs[i].host = argv[1];
        jobs[i].count = count;
        jobs[i].reconnect = reconnect;
        jobs[i].start = &start;
        if (pthread_create(&tid[i], NULL, reconnect ? run_reconnecting : run, &jobs[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 2;
        }
    }
    for (i = 0; i < n; i++) {
        pthread_join(tid[i], NULL);
        if (jobs[i].failed) {
            failed++;
            printf("thread %d: FAILED after %d fetches: %s\n", i, jobs[i].fetched, jobs[i].why);
        } else {
            passed++;
            printf("thread %d: ok, %d fetches\n", i, jobs[i].fetched);
        }
    }
    pthread_barrier_destroy(&start);
    printf("threads: %d passed, %d failed\n", passed, failed);
    fflush(stdout);
    return failed == 0 ? 0 : 1;
}
