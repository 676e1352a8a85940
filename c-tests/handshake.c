/*
 * handshake: both ends of PCP's secure upgrade through libpcp_secure's C ABI,
 * in two processes on a loopback TCP connection.
 *
 *   handshake SERVER_CRT SERVER_KEY CA_CRT CLIENT_CRT CLIENT_KEY
 *
 * The server (a forked child) builds its TLS context with
 * __pmSecureServerInit, accepts three connections and runs
 * __pmSecureServerHandshake on each, then echoes PDU-shaped messages. The
 * client (the parent) trusts CA_CRT through a tls.conf named by
 * PCP_TLSCONF_PATH and
 *   1. upgrades with SECURE|SECURE_ACK to "localhost", checks the session,
 *      echoes messages of 12 B to 100 KiB (larger than a 16 KiB TLS record),
 *      and checks that select() reports plaintext buffered in the TLS layer;
 *   2. reads the plaintext secure-ack PDU itself, checks its bytes, then
 *      upgrades with SECURE only, verifying the server as "127.0.0.1";
 *   3. upgrades with SECURE|SECURE_ACK|CERT_REQD presenting CLIENT_CRT.
 * Both ends close with __pmCloseSocket. The same source is also linked
 * statically against libpcp_secure.a (handshake_static).
 */
#include "common.h"

#include <libgen.h>

#define NBURST 8
/* A TLS 1.3 record of SMALL_LEN plaintext bytes on the wire: 5 bytes of
 * header, the inner content type, the 16-byte AEAD tag. */
#define BURST_RECORD (5 + SMALL_LEN + 1 + 16)
/* select() time-out where the descriptor must be reported at once, and the
 * bound under which it counts as at once (half of it, so that a loaded
 * machine does not turn a prompt answer into a failure). */
#define AT_ONCE_TIMEOUT 20.0
#define AT_ONCE_LIMIT 10.0

static pid_t child_pid;

static void on_alarm(int sig)
{
    static const char msg[] = "FAIL - handshake: timed out (alarm); something hangs\n";
    (void)sig;
    if (write(1, msg, sizeof(msg) - 1) < 0) {
        /* nothing more to do */
    }
    if (child_pid > 0)
        kill(child_pid, SIGKILL);
    _exit(2);
}

/* ------------------------------------------------------------------ server */

static void serve(int fd, int conn, int flags)
{
    static unsigned char buf[MAX_MSG];
    char info[128];
    int echoes = 0, bursts = 0;
    double t0 = now_s();
    int sts = __pmSecureServerHandshake(fd, flags, NULL);

    check(sts == 0, "connection %d: __pmSecureServerHandshake(fd, %#x, NULL) = %d (want 0) in %.3fs", conn,
          flags, sts, now_s() - t0);
    if (sts != 0) {
        __pmCloseSocket(fd);
        return;
    }
    sts = pcp_secure_session_info(fd, info, sizeof(info));
    check(sts == 1, "connection %d: server side pcp_secure_session_info = %d (%s)", conn, sts,
          sts == 1 ? info : "-");

    for (;;) {
        ssize_t n = recv_msg(fd, buf, 10.0);
        uint32_t type;
        if (n <= 0) {
            check(0, "connection %d: server read a message: %zd (%s)", conn, n,
                  n == 0 ? "end of stream before the client said bye" : "error");
            break;
        }
        type = get32(buf + 4);
        if (type == MSG_ECHO) {
            ssize_t w = send_full(fd, buf, (size_t)n);
            if (w != n)
                check(0, "connection %d: echo of %zd bytes: __pmSend gave %zd", conn, n, w);
            echoes++;
        } else if (type == MSG_BURST) {
            unsigned count = get32(buf + 8), i;
            int ok = 1;
            unsigned char small[SMALL_LEN];
            /* one __pmSend per message: one TLS record each, sent back to back */
            for (i = 0; i < count; i++) {
                make_msg(small, SMALL_LEN, MSG_SMALL, i, i);
                if (__pmSend(fd, small, SMALL_LEN, 0) != SMALL_LEN)
                    ok = 0;
            }
            check(ok, "connection %d: server sent a burst of %u small messages back to back", conn, count);
            bursts++;
        } else if (type == MSG_BYE) {
            int r = wait_readable(fd, 10.0);
            n = r == 1 ? __pmRecv(fd, buf, 1, 0) : -999;
            check(n == 0, "connection %d: after the client's bye and __pmCloseSocket, __pmRecv sees end of stream "
                  "(got %zd)", conn, n);
            break;
        } else {
            check(0, "connection %d: unexpected message type %#x", conn, type);
            break;
        }
    }
    note("connection %d: echoed %d messages, sent %d bursts", conn, echoes, bursts);
    __pmCloseSocket(fd);
    check(!fd_is_open(fd), "connection %d: __pmCloseSocket closed the server's descriptor", conn);
}

