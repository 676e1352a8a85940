/*
 * nssdb: the NSS-era server setup entry points with their PCP 5 signatures,
 * serving TLS from an NSS sql: database made by certutil.
 *
 *   nssdb DB PASSWORD_FILE CA_CRT
 *
 * DB ("sql:DIR") is password-protected and holds "PCP Collector
 * certificate" (RSA) and "EC Collector" (ECDSA P-256), both issued for
 * localhost by the CA in CA_CRT. Checks:
 *   1. setups that must fail return a negative status and leave TLS off:
 *      unknown nickname, missing database, no password file for a
 *      database with a password;
 *   2. __pmSecureServerSetup(DB, PASSWORD_FILE) uses the default nickname
 *      and a client trusting CA_CRT completes the upgrade to "localhost";
 *   3. __pmSecureServerCertificateSetup(DB, PASSWORD_FILE, "EC Collector")
 *      serves the EC certificate, and a later failing setup leaves the
 *      working context in place (nothing half-applied).
 */
#include "common.h"

#include <libgen.h>

static pid_t child_pid;
static const char *db, *pwfile, *ca_crt;

static void on_alarm(int sig)
{
    static const char msg[] = "FAIL - nssdb: timed out (alarm); something hangs\n";
    (void)sig;
    if (write(1, msg, sizeof(msg) - 1) < 0) {
        /* nothing more to do */
    }
    if (child_pid > 0)
        kill(child_pid, SIGKILL);
    _exit(2);
}

/* One upgrade served in a child process with the current server context. */
static void round_trip(const char *what)
{
    int lfd, port, fd, sts, status;
    char info[128];
    unsigned char out[64], in[MAX_MSG];
    char *conf;
    ssize_t n;

    lfd = listen_loopback(&port);
    fflush(stdout);
    child_pid = fork();
    if (child_pid < 0)
        die("fork");
    if (child_pid == 0) {
        int sfd = accept_one(lfd);
        unsigned char buf[MAX_MSG];
        int ok = __pmSecureServerHandshake(sfd, T_PDU_FLAG_SECURE | T_PDU_FLAG_SECURE_ACK, NULL) == 0;
        ssize_t m = ok ? recv_msg(sfd, buf, 10.0) : -1;
        if (m > 0)
            ok = send_full(sfd, buf, (size_t)m) == m;
        __pmCloseSocket(sfd);
        _exit(ok && m > 0 ? 0 : 1);
    }
    close(lfd);

    conf = client_tlsconf(ca_crt, NULL, NULL);
    fd = connect_loopback(port);
    sts = __pmSecureClientHandshake(fd, T_PDU_FLAG_SECURE | T_PDU_FLAG_SECURE_ACK, "localhost", NULL);
    check(sts == 0, "%s: client upgrade to \"localhost\" verified against %s = %d (want 0)", what, ca_crt, sts);
    sts = pcp_secure_session_info(fd, info, sizeof(info));
    check(sts == 1, "%s: session is TLS (%s)", what, sts == 1 ? info : "-");
    make_msg(out, sizeof(out), MSG_ECHO, 7, 7);
    n = send_full(fd, out, sizeof(out));
    n = n == (ssize_t)sizeof(out) ? recv_msg(fd, in, 10.0) : -1;
    check(n == (ssize_t)sizeof(out) && msg_ok(in, sizeof(out), MSG_ECHO, 7, 7), "%s: message echoed through TLS",
          what);
    __pmCloseSocket(fd);
    unlink(conf);
    status = wait_child(child_pid);
    child_pid = 0;
    check(status == 0, "%s: server process exited with status %d (want 0)", what, status);
}

int main(int argc, char **argv)
{
    int sts;

    t_init(basename(argv[0]));
    if (argc != 4) {
        fprintf(stderr, "usage: %s DB PASSWORD_FILE CA_CRT\n", argv[0]);
        return 2;
    }
    db = argv[1];
    pwfile = argv[2];
    ca_crt = argv[3];
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm(60);

    sts = __pmSecureServerCertificateSetup(db, pwfile, "no such nickname");
    check(sts < 0, "__pmSecureServerCertificateSetup(%s, %s, \"no such nickname\") = %d (want < 0)", db, pwfile,
          sts);
    sts = __pmSecureServerSetup("sql:/nonexistent/nssdb", NULL);
    check(sts < 0, "__pmSecureServerSetup(\"sql:/nonexistent/nssdb\", NULL) = %d (want < 0)", sts);
    sts = __pmSecureServerSetup(db, NULL);
    check(sts < 0, "__pmSecureServerSetup(%s, NULL) without the password = %d (want < 0)", db, sts);
    check(__pmServerHasFeature(T_FEATURE_SECURE) == 0, "no TLS after failed setups");

    sts = __pmSecureServerSetup(db, pwfile);
    check(sts == 0, "__pmSecureServerSetup(%s, %s) = %d (want 0)", db, pwfile, sts);
    check(__pmServerHasFeature(T_FEATURE_SECURE) == 1, "TLS on after __pmSecureServerSetup");
    round_trip("default nickname");

    sts = __pmSecureServerCertificateSetup(db, pwfile, "EC Collector");
    check(sts == 0, "__pmSecureServerCertificateSetup(%s, %s, \"EC Collector\") = %d (want 0)", db, pwfile, sts);
    round_trip("EC Collector");

    sts = __pmSecureServerCertificateSetup(db, pwfile, "no such nickname");
    check(sts < 0, "a failing setup after a working one returns %d (want < 0)", sts);
    check(__pmServerHasFeature(T_FEATURE_SECURE) == 1, "the working context stays in place");
    round_trip("after a failed setup");

    __pmSecureServerShutdown(NULL, NULL);
    return t_summary();
}
