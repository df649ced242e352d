/*
 * penlink-sim end to end: start it on a temporary socket with 30 simulated
 * days, talk to it with a minimal client (frames and envelopes from
 * penlink_protocol over the Unix socket), pull everything, compare with
 * ground-truth.jsonl, acknowledge, check DeviceInfo; a client that leaves
 * mid-pull; SIGTERM (exit 0, socket removed); a restart that finds the
 * acknowledged state; --help and a bad option.
 *
 * Usage: test_sim_e2e PATH_TO_PENLINK_SIM. PENLINK_WRAP (e.g. valgrind) is
 * put before the simulator.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fwtest.h"

/* The first simulated day, so that nothing depends on the calendar: 2026-03-02T00:00:00Z. */
#define START_TIME "1772409600000"

static const char *sim_path;
static char dir[64], sock[128];

typedef struct proc {
    pid_t pid;
    FILE *err; /* the simulator's stderr */
} proc;

/* Starts penlink-sim with @p args (a shell word list) and waits until it serves. */
static void start(proc *p, const char *args, bool serve)
{
    int fds[2];
    char cmd[1024];
    const char *wrap = getenv("PENLINK_WRAP");
    assert_int_equal(pipe(fds), 0);
    snprintf(cmd, sizeof cmd, "exec %s '%s' %s 2>&1", wrap ? wrap : "", sim_path, args);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    p->err = fdopen(fds[0], "r");
    assert_non_null(p->err);
    if (!serve)
        return;
    char line[512];
    for (;;) { /* -v announces when the socket listens */
        if (!fgets(line, sizeof line, p->err))
            fail_msg("penlink-sim ended before serving");
        if (strstr(line, "serving pen"))
            break;
    }
}