static int server_main(int lfd, const char *cert, const char *key, const char *ca)
{
    __pmSecureConfig tls = server_config(cert, key, ca);
    void *ctx;

    t_init("handshake/server");
    alarm(90);
    ctx = __pmSecureServerInit(&tls);
    check(ctx != NULL, "__pmSecureServerInit with %s, %s, CA %s", cert, key, ca);
    if (ctx == NULL)
        return t_summary();
    check(__pmServerHasFeature(T_FEATURE_SECURE) == 1, "__pmServerHasFeature(SECURE) = 1 after init");
    check(__pmServerHasFeature(T_FEATURE_CERT_REQD) == 0,
          "__pmServerHasFeature(CERT_REQD) = 0 (no -Q, no tls-verify-clients)");

    serve(accept_one(lfd), 1, T_PDU_FLAG_SECURE | T_PDU_FLAG_SECURE_ACK);
    serve(accept_one(lfd), 2, T_PDU_FLAG_SECURE | T_PDU_FLAG_SECURE_ACK);
    serve(accept_one(lfd), 3, T_PDU_FLAG_SECURE | T_PDU_FLAG_SECURE_ACK | T_PDU_FLAG_CERT_REQD);
    close(lfd);

    __pmSecureServerShutdown(ctx, &tls);
    check(__pmServerHasFeature(T_FEATURE_SECURE) == 0, "__pmServerHasFeature(SECURE) = 0 after shutdown");
    __pmSecureServerShutdown(NULL, NULL); /* as pmcd does at exit; must be harmless */
    return t_summary();
}

/* ------------------------------------------------------------------ client */

static int echo(int fd, int conn, size_t len, unsigned seed)
{
    static unsigned char out[MAX_MSG], in[MAX_MSG];
    ssize_t n;
    make_msg(out, len, MSG_ECHO, (uint32_t)len, seed);
    n = send_full(fd, out, len);
    if (n != (ssize_t)len) {
        check(0, "connection %d: __pmSend of a %zu-byte message returned %zd", conn, len, n);
        return 0;
    }
    memset(in, 0, len);
    n = recv_msg(fd, in, 10.0);
    check(n == (ssize_t)len && msg_ok(in, len, MSG_ECHO, (uint32_t)len, seed),
          "connection %d: %zu-byte message echoed intact through TLS (received %zd bytes)", conn, len, n);
    return n == (ssize_t)len;
}

static void bye(int fd, int conn)
{
    unsigned char msg[HDR_LEN];
    make_msg(msg, HDR_LEN, MSG_BYE, 0, 0);
    check(send_full(fd, msg, HDR_LEN) == HDR_LEN, "connection %d: bye sent", conn);
    __pmCloseSocket(fd);
    check(!fd_is_open(fd), "connection %d: __pmCloseSocket closed the client's descriptor", conn);
}

