/*
 * plain: descriptors that never had a secure upgrade pass straight through.
 *
 *   plain
 *
 * __pmSend/__pmRecv/__pmRead/__pmWrite/select/__pmCloseSocket on a
 * socketpair and a pipe must behave like send/recv/read/write/select/close,
 * flags (MSG_PEEK, MSG_DONTWAIT) and errors (EAGAIN, EBADF) included; the
 * error helpers follow libpcp's conventions.
 */
#include "common.h"

#include <libgen.h>

static void on_alarm(int sig)
{
    static const char msg[] = "FAIL - plain: timed out (alarm)\n";
    (void)sig;
    if (write(1, msg, sizeof(msg) - 1) < 0) {
        /* nothing more to do */
    }
    _exit(2);
}

static int timed_select(int nfds, fd_set *r, fd_set *w, double seconds, double *elapsed)
{
    struct timeval tv;
    double t0 = now_s();
    int n;
    tv.tv_sec = (time_t)seconds;
    tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
    n = select(nfds, r, w, NULL, &tv);
    *elapsed = now_s() - t0;
    return n;
}

int main(int argc, char **argv)
{
    int sv[2], pfd[2], big, e, r;
    char buf[256], info[64];
    ssize_t n;
    fd_set rfds, wfds;
    double dt;
    const char hello[] = "hello, pmcd";

    (void)argc;
    t_init(basename(argv[0]));
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm(90);

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        die("socketpair");

    r = pcp_secure_session_info(sv[0], info, sizeof(info));
    check(r == 0, "pcp_secure_session_info on a plain socket = 0 (%d)", r);

    /* select on an idle socket waits for its time-out and reports nothing */
    FD_ZERO(&rfds);
    FD_SET(sv[1], &rfds);
    r = timed_select(sv[1] + 1, &rfds, NULL, 0.2, &dt);
    check(r == 0 && !FD_ISSET(sv[1], &rfds) && dt >= 0.15,
          "select() on an idle plain socket times out (result %d after %.3fs)", r, dt);

    n = __pmSend(sv[0], hello, sizeof(hello), 0);
    check(n == (ssize_t)sizeof(hello), "__pmSend on a plain socket sends %zu bytes (%zd)", sizeof(hello), n);

    FD_ZERO(&rfds);
    FD_SET(sv[1], &rfds);
    /* at once: well before the time-out, however loaded the machine */
    r = timed_select(sv[1] + 1, &rfds, NULL, 20.0, &dt);
    check(r == 1 && FD_ISSET(sv[1], &rfds) && dt < 10.0,
          "select() reports the plain socket readable at once (result %d after %.3fs)", r, dt);

    /* readable and writable at once: the count covers both sets, as select(2) */
    FD_ZERO(&rfds);
    FD_ZERO(&wfds);
    FD_SET(sv[1], &rfds);
    FD_SET(sv[0], &wfds);
    FD_SET(sv[1], &wfds);
    r = timed_select((sv[0] > sv[1] ? sv[0] : sv[1]) + 1, &rfds, &wfds, 2.0, &dt);
    check(r == 3 && FD_ISSET(sv[1], &rfds) && FD_ISSET(sv[0], &wfds) && FD_ISSET(sv[1], &wfds),
          "select() with read and write sets counts like select(2) (result %d, want 3)", r);

    memset(buf, 0, sizeof(buf));
    n = __pmRecv(sv[1], buf, sizeof(buf), MSG_PEEK);
    check(n == (ssize_t)sizeof(hello) && memcmp(buf, hello, sizeof(hello)) == 0,
          "__pmRecv passes MSG_PEEK through (%zd bytes peeked)", n);
    memset(buf, 0, sizeof(buf));
    n = __pmRecv(sv[1], buf, sizeof(buf), 0);
    check(n == (ssize_t)sizeof(hello) && memcmp(buf, hello, sizeof(hello)) == 0,
          "__pmRecv returns the same bytes again after the peek (%zd bytes)", n);

    errno = 0;
    n = __pmRecv(sv[1], buf, sizeof(buf), MSG_DONTWAIT);
    e = errno;
    check(n == -1 && (e == EAGAIN || e == EWOULDBLOCK),
          "__pmRecv(MSG_DONTWAIT) on an empty socket: -1 with EAGAIN (%zd, %s)", n, strerror(e));

    n = __pmWrite(sv[1], "pong", 4);
    check(n == 4, "__pmWrite on a plain socket (%zd)", n);
    memset(buf, 0, sizeof(buf));
    n = __pmRead(sv[0], buf, sizeof(buf));
    check(n == 4 && memcmp(buf, "pong", 4) == 0, "__pmRead on a plain socket (%zd)", n);

    /* pipes have no recv(): __pmRead/__pmWrite fall back to read/write */
    if (pipe(pfd) < 0)
        die("pipe");
    n = __pmWrite(pfd[1], "pipe data", 9);
    check(n == 9, "__pmWrite on a pipe (%zd)", n);
    memset(buf, 0, sizeof(buf));
    n = __pmRead(pfd[0], buf, sizeof(buf));
    check(n == 9 && memcmp(buf, "pipe data", 9) == 0, "__pmRead on a pipe (%zd)", n);
    close(pfd[0]);
    close(pfd[1]);

    /* a large transfer in pieces, through the pass-through path */
    {
        static unsigned char out[300000], in[300000];
        size_t done_out = 0, done_in = 0, i;
        int ok = 1;
        for (i = 0; i < sizeof(out); i++)
            out[i] = (unsigned char)(i * 13 + 5);
        fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
        while (done_in < sizeof(in) && ok) {
            if (done_out < sizeof(out)) {
                n = __pmSend(sv[0], out + done_out, sizeof(out) - done_out, 0);
                if (n > 0)
                    done_out += (size_t)n;
                else if (!(n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)))
                    ok = 0;
            }
            if (wait_readable(sv[1], 5.0) != 1) {
                ok = 0;
                break;
            }
            n = __pmRecv(sv[1], in + done_in, sizeof(in) - done_in, 0);
            if (n > 0)
                done_in += (size_t)n;
            else
                ok = 0;
        }
        check(ok && done_in == sizeof(in) && memcmp(in, out, sizeof(in)) == 0,
              "300000 bytes through __pmSend/select/__pmRecv on a non-blocking plain socket (%zu received)", done_in);
        fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) & ~O_NONBLOCK);
    }

    /* errors come back as the system calls give them */
    big = dup(sv[0]);
    close(big);
    errno = 0;
    n = __pmSend(big, "x", 1, 0);
    e = errno;
    check(n == -1 && e == EBADF, "__pmSend on a closed descriptor: -1 with EBADF (%zd, %s)", n, strerror(e));
    FD_ZERO(&rfds);
    FD_SET(big, &rfds);
    errno = 0;
    r = timed_select(big + 1, &rfds, NULL, 0.1, &dt);
    e = errno;
    check(r == -1 && e == EBADF, "select() on a closed descriptor: -1 with EBADF (%d, %s)", r, strerror(e));
    r = timed_select(0, NULL, NULL, 0.1, &dt);
    check(r == 0 && dt >= 0.08, "select() with no sets sleeps for its time-out (result %d after %.3fs)", r, dt);

    /* error helpers */
    r = __pmSecureSocketsError(-13);
    e = errno;
    check(r == -21357 && e == 21357, "__pmSecureSocketsError(-13) = %d, errno %d (want -21357, 21357)", r, e);
    errno = ECONNRESET;
    r = __pmSocketClosed();
    check(r == 1, "__pmSocketClosed() with errno ECONNRESET = %d (want 1)", r);
    errno = EPIPE;
    r = __pmSocketClosed();
    check(r == 1, "__pmSocketClosed() with errno EPIPE = %d (want 1)", r);
    errno = EINVAL;
    r = __pmSocketClosed();
    check(r == 0, "__pmSocketClosed() with errno EINVAL = %d (want 0)", r);

    /* __pmCloseSocket closes; the peer sees end of stream */
    __pmCloseSocket(sv[0]);
    check(!fd_is_open(sv[0]), "__pmCloseSocket closed the plain socket");
    FD_ZERO(&rfds);
    FD_SET(sv[1], &rfds);
    r = timed_select(sv[1] + 1, &rfds, NULL, 2.0, &dt);
    n = __pmRecv(sv[1], buf, sizeof(buf), 0);
    check(r == 1 && n == 0, "the peer sees end of stream after __pmCloseSocket (select %d, __pmRecv %zd)", r, n);
    __pmCloseSocket(sv[1]);
    check(!fd_is_open(sv[1]), "__pmCloseSocket closed the other end");

    return t_summary();
}