static int finish(proc *p)
{
    int status;
    char line[512];
    while (fgets(line, sizeof line, p->err))
        fputs(line, stderr); /* anything else it said (valgrind too) */
    fclose(p->err);
    assert_int_equal(waitpid(p->pid, &status, 0), p->pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- a minimal client --------------------------------------------------- */

typedef struct client {
    int fd;
    pl_frame_decoder dec;
    uint8_t *buf;
    uint8_t in[4096];
    size_t in_len, in_pos;
    uint32_t rid;
} client;

static void client_open(client *c)
{
    struct sockaddr_un a;
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    strcpy(a.sun_path, sock);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
    c->buf = malloc(PL_FRAME_HEADER_SIZE + PL_FRAME_MAX_PAYLOAD);
    assert_non_null(c->buf);
    assert_int_equal(pl_frame_decoder_init(&c->dec, c->buf,
                                           PL_FRAME_HEADER_SIZE + PL_FRAME_MAX_PAYLOAD,
                                           PL_FRAME_MAX_PAYLOAD),
                     PL_OK);
}

static void client_close(client *c)
{
    close(c->fd);
    free(c->buf);
}

static void client_send(client *c, pl_envelope *env)
{
    uint8_t buf[4096];
    env->has_request_id = 1;
    env->request_id = ++c->rid;
    size_t n = rig_frame(env, buf, sizeof buf);
    assert_int_equal(write(c->fd, buf, n), (ssize_t)n);
}

/* The next envelope from the pen (malloc'ed). */
static pl_envelope *client_recv(client *c)
{
    for (;;) {
        if (c->in_pos < c->in_len) {
            size_t used = 0;
            pl_frame f;
            pl_status st =
                pl_frame_decoder_feed(&c->dec, c->in + c->in_pos, c->in_len - c->in_pos, &used, &f);
            c->in_pos += used;
            if (st == PL_OK) {
                pl_envelope *e = pl_envelope_unpack(NULL, f.payload, f.len);
                assert_non_null(e);
                return e;
            }
            assert_int_equal(st, PL_NEED_MORE);
            continue;
        }
        ssize_t n = read(c->fd, c->in, sizeof c->in);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n > 0);
        c->in_len = (size_t)n;
        c->in_pos = 0;
    }
}

static pl_envelope *call(client *c, pl_envelope *env)
{
    client_send(c, env);
    pl_envelope *e = client_recv(c);
    if (e->request_id != c->rid)
        fail_msg("reply %u to request %u: %s", e->request_id, c->rid,
                 e->body_case == PENLINK__V1__ENVELOPE__BODY_ERROR ? e->error->message : "");
    return e;
}

static void hello(client *c)
{
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__Hello h = PENLINK__V1__HELLO__INIT;
    h.has_protocol_major = h.has_max_frame_payload = 1;
    h.protocol_major = 1;
    h.max_frame_payload = 1 << 20;
    h.client = "test_sim_e2e";
    env.body_case = PENLINK__V1__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    pl_envelope *e = call(c, &env);
    assert_int_equal(e->body_case, PENLINK__V1__ENVELOPE__BODY_HELLO_REPLY);
    assert_string_equal(e->hello_reply->serial, "E2E-0001");
    pl_envelope_free(NULL, e);
}

static pl_envelope *info(client *c)
{
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__GetInfo g = PENLINK__V1__GET_INFO__INIT;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_GET_INFO;
    env.get_info = &g;
    pl_envelope *e = call(c, &env);
    assert_int_equal(e->body_case, PENLINK__V1__ENVELOPE__BODY_DEVICE_INFO);
    return e;
}

/* Pulls from @p from to the end; decodes into @p out (grown). */
static size_t pull(client *c, uint64_t from, pl_record **out)
{
    pl_chunk_dec dec;
    size_t n = 0, cap = 0;
    assert_int_equal(pl_chunk_dec_init(&dec, PL_CHUNK_MAX_RECORDS, PL_CHUNK_MAX_RAW), PL_OK);
    for (bool more = true; more;) {
        pl_envelope env = PENLINK__V1__ENVELOPE__INIT;
        Penlink__V1__PullLog q = PENLINK__V1__PULL_LOG__INIT;
        q.has_from_seq = 1;
        q.from_seq = from;
        env.body_case = PENLINK__V1__ENVELOPE__BODY_PULL_LOG;
        env.pull_log = &q;
        client_send(c, &env);
        for (;;) {
            pl_envelope *e = client_recv(c);
            assert_int_equal(e->request_id, c->rid);
            if (e->body_case == PENLINK__V1__ENVELOPE__BODY_LOG_END) {
                more = e->log_end->more;
                from = e->log_end->next_seq;
                pl_envelope_free(NULL, e);
                break;
            }
            assert_int_equal(e->body_case, PENLINK__V1__ENVELOPE__BODY_LOG_CHUNK);
            Penlink__V1__LogChunk *k = e->log_chunk;
            if (n + k->record_count > cap) {
                cap = 2 * (n + k->record_count);
                *out = realloc(*out, cap * sizeof **out);
                assert_non_null(*out);
            }
            pl_chunk_expect ex = { k->first_seq, k->record_count, k->raw_size, 1 };
            uint32_t got;
            assert_int_equal(pl_chunk_decode(&dec, k->data.data, k->data.len, &ex, *out + n,
                                             k->record_count, &got),
                             PL_OK);
            n += got;
            pl_envelope_free(NULL, e);
        }
    }
    pl_chunk_dec_fini(&dec);
    return n;
}

static void test_month(void **state)
{
    proc p;
    client c;
    pl_record *got = NULL;
    char args[512], path[128], line[1024];
    (void)state;

    snprintf(args, sizeof args,
             "--state '%s/state' --listen '%s' --serial E2E-0001 --seed 5 --simulate-days 30 "
             "--start-time " START_TIME " --reuse-permille 50 -v",
             dir, sock);
    start(&p, args, true);
    client_open(&c);
    hello(&c);
    pl_envelope *e = info(&c);
    uint64_t next = e->device_info->log_next_seq;
    assert_true(e->device_info->log_first_seq == 0);
    assert_true(next > 4000); /* a month at a clinic */
    pl_envelope_free(NULL, e);

    size_t n = pull(&c, 0, &got);
    assert_int_equal(n, next);
    snprintf(path, sizeof path, "%s/state/ground-truth.jsonl", dir);
    FILE *gt = fopen(path, "r");
    assert_non_null(gt);
    size_t lines = 0;
    while (fgets(line, sizeof line, gt)) {
        pl_record r;
        assert_int_equal(fw_truth_parse(line, &r), 0);
        assert_true(lines < n);
        if (!pl_record_equal(&r, &got[lines]))
            fail_msg("seq %zu differs from the ground truth", lines);
        lines++;
    }
    fclose(gt);
    assert_int_equal(lines, n);

    /* acknowledge it all */
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__AckLog a = PENLINK__V1__ACK_LOG__INIT;
    a.has_through_seq = 1;
    a.through_seq = next - 1;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_ACK_LOG;
    env.ack_log = &a;
    e = call(&c, &env);
    assert_int_equal(e->body_case, PENLINK__V1__ENVELOPE__BODY_ACK_LOG_REPLY);
    assert_true(e->ack_log_reply->acked_seq == next);
    pl_envelope_free(NULL, e);
    e = info(&c);
    assert_true(e->device_info->log_acked_seq == next);
    assert_true(e->device_info->log_first_seq == next);
    assert_true(e->device_info->log_next_seq == next);
    assert_string_equal(e->device_info->serial, "E2E-0001");
    assert_true(e->device_info->device_time_ms > 1700000000000ll);
    pl_envelope_free(NULL, e);

    /* a client that leaves in the middle of a pull */
    Penlink__V1__PullLog q = PENLINK__V1__PULL_LOG__INIT;
    q.has_from_seq = 1;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_PULL_LOG;
    env.pull_log = &q;
    client_send(&c, &env);
    client_close(&c);
    /* the next one starts with garbage: the pen resynchronises */
    client_open(&c);
    assert_int_equal(write(c.fd, "\x00\x13garbage", 9), 9);
    e = client_recv(&c);
    assert_int_equal(rig_error_code(e), PENLINK__V1__ERROR_CODE__ERROR_MALFORMED_FRAME);
    assert_int_equal(e->request_id, 0);
    pl_envelope_free(NULL, e);
    hello(&c);
    e = info(&c);
    assert_true(e->device_info->log_acked_seq == next);
    pl_envelope_free(NULL, e);
    client_close(&c);

    kill(p.pid, SIGTERM);
    assert_int_equal(finish(&p), 0);
    struct stat st;
    assert_int_equal(stat(sock, &st), -1); /* socket removed */

    /* a restart finds the acknowledged state; --once exits with the client */
    snprintf(args, sizeof args, "--state '%s/state' --listen '%s' --once -v", dir, sock);
    start(&p, args, true);
    client_open(&c);
    hello(&c);
    e = info(&c);
    assert_true(e->device_info->log_acked_seq == next);
    assert_true(e->device_info->log_next_seq == next);
    pl_envelope_free(NULL, e);
    client_close(&c);
    assert_int_equal(finish(&p), 0);
    free(got);
}

static void test_cli(void **state)
{
    proc p;
    char args[256];
    (void)state;
    start(&p, "--help", false);
    char line[256];
    bool documented = false;
    while (fgets(line, sizeof line, p.err))
        documented |= strstr(line, "--simulate-days") != NULL;
    assert_true(documented);
    assert_int_equal(finish(&p), 0);
    start(&p, "--no-such-option", false);
    assert_int_equal(finish(&p), 2);
    /* the planted power cut: exit 3, and the next start recovers */
    snprintf(args, sizeof args,
             "--state '%s/cut' --simulate-days 3 --start-time " START_TIME " --power-cut-after 300",
             dir);
    start(&p, args, false);
    assert_int_equal(finish(&p), 3);
    snprintf(args, sizeof args, "--state '%s/cut' --simulate-days 1 --start-time " START_TIME, dir);
    start(&p, args, false);
    assert_int_equal(finish(&p), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_month),
        cmocka_unit_test(test_cli),
    };
    if (argc != 2) {
        fprintf(stderr, "usage: %s PENLINK_SIM\n", argv[0]);
        return 2;
    }
    sim_path = argv[1];
    signal(SIGPIPE, SIG_IGN);
    strcpy(dir, "/tmp/penlink-e2e-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(sock, sizeof sock, "%s/pen.sock", dir);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