/* select() must see plaintext that rustls decrypted but nobody read yet. */
static void burst(int fd, int conn)
{
    unsigned char req[HDR_LEN], small[SMALL_LEN];
    fd_set rfds, wfds;
    struct timeval tv;
    double t0, dt;
    int got = 0, r, kq, ok;
    ssize_t n;

    make_msg(req, HDR_LEN, MSG_BURST, NBURST, 0);
    if (send_full(fd, req, HDR_LEN) != HDR_LEN) {
        check(0, "connection %d: burst request sent", conn);
        return;
    }
    r = wait_readable(fd, 10.0);
    check(r == 1, "connection %d: select() reports the burst's arrival (%d)", conn, r);
    /* Wait until every record of the burst is in our socket (polled, with a
     * generous bound; should it pass, the checks below still hold and only
     * say less). */
    t0 = now_s();
    while ((kq = kernel_pending(fd)) >= 0 && kq < NBURST * BURST_RECORD && now_s() - t0 < 10.0)
        usleep(5 * 1000);
    note("connection %d: %d bytes of TLS records queued in the kernel before the first __pmRecv (the burst is %d)",
         conn, kq, NBURST * BURST_RECORD);

    n = __pmRecv(fd, small, SMALL_LEN, 0);
    check(n == SMALL_LEN && msg_ok(small, SMALL_LEN, MSG_SMALL, 0, 0),
          "connection %d: first burst message received (%zd bytes)", conn, n);
    got = 1;
    /* Should the library have left records in the kernel, drain those first:
     * the point is a state where only the TLS layer holds data. */
    while (got < NBURST && kernel_pending(fd) > 0) {
        n = recv_full(fd, small, SMALL_LEN, 5.0);
        if (n != SMALL_LEN || !msg_ok(small, SMALL_LEN, MSG_SMALL, (uint32_t)got, (unsigned)got))
            break;
        got++;
    }
    if (got >= NBURST) {
        note("connection %d: the library read one TLS record per __pmRecv; nothing was left buffered, so the "
             "buffered-plaintext path of select() was not exercised", conn);
    } else {
        kq = kernel_pending(fd);
        check(kq == 0, "connection %d: kernel receive queue empty while %d messages are still unread (%d)", conn,
              NBURST - got, kq);

        t0 = now_s();
        r = wait_readable(fd, AT_ONCE_TIMEOUT);
        dt = now_s() - t0;
        check(r == 1 && dt < AT_ONCE_LIMIT,
              "connection %d: select() reports the descriptor readable at once while only the TLS layer holds "
              "plaintext (result %d after %.3fs)", conn, r, dt);

        /* with a write set too: both are reported and counted */
        FD_ZERO(&rfds);
        FD_ZERO(&wfds);
        FD_SET(fd, &rfds);
        FD_SET(fd, &wfds);
        tv.tv_sec = (time_t)AT_ONCE_TIMEOUT;
        tv.tv_usec = 0;
        t0 = now_s();
        r = select(fd + 1, &rfds, &wfds, NULL, &tv);
        dt = now_s() - t0;
        check(r == 2 && FD_ISSET(fd, &rfds) && FD_ISSET(fd, &wfds) && dt < AT_ONCE_LIMIT,
              "connection %d: select() with read and write sets returns 2, both set (got %d, read %d, write %d, "
              "%.3fs)", conn, r, FD_ISSET(fd, &rfds) ? 1 : 0, FD_ISSET(fd, &wfds) ? 1 : 0, dt);

        /* the rest is there without the kernel: plain __pmRecv calls */
        ok = 1;
        while (got < NBURST) {
            n = __pmRecv(fd, small, SMALL_LEN, 0);
            if (n != SMALL_LEN || !msg_ok(small, SMALL_LEN, MSG_SMALL, (uint32_t)got, (unsigned)got)) {
                ok = 0;
                break;
            }
            got++;
        }
        check(ok, "connection %d: the %d buffered messages read back intact", conn, NBURST);
    }

    t0 = now_s();
    r = wait_readable(fd, 0.3);
    dt = now_s() - t0;
    check(r == 0 && dt >= 0.25, "connection %d: select() times out once everything is read (result %d after %.3fs)",
          conn, r, dt);
}

static int connection1(int port)
{
    char info[128];
    int fd = connect_loopback(port);
    int sts;
    double t0;
    static const size_t sizes[] = {HDR_LEN, SMALL_LEN, 1000, 16384, 40000, 100000};
    size_t i;

    sts = pcp_secure_session_info(fd, info, sizeof(info));
    check(sts == 0, "connection 1: pcp_secure_session_info = 0 before the upgrade (%d)", sts);

    t0 = now_s();
    sts = __pmSecureClientHandshake(fd, T_PDU_FLAG_SECURE | T_PDU_FLAG_SECURE_ACK, "localhost", NULL);
    check(sts == 0, "connection 1: __pmSecureClientHandshake(fd, 0x11, \"localhost\", NULL) = %d (want 0) in %.3fs",
          sts, now_s() - t0);
    if (sts != 0) {
        __pmCloseSocket(fd);
        return 0;
    }
    memset(info, 0, sizeof(info));
    sts = pcp_secure_session_info(fd, info, sizeof(info));
    check(sts == 1 && strncmp(info, "TLSv1_3 TLS13_", 14) == 0,
          "connection 1: pcp_secure_session_info = %d, \"%s\" (want 1, \"TLSv1_3 TLS13_...\")", sts, info);
    {
        char tiny[8];
        memset(tiny, 'x', sizeof(tiny));
        sts = pcp_secure_session_info(fd, tiny, sizeof(tiny));
        check(sts == 1 && tiny[7] == '\0' && strncmp(tiny, info, 7) == 0,
              "connection 1: pcp_secure_session_info truncates to the buffer and NUL-terminates (\"%.8s\")", tiny);
    }

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        echo(fd, 1, sizes[i], (unsigned)i + 1);
    burst(fd, 1);
    echo(fd, 1, 2000, 99); /* the stream is still in step after the burst */
    bye(fd, 1);
    return 1;
}

