/*
 * bad_ca: secure upgrades that must fail, promptly and on both ends.
 *
 *   bad_ca SERVER_CRT SERVER_KEY CA_CRT OTHER_CA_CRT
 *
 * Each case forks a server that calls __pmSecureServerHandshake on one
 * loopback connection, while this process is the client:
 *   1. the client trusts OTHER_CA_CRT (tls.conf via PCP_TLSCONF_PATH), so
 *      the server's certificate is not trusted: the client gets PM_ERR_TLS;
 *   2. the client trusts the right CA but asks for a host name that is not
 *      on the server's certificate: PM_ERR_TLS;
 *   3. the server requires a client certificate (PDU_FLAG_CERT_REQD) and the
 *      client has none: PM_ERR_NEEDCLIENTCERT.
 * In every case the server's handshake, begun by __pmSecureServerHandshake
 * (which returns 0: the handshake goes on as the client's bytes arrive) and
 * completed by the server's first __pmRecv, fails too (negative), the
 * failed descriptor refuses to carry plaintext afterwards, and nothing
 * waits for a time-out: the handshake time-out is set to HANDSHAKE_TIMEOUT
 * seconds, so a handshake that waited for it takes that long, and one that
 * failed by itself ends in well under half of it however loaded the machine
 * is (an alarm() ends a hanging run).
 */
#include "common.h"

#include <libgen.h>

/* PCP_SECURE_HANDSHAKE_TIMEOUT for both ends, and the bound under which a
 * failed handshake counts as prompt (half of it). */
#define HANDSHAKE_TIMEOUT "60"
#define PROMPT_LIMIT 30.0

static pid_t child_pid;

static void on_alarm(int sig)
{
    static const char msg[] = "FAIL - bad_ca: timed out (alarm); a failing handshake hangs\n";
    (void)sig;
    if (write(1, msg, sizeof(msg) - 1) < 0) {
        /* nothing more to do */
    }
    if (child_pid > 0)
        kill(child_pid, SIGKILL);
    _exit(2);
}

struct scase {
    const char *name;
    int flags;            /* connection flags, both ends */
    const char *host;     /* name the client verifies */
    int trust_other;      /* client trusts OTHER_CA_CRT instead of CA_CRT */
    int want;             /* the client's expected status */
};

static const char *server_crt, *server_key, *ca_crt, *other_ca_crt;

static int server_side(int lfd, const struct scase *c)
{
    __pmSecureConfig tls = server_config(server_crt, server_key, ca_crt);
    void *ctx;
    int fd, sts;
    double t0, dt;
    char name[64], b = 'x';
    ssize_t n;

    snprintf(name, sizeof(name), "bad_ca/server[%s]", c->name);
    t_init(strdup(name));
    t_passed = t_failed = 0;
    alarm(120);
    ctx = __pmSecureServerInit(&tls);
    check(ctx != NULL, "__pmSecureServerInit");
    fd = accept_one(lfd);
    close(lfd);
    t0 = now_s();
    sts = __pmSecureServerHandshake(fd, c->flags, NULL);
    check(sts == 0, "__pmSecureServerHandshake(fd, %#x, NULL) = %d (want 0: the handshake is begun)", c->flags, sts);
    n = __pmRecv(fd, &b, 1, 0);
    dt = now_s() - t0;
    check(n < 0, "__pmRecv completes the server's handshake, which fails (%zd, want < 0) after %.3fs", n, dt);
    check(dt < PROMPT_LIMIT, "the server's handshake failed promptly, not by its %ss time-out (%.3fs)",
          HANDSHAKE_TIMEOUT, dt);
    n = __pmSend(fd, &b, 1, 0);
    check(n < 0, "__pmSend on the descriptor whose upgrade failed is refused (%zd)", n);
    __pmCloseSocket(fd);
    check(!fd_is_open(fd), "__pmCloseSocket closed the descriptor");
    __pmSecureServerShutdown(ctx, &tls);
    return t_summary();
}

static void run_case(const struct scase *c)
{
    int lfd, port, fd, sts, status;
    char *conf;
    char info[128];
    char b = 'x';
    double t0, dt;
    ssize_t n;

    note("case \"%s\"", c->name);
    lfd = listen_loopback(&port);
    fflush(stdout);
    child_pid = fork();
    if (child_pid < 0)
        die("fork");
    if (child_pid == 0)
        _exit(server_side(lfd, c));
    close(lfd);

    conf = client_tlsconf(c->trust_other ? other_ca_crt : ca_crt, NULL, NULL);
    fd = connect_loopback(port);
    t0 = now_s();
    sts = __pmSecureClientHandshake(fd, c->flags, c->host, NULL);
    dt = now_s() - t0;
    check(sts == c->want, "%s: __pmSecureClientHandshake(fd, %#x, \"%s\", NULL) = %d (want %d) after %.3fs",
          c->name, c->flags, c->host, sts, c->want, dt);
    check(dt < PROMPT_LIMIT, "%s: the client's handshake failed promptly, not by its %ss time-out (%.3fs)", c->name,
          HANDSHAKE_TIMEOUT, dt);
    n = __pmSend(fd, &b, 1, 0);
    check(n < 0, "%s: __pmSend on the descriptor whose upgrade failed is refused (%zd)", c->name, n);
    sts = pcp_secure_session_info(fd, info, sizeof(info));
    check(sts != 1, "%s: pcp_secure_session_info does not report a TLS session (%d)", c->name, sts);
    __pmCloseSocket(fd);
    check(!fd_is_open(fd), "%s: __pmCloseSocket closed the descriptor", c->name);
    unlink(conf);

    status = wait_child(child_pid);
    child_pid = 0;
    check(status == 0, "%s: server process exited with status %d (want 0)", c->name, status);
}

int main(int argc, char **argv)
{
    static const struct scase cases[] = {
        {"untrusted CA", T_PDU_FLAG_SECURE | T_PDU_FLAG_SECURE_ACK, "localhost", 1, T_PM_ERR_TLS},
        {"wrong host name", T_PDU_FLAG_SECURE | T_PDU_FLAG_SECURE_ACK, "wronghost.invalid", 0, T_PM_ERR_TLS},
        {"no client certificate", T_PDU_FLAG_SECURE | T_PDU_FLAG_SECURE_ACK | T_PDU_FLAG_CERT_REQD, "localhost", 0,
         T_PM_ERR_NEEDCLIENTCERT},
    };
    size_t i;

    t_init(basename(argv[0]));
    if (argc != 5) {
        fprintf(stderr, "usage: %s SERVER_CRT SERVER_KEY CA_CRT OTHER_CA_CRT\n", argv[0]);
        return 2;
    }
    server_crt = argv[1];
    server_key = argv[2];
    ca_crt = argv[3];
    other_ca_crt = argv[4];
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    setenv("PCP_SECURE_HANDSHAKE_TIMEOUT", HANDSHAKE_TIMEOUT, 1);
    alarm(300);

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i]);
    return t_summary();
}