static int connection2(int port)
{
    unsigned char ack[16];
    size_t have = 0;
    int fd = connect_loopback(port);
    int sts, r;

    /* The server speaks first, in plaintext: the 16-byte secure-ack PDU. */
    while (have < sizeof(ack)) {
        ssize_t n;
        r = wait_readable(fd, 10.0);
        if (r != 1)
            break;
        n = recv(fd, ack + have, sizeof(ack) - have, 0);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    check(have == sizeof(ack) && get32(ack) == 16 && get32(ack + 4) == T_PDU_ERROR && get32(ack + 8) == 0 &&
              get32(ack + 12) == 0,
          "connection 2: plaintext secure-ack PDU on the wire: len=16 type=0x7000 from=0 code=0 (got %zu bytes: "
          "len=%u type=%#x from=%u code=%d)",
          have, have >= 4 ? get32(ack) : 0, have >= 8 ? get32(ack + 4) : 0, have >= 12 ? get32(ack + 8) : 0,
          have >= 16 ? (int)get32(ack + 12) : 0);

    /* We consumed the ack ourselves, so ask for TLS only. */
    sts = __pmSecureClientHandshake(fd, T_PDU_FLAG_SECURE, "127.0.0.1", NULL);
    check(sts == 0, "connection 2: __pmSecureClientHandshake(fd, 0x1, \"127.0.0.1\", NULL) = %d (IP address SAN)",
          sts);
    if (sts != 0) {
        __pmCloseSocket(fd);
        return 0;
    }
    echo(fd, 2, 5000, 7);
    bye(fd, 2);
    return 1;
}

static int connection3(int port, const char *ca, const char *cert, const char *key)
{
    char *conf = client_tlsconf(ca, cert, key);
    int fd = connect_loopback(port);
    int sts = __pmSecureClientHandshake(fd, T_PDU_FLAG_SECURE | T_PDU_FLAG_SECURE_ACK | T_PDU_FLAG_CERT_REQD,
                                        "localhost", NULL);
    check(sts == 0,
          "connection 3: __pmSecureClientHandshake(fd, 0x91, \"localhost\", NULL) with a client certificate = %d",
          sts);
    if (sts == 0) {
        echo(fd, 3, 3000, 3);
        bye(fd, 3);
    } else {
        __pmCloseSocket(fd);
    }
    unlink(conf);
    return sts == 0;
}

int main(int argc, char **argv)
{
    const char *version;
    char *conf;
    int lfd, port, status;

    t_init(basename(argv[0]));
    if (argc != 6) {
        fprintf(stderr, "usage: %s SERVER_CRT SERVER_KEY CA_CRT CLIENT_CRT CLIENT_KEY\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    unsetenv("PCP_SECURE_HANDSHAKE_TIMEOUT");

    version = pcp_secure_version();
    check(version != NULL && strncmp(version, "libpcp_secure ", 14) == 0 && strstr(version, " (rustls ") != NULL,
          "pcp_secure_version() = \"%s\"", version ? version : "(null)");
    check(__pmServerHasFeature(T_FEATURE_SECURE) == 0,
          "__pmServerHasFeature(SECURE) = 0 in a process without a server context");

    lfd = listen_loopback(&port);
    note("server listening on 127.0.0.1:%d", port);
    fflush(stdout);
    child_pid = fork();
    if (child_pid < 0)
        die("fork");
    if (child_pid == 0)
        _exit(server_main(lfd, argv[1], argv[2], argv[3]));
    close(lfd);
    signal(SIGALRM, on_alarm);
    alarm(120);

    conf = client_tlsconf(argv[3], NULL, NULL);
    connection1(port);
    connection2(port);
    unlink(conf);
    connection3(port, argv[3], argv[4], argv[5]);

    status = wait_child(child_pid);
    child_pid = 0;
    check(status == 0, "server process exited with status %d (want 0)", status);
    return t_summary();
}
