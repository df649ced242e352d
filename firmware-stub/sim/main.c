/*
 * penlink-sim: the pen's device core built for the host, over a flash image
 * in a state directory, serving the penlink protocol on a Unix stream
 * socket (the stream transport), one client at a time.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "replay.h"
#include "simulator.h"
#include "tamper.h"

static const char usage_text[] =
    "Usage: penlink-sim --state DIR [--listen PATH] [options]\n"
    "       penlink-sim --replay TRACE --listen PATH [-v]\n"
    "\n"
    "A simulated penlink pen: the device core over a flash image kept in DIR,\n"
    "serving the penlink protocol on a Unix stream socket, one client at a time.\n"
    "\n"
    "  --state DIR              state directory (created if missing, in a parent\n"
    "                           directory that must exist): flash.bin,\n"
    "                           sim.state, device.key, config-keys,\n"
    "                           ground-truth.jsonl (one JSON object per record the\n"
    "                           pen logged, appended run after run), planted.jsonl\n"
    "                           (one per finding planted, as an audit must report\n"
    "                           it: kind, pen, seq, time_ms, ...); one simulator\n"
    "                           at a time (it locks DIR/sim.lock)\n"
    "  --listen PATH            serve on this Unix socket; without it the simulator\n"
    "                           exits after simulating\n"
    "  --serial S               the pen's serial number (new state; default PLS + seed)\n"
    "  --seed N                 usage model seed (default 1)\n"
    "  --simulate-days D        run D days of clinic usage on accelerated time before\n"
    "                           serving (the days before today, or after the last\n"
    "                           simulated day)\n"
    "  --start-time MS          first simulated day, ms since the epoch; the pen's\n"
    "                           clock then never catches up with the host's, so the\n"
    "                           whole log is independent of the calendar (kept in\n"
    "                           the state)\n"
    "  --reuse-permille N       treatments that try a used cartridge, per 1000 (0)\n"
    "  --fault-permille N       treatments with a fault, per 1000 (10)\n"
    "  --power-cycle-permille N gaps between treatments with a power cycle, per 1000\n"
    "                           (30); the core reboots from flash at each one\n"
    "  --over-limit-permille N  treatments that run past the pen's max_treatment_s,\n"
    "                           per 1000 (0); the pen logs them, it does not stop them\n"
    "Planted findings, each seeded and off by default (per 1000 treatments, or\n"
    "gaps between them); the audit must report each, see planted.jsonl:\n"
    "  --no-cartridge-permille N  a treatment started with no cartridge (a firmware\n"
    "                           that lets it)\n"
    "  --depth-out-permille N   a depth past depth_max_um (a clamp that failed)\n"
    "  --speed-out-permille N   a speed past speed_max_sps (a clamp that failed)\n"
    "  --clock-glitch-permille N  the clock jumps back 2-4 h during a treatment,\n"
    "                           nothing logged\n"
    "  --clock-set-permille N   the clock set by 2-6 h between treatments (CLOCK_SET)\n"
    "  --config-refused-permille N  a refused configuration change (SECURITY_EVENT)\n"
    "  --reuse-from DIR         another pen's state: its used cartridges ...\n"
    "  --cross-reuse-permille N ... reinserted here, their chips reset (cross-pen\n"
    "                           reuse)\n"
    "  --replace-key            a new device key for this serial (a replaced pen or\n"
    "                           a clone): the next pull into an archive that knew it\n"
    "                           is refused, key_changed\n"
    "  (cartridge reuse: --reuse-permille, with --max-uses above 1; refusals: with\n"
    "  --max-uses 1; treatments too long: --over-limit-permille; log overflow and a\n"
    "  gap: a --flash-size too small for the days simulated; a pull that seals\n"
    "  records on a full flash drops more, planted as it happens. An overflow\n"
    "  planted at the end of the days may be dropped in turn by that pull: the\n"
    "  pen then adds its count to its next log_overflow)\n"
    "\n"
    "  --config-key KEY         provision a new state with this config-signing public\n"
    "                           key (64 hex digits, or a file from penlink keys\n"
    "                           generate); up to 4. With one, the pen refuses\n"
    "                           unsigned configuration. Fixed once the state exists\n"
    "  --sign-with-other-key    planted fault: sign log heads with a key that is not\n"
    "                           the pen's (a pen claiming another's identity)\n"
    "  --tamper MODE            planted fault on the way to the host, in the first\n"
    "                           pull: flip (a bit of the 2nd chunk), drop (the 2nd\n"
    "                           chunk), swap (the 2nd and 3rd chunks), splice (the\n"
    "                           1st chunk again instead of the 2nd)\n"
    "  --max-uses N             set the pen's max_cartridge_uses to N (a misconfigured\n"
    "                           pen accepts reused cartridges); logged as CONFIG_CHANGED\n"
    "  --clock-offset-ms N      the pen's clock runs N ms ahead of true time (kept)\n"
    "  --flash-size BYTES       flash of a new state (default 1048576)\n"
    "  --sector-size BYTES      erase sector of a new state (default 4096)\n"
    "  --batch N                records per staging batch of a new state (default 512)\n"
    "  --live[=MS]              keep generating usage while serving, one event every MS\n"
    "                           milliseconds (default 200)\n"
    "  --power-cut-after N      the N-th flash program/erase is torn and the simulator\n"
    "                           stops at once, like a pen losing power (exit code 3)\n"
    "  --protocol-major N       speak protocol major version N (to test mismatches)\n"
    "  --pull-window N          send at most N chunks (1..32) per PullLog, fewer than\n"
    "                           a host may ask for (default 32), so that a small log\n"
    "                           is pulled in several rounds (tests of the pull)\n"
    "  --once                   exit after the first client disconnects\n"
    "  --unplug-after-frames N  pull the cable right after the N-th frame the pen\n"
    "                           sends (the host sees the connection end, the pen\n"
    "                           keeps running); the next connection is served\n"
    "  --hang-after-frames N    the pen hangs right after the N-th frame it sends: it\n"
    "                           keeps the connection and reads what the host sends,\n"
    "                           but answers nothing more, until the host disconnects\n"
    "                           (a replug); the next connection is served\n"
    "  --stats                  print flash statistics before exiting\n"
    "  --replay TRACE           serve the pen's side of a recorded session instead\n"
    "                           of a pen (TRACE: a `penlink --trace` file, or a\n"
    "                           usbmon or USBPcap capture of a pen), to one host:\n"
    "                           each frame the host sends must equal the next one\n"
    "                           it sent in the recording, and is answered with the\n"
    "                           frames the pen sent after it. A host that departs\n"
    "                           gets an Error (code INTERNAL, field \"replay\")\n"
    "                           naming the packet of TRACE where it departed, and\n"
    "                           penlink-sim exits with status 5. No --state\n"
    "  -v, --verbose            progress messages on stderr\n"
    "  -h, --help               this text\n"
    "\n"
    "SIGINT or SIGTERM shuts down cleanly: the flash image is synced, the socket\n"
    "removed. A client that disconnects mid-pull leaves the pen consistent.\n"
    "\n"
    "A SIGKILL (or a crash) at any moment keeps the pen: sim.state and the key\n"
    "files are replaced atomically when they change, so a restart on DIR finds\n"
    "the same serial, key and flash. ground-truth.jsonl and the flash agree: a\n"
    "record's line is written before its flash slot, and a restart first cuts\n"
    "a line whose slot the kill kept from the flash (at most the last), then\n"
    "gives that seq to the next record. What a host was sent is on flash first.\n"
    "\n"
    "Exit status: 0 clean shutdown (with --replay: the host followed the\n"
    "recording to its end), 1 runtime error (I/O, socket, flash, an unreadable\n"
    "TRACE), 2 bad options or options that contradict DIR, 3 the planted power\n"
    "cut happened, 4 DIR is in use by another penlink-sim (the message names its\n"
    "pid), 5 the host departed from the recording (--replay).\n";

enum {
    OPT_STATE = 256,
    OPT_LISTEN,
    OPT_SERIAL,
    OPT_SEED,
    OPT_DAYS,
    OPT_START,
    OPT_REUSE,
    OPT_FAULT,
    OPT_CYCLE,
    OPT_OVER,
    OPT_CONFIG_KEY,
    OPT_OTHER_KEY,
    OPT_TAMPER,
    OPT_MAX_USES,
    OPT_OFFSET,
    OPT_FLASH,
    OPT_SECTOR,
    OPT_BATCH,
    OPT_LIVE,
    OPT_CUT,
    OPT_MAJOR,
    OPT_PULL_WINDOW,
    OPT_ONCE,
    OPT_UNPLUG,
    OPT_HANG,
    OPT_STATS,
    OPT_NO_CART,
    OPT_DEPTH_OUT,
    OPT_SPEED_OUT,
    OPT_GLITCH,
    OPT_CLOCK_SET,
    OPT_REFUSED,
    OPT_CROSS,
    OPT_REUSE_FROM,
    OPT_REPLACE_KEY,
    OPT_REPLAY
};

static const struct option options[] = {
    { "state", required_argument, NULL, OPT_STATE },
    { "listen", required_argument, NULL, OPT_LISTEN },
    { "serial", required_argument, NULL, OPT_SERIAL },
    { "seed", required_argument, NULL, OPT_SEED },
    { "simulate-days", required_argument, NULL, OPT_DAYS },
    { "start-time", required_argument, NULL, OPT_START },
    { "reuse-permille", required_argument, NULL, OPT_REUSE },
    { "fault-permille", required_argument, NULL, OPT_FAULT },
    { "power-cycle-permille", required_argument, NULL, OPT_CYCLE },
    { "over-limit-permille", required_argument, NULL, OPT_OVER },
    { "config-key", required_argument, NULL, OPT_CONFIG_KEY },
    { "sign-with-other-key", no_argument, NULL, OPT_OTHER_KEY },
    { "tamper", required_argument, NULL, OPT_TAMPER },
    { "max-uses", required_argument, NULL, OPT_MAX_USES },
    { "clock-offset-ms", required_argument, NULL, OPT_OFFSET },
    { "flash-size", required_argument, NULL, OPT_FLASH },
    { "sector-size", required_argument, NULL, OPT_SECTOR },
    { "batch", required_argument, NULL, OPT_BATCH },
    { "live", optional_argument, NULL, OPT_LIVE },
    { "power-cut-after", required_argument, NULL, OPT_CUT },
    { "protocol-major", required_argument, NULL, OPT_MAJOR },
    { "pull-window", required_argument, NULL, OPT_PULL_WINDOW },
    { "once", no_argument, NULL, OPT_ONCE },
    { "unplug-after-frames", required_argument, NULL, OPT_UNPLUG },
    { "hang-after-frames", required_argument, NULL, OPT_HANG },
    { "stats", no_argument, NULL, OPT_STATS },
    { "no-cartridge-permille", required_argument, NULL, OPT_NO_CART },
    { "depth-out-permille", required_argument, NULL, OPT_DEPTH_OUT },
    { "speed-out-permille", required_argument, NULL, OPT_SPEED_OUT },
    { "clock-glitch-permille", required_argument, NULL, OPT_GLITCH },
    { "clock-set-permille", required_argument, NULL, OPT_CLOCK_SET },
    { "config-refused-permille", required_argument, NULL, OPT_REFUSED },
    { "cross-reuse-permille", required_argument, NULL, OPT_CROSS },
    { "reuse-from", required_argument, NULL, OPT_REUSE_FROM },
    { "replace-key", no_argument, NULL, OPT_REPLACE_KEY },
    { "replay", required_argument, NULL, OPT_REPLAY },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

/* The index in options[] of the option whose value is @p val. */
static size_t optind_of(int val)
{
    size_t i = 0;
    while (options[i].name && options[i].val != val)
        i++;
    return i;
}

static int sig_pipe[2] = { -1, -1 };
static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    int e = errno;
    (void)sig;
    stopping = 1;
    if (sig_pipe[1] >= 0)
        (void)!write(sig_pipe[1], "x", 1);
    errno = e;
}

static int parse_u64(const char *arg, const char *opt, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 0);
    if (errno || end == arg || *end || arg[0] == '-' || v > max) {
        fprintf(stderr, "penlink-sim: --%s: '%s' is not a number in 0..%" PRIu64 "\n", opt, arg,
                max);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_i64(const char *arg, const char *opt, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 0);
    if (errno || end == arg || *end) {
        fprintf(stderr, "penlink-sim: --%s: '%s' is not a number\n", opt, arg);
        return -1;
    }
    *out = v;
    return 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- serving ----------------------------------------------------------- */

typedef struct server {
    sim *s;
    int listen_fd, client_fd;
    const char *path;
    bool once;
    uint64_t unplug_after; /* frames; 0 never */
    uint64_t hang_after;   /* frames; 0 never */
    bool hung;             /* this connection hangs: nothing more is sent */
    uint64_t frames_sent;
    tamper tamper; /* planted faults on the way out */
    uint32_t live_ms;
    bool verbose;
} server;

static int socket_send(void *ctx, const uint8_t *data, size_t len);

static int client_send(void *ctx, const uint8_t *data, size_t len)
{
    server *sv = ctx;
    return tamper_send(&sv->tamper, data, len, socket_send, sv);
}

static int socket_send(void *ctx, const uint8_t *data, size_t len)
{
    server *sv = ctx;
    if (sv->unplug_after && sv->frames_sent >= sv->unplug_after)
        return -1; /* unplugged: the host is gone for the pen */
    if (sv->hung)
        return 0; /* a hung pen: the frame goes nowhere, the host waits */
    while (len > 0 && sv->client_fd >= 0) {
        ssize_t n = send(sv->client_fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR && !stopping)
            continue;
        if (n <= 0)
            return -1; /* the client is gone; the read side notices and closes */
        data += n;
        len -= (size_t)n;
    }
    if (sv->client_fd < 0)
        return -1;
    if (sv->hang_after && sv->frames_sent + 1 == sv->hang_after) {
        sv->hung = true;
        if (sv->verbose)
            fprintf(stderr, "penlink-sim: hung after %llu frames\n",
                    (unsigned long long)sv->hang_after);
    }
    if (++sv->frames_sent == sv->unplug_after) {
        /* the cable is pulled right after this frame: the host sees the end */
        shutdown(sv->client_fd, SHUT_RDWR);
        if (sv->verbose)
            fprintf(stderr, "penlink-sim: unplugged after %llu frames\n",
                    (unsigned long long)sv->frames_sent);
    }
    return 0;
}

static void drop_client(server *sv)
{
    if (sv->client_fd >= 0)
        close(sv->client_fd);
    sv->client_fd = -1;
    if (sv->hung) { /* replugged: the pen answers again, and counts anew */
        sv->hung = false;
        sv->hang_after = 0;
    }
    pen_usb_reset(sv->s->pen);
    if (sv->verbose)
        fprintf(stderr, "penlink-sim: client disconnected\n");
}

static int open_socket(server *sv)
{
    struct sockaddr_un addr;
    struct stat st;

    if (strlen(sv->path) >= sizeof addr.sun_path) {
        fprintf(stderr, "penlink-sim: --listen: path longer than %zu bytes\n",
                sizeof addr.sun_path - 1);
        return SIM_USAGE;
    }
    if (lstat(sv->path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            fprintf(stderr, "penlink-sim: %s exists and is not a socket\n", sv->path);
            return SIM_USAGE;
        }
        unlink(sv->path); /* a socket left by a killed simulator */
    }
    sv->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sv->listen_fd < 0)
        goto fail;
    /* The socket appears under its name only once it listens (bound to a
     * temporary name, then renamed), so a client that sees it can connect. */
    char tmp[sizeof addr.sun_path];
    int n = snprintf(tmp, sizeof tmp, "%s.%ld", sv->path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) {
        fprintf(stderr, "penlink-sim: --listen: path too long\n");
        return SIM_USAGE;
    }
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, tmp, (size_t)n + 1);
    unlink(tmp);
    if (bind(sv->listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0)
        goto fail;
    if (listen(sv->listen_fd, 4) != 0 || rename(tmp, sv->path) != 0) {
        unlink(tmp);
        goto fail;
    }
    return SIM_OK;
fail:
    fprintf(stderr, "penlink-sim: %s: %s\n", sv->path, strerror(errno));
    return SIM_ERR;
}

static int serve(server *sv)
{
    uint8_t buf[4096];
    uint64_t next_live = now_ms() + sv->live_ms;
    int rc = SIM_OK;

    sim_set_sender(sv->s, client_send, sv);
    while (!stopping) {
        struct pollfd fds[2];
        int nfds = 0, busy = 0;

        /* a few frames of a pull, then look at the socket again */
        for (int i = 0; i < 8 && sv->client_fd >= 0; i++) {
            busy = pen_poll(sv->s->pen);
            if (!busy)
                break;
        }
        if (sv->s->flash.dead)
            return sim_check(sv->s, PEN_ERR_FLASH);
        /* a pull that sealed records on a full flash dropped the oldest: planted
         * now, before the host can acknowledge past them */
        if (sim_plant_store(sv->s) != SIM_OK)
            return SIM_ERR;
        int timeout = busy ? 0 : 1000;
        if (sv->live_ms) {
            uint64_t t = now_ms();
            if (t >= next_live) {
                rc = sim_step(sv->s);
                if (rc == SIM_OK && sv->client_fd < 0)
                    while (pen_poll(sv->s->pen))
                        ;
                if (rc != SIM_OK)
                    return rc;
                next_live = t + sv->live_ms;
            }
            uint64_t wait = next_live > t ? next_live - t : 0;
            if (!busy && wait < (uint64_t)timeout)
                timeout = (int)wait;
        }
        fds[nfds].fd = sig_pipe[0];
        fds[nfds++].events = POLLIN;
        fds[nfds].fd = sv->client_fd >= 0 ? sv->client_fd : sv->listen_fd;
        fds[nfds++].events = POLLIN;
        int n = poll(fds, (nfds_t)nfds, timeout);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "penlink-sim: poll: %s\n", strerror(errno));
            return SIM_ERR;
        }
        if (n <= 0 || stopping)
            continue;
        if (!(fds[1].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        if (sv->client_fd < 0) {
            sv->client_fd = accept(sv->listen_fd, NULL, NULL);
            if (sv->client_fd < 0)
                continue;
            fcntl(sv->client_fd, F_SETFD, FD_CLOEXEC);
            pen_usb_reset(sv->s->pen);
            if (sv->verbose)
                fprintf(stderr, "penlink-sim: client connected\n");
            continue;
        }
        ssize_t got = recv(sv->client_fd, buf, sizeof buf, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            drop_client(sv);
            if (sv->unplug_after && sv->frames_sent >= sv->unplug_after)
                sv->unplug_after = 0; /* plugged back in: the next host is served */
            if (sv->once)
                break;
            continue;
        }
        pen_usb_rx(sv->s->pen, buf, (size_t)got);
        if (sv->s->flash.dead)
            return sim_check(sv->s, PEN_ERR_FLASH);
    }
    return rc;
}

/* The signal pipe, and SIGINT and SIGTERM written to it: a wait in poll()
 * wakes up when one comes. */
static int install_signals(void)
{
    if (pipe(sig_pipe) != 0) {
        perror("penlink-sim: pipe");
        return SIM_ERR;
    }
    fcntl(sig_pipe[0], F_SETFD, FD_CLOEXEC);
    fcntl(sig_pipe[1], F_SETFD, FD_CLOEXEC);
    fcntl(sig_pipe[1], F_SETFL, O_NONBLOCK);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return SIM_OK;
}

/* --replay: the recording's pen side on sv->path, to one host. */
static int run_replay(server *sv, const char *path)
{
    replay r;
    int rc;
    if (replay_load(&r, path) != 0) {
        fprintf(stderr, "penlink-sim: %s\n", r.err);
        replay_free(&r);
        return SIM_ERR;
    }
    if (install_signals() != SIM_OK) {
        replay_free(&r);
        return SIM_ERR;
    }
    rc = open_socket(sv);
    if (rc == SIM_OK) {
        rc = replay_serve(&r, sv->listen_fd, sig_pipe[0], sv->verbose);
        if (r.err[0] && (rc != SIM_OK || sv->verbose))
            fprintf(stderr, "penlink-sim: %s\n", r.err);
        close(sv->listen_fd);
        unlink(sv->path);
    }
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    replay_free(&r);
    return rc;
}

/* ---- the command line -------------------------------------------------- */

/* What the command line asks for. */
typedef struct sim_args {
    sim_opts o;
    uint8_t keys[SIM_CONFIG_KEYS_MAX][32];
    server sv;
    bool stats;
    const char *replay_path;
} sim_args;

/* An option handler's answer beyond SIM_OK and SIM_USAGE. */
enum { ARG_NOT_MINE = -1, ARG_HELP = -2 };

/* The pen's options that are one whole number each, the largest it may be,
 * and where it goes. */
static const struct {
    int opt;
    uint64_t max;
    size_t field; /* offsetof a uint32_t in sim_opts */
} pen_numbers[] = {
    { OPT_DAYS, 36500, offsetof(sim_opts, simulate_days) },
    { OPT_REUSE, 1000, offsetof(sim_opts, reuse_permille) },
    { OPT_FAULT, 1000, offsetof(sim_opts, fault_permille) },
    { OPT_CYCLE, 1000, offsetof(sim_opts, power_cycle_permille) },
    { OPT_OVER, 1000, offsetof(sim_opts, over_limit_permille) },
    { OPT_FLASH, UINT32_MAX, offsetof(sim_opts, flash_size) },
    { OPT_SECTOR, 65536, offsetof(sim_opts, sector_size) },
    { OPT_BATCH, PL_CHUNK_MAX_RECORDS, offsetof(sim_opts, batch) },
    { OPT_NO_CART, 1000, offsetof(sim_opts, no_cartridge_permille) },
    { OPT_DEPTH_OUT, 1000, offsetof(sim_opts, depth_out_permille) },
    { OPT_SPEED_OUT, 1000, offsetof(sim_opts, speed_out_permille) },
    { OPT_GLITCH, 1000, offsetof(sim_opts, clock_glitch_permille) },
    { OPT_CLOCK_SET, 1000, offsetof(sim_opts, clock_set_permille) },
    { OPT_REFUSED, 1000, offsetof(sim_opts, config_refused_permille) },
    { OPT_CROSS, 1000, offsetof(sim_opts, cross_reuse_permille) },
};

static int pen_number_option(int opt, sim_opts *o)
{
    for (size_t i = 0; i < sizeof pen_numbers / sizeof pen_numbers[0]; i++) {
        if (pen_numbers[i].opt != opt)
            continue;
        uint64_t v;
        if (parse_u64(optarg, options[optind_of(opt)].name, pen_numbers[i].max, &v))
            return SIM_USAGE;
        *(uint32_t *)((char *)o + pen_numbers[i].field) = (uint32_t)v;
        return SIM_OK;
    }
    return ARG_NOT_MINE;
}

/* A whole number of at least 1, for --@p name. */
static int parse_positive(const char *name, uint64_t max, uint32_t *out)
{
    uint64_t v;
    if (parse_u64(optarg, name, max, &v))
        return SIM_USAGE;
    if (v == 0) {
        fprintf(stderr, "penlink-sim: --%s must be at least 1\n", name);
        return SIM_USAGE;
    }
    *out = (uint32_t)v;
    return SIM_OK;
}

static int config_key_option(sim_args *a)
{
    sim_opts *o = &a->o;
    if (o->config_key_count == SIM_CONFIG_KEYS_MAX) {
        fprintf(stderr, "penlink-sim: at most %u --config-key\n", SIM_CONFIG_KEYS_MAX);
        return SIM_USAGE;
    }
    if (sim_parse_public_key(optarg, a->keys[o->config_key_count]) != 0) {
        fprintf(stderr,
                "penlink-sim: --config-key %s: not 64 hex digits, nor a public key "
                "file\n",
                optarg);
        return SIM_USAGE;
    }
    o->config_keys = (const uint8_t(*)[32])a->keys;
    o->config_key_count++;
    return SIM_OK;
}

/* The pen's other options. */
static int pen_option(int opt, sim_args *a)
{
    sim_opts *o = &a->o;
    int64_t iv;
    switch (opt) {
    case OPT_STATE: o->state_dir = optarg; break;
    case OPT_SERIAL: o->serial = optarg; break;
    case OPT_SEED:
        if (parse_u64(optarg, "seed", UINT64_MAX, &o->seed))
            return SIM_USAGE;
        break;
    case OPT_START:
        if (parse_i64(optarg, "start-time", &o->start_ms))
            return SIM_USAGE;
        break;
    case OPT_CONFIG_KEY: return config_key_option(a);
    case OPT_OTHER_KEY: o->sign_with_other_key = true; break;
    case OPT_MAX_USES: return parse_positive("max-uses", UINT32_MAX, &o->max_uses);
    case OPT_OFFSET:
        if (parse_i64(optarg, "clock-offset-ms", &iv))
            return SIM_USAGE;
        o->set_clock_offset = true;
        o->clock_offset_ms = iv;
        break;
    case OPT_CUT:
        if (parse_u64(optarg, "power-cut-after", UINT64_MAX, &o->power_cut_after))
            return SIM_USAGE;
        break;
    case OPT_MAJOR: return parse_positive("protocol-major", UINT32_MAX, &o->protocol_major);
    case OPT_PULL_WINDOW:
        return parse_positive("pull-window", PEN_PULL_MAX_CHUNKS, &o->pull_window);
    case OPT_REUSE_FROM: o->reuse_from = optarg; break;
    case OPT_REPLACE_KEY: o->replace_key = true; break;
    default: return pen_number_option(opt, o);
    }
    return SIM_OK;
}

/* The options of the socket, the host's side and the program itself. */
static int server_option(int opt, sim_args *a)
{
    server *sv = &a->sv;
    uint64_t v;
    switch (opt) {
    case OPT_LISTEN: sv->path = optarg; break;
    case OPT_TAMPER: {
        int m = tamper_parse(optarg);
        if (m < 0) {
            fprintf(stderr, "penlink-sim: --tamper %s: flip, drop, swap or splice\n", optarg);
            return SIM_USAGE;
        }
        sv->tamper.mode = (tamper_mode)m;
        break;
    }
    case OPT_LIVE:
        sv->live_ms = 200;
        if (optarg) {
            if (parse_u64(optarg, "live", 3600000, &v) || v == 0)
                return SIM_USAGE;
            sv->live_ms = (uint32_t)v;
        }
        break;
    case OPT_ONCE: sv->once = true; break;
    case OPT_UNPLUG:
        if (parse_u64(optarg, "unplug-after-frames", UINT64_MAX, &sv->unplug_after))
            return SIM_USAGE;
        break;
    case OPT_HANG:
        if (parse_u64(optarg, "hang-after-frames", UINT64_MAX, &sv->hang_after))
            return SIM_USAGE;
        break;
    case OPT_STATS: a->stats = true; break;
    case OPT_REPLAY: a->replay_path = optarg; break;
    case 'v': sv->verbose = true; break;
    case 'h': fputs(usage_text, stdout); return ARG_HELP;
    default: return ARG_NOT_MINE;
    }
    return SIM_OK;
}

/* The options, then what they must say together: SIM_OK, SIM_USAGE or ARG_HELP. */
static int parse_args(int argc, char **argv, sim_args *a)
{
    int opt;
    while ((opt = getopt_long(argc, argv, "vh", options, NULL)) != -1) {
        int rc = server_option(opt, a);
        if (rc == ARG_NOT_MINE)
            rc = pen_option(opt, a);
        if (rc == ARG_NOT_MINE) {
            fputs(usage_text, stderr);
            return SIM_USAGE;
        }
        if (rc != SIM_OK)
            return rc;
    }
    if (a->replay_path) {
        if (optind < argc || a->o.state_dir || !a->sv.path) {
            fprintf(stderr, "penlink-sim: --replay takes --listen PATH, and no --state or other "
                            "argument: it serves a recording, not a pen\n");
            return SIM_USAGE;
        }
        return SIM_OK;
    }
    if (optind < argc || !a->o.state_dir) {
        fprintf(stderr, "penlink-sim: %s\n",
                optind < argc ? "unexpected argument" : "--state DIR is required");
        fputs(usage_text, stderr);
        return SIM_USAGE;
    }
    if (a->o.cross_reuse_permille && !a->o.reuse_from) {
        fprintf(stderr, "penlink-sim: --cross-reuse-permille needs --reuse-from DIR (whose "
                        "cartridges to reuse)\n");
        return SIM_USAGE;
    }
    if (a->sv.verbose)
        a->o.log = stderr;
    return SIM_OK;
}

/* The pen: its history simulated, then served on the socket if one is named. */
static int run_pen(sim_args *a)
{
    server *sv = &a->sv;
    int rc;
    if (install_signals() != SIM_OK)
        return SIM_ERR;
    sim *s = calloc(1, sizeof *s);
    if (!s) {
        perror("penlink-sim");
        return SIM_ERR;
    }
    sv->s = s;
    rc = sim_open(s, &a->o);
    if (rc == SIM_OK)
        rc = sim_simulate(s);
    if (rc == SIM_OK && sv->path && !stopping) {
        sim_realtime(s);
        rc = open_socket(sv);
        if (rc == SIM_OK) {
            if (sv->verbose)
                fprintf(stderr, "penlink-sim: serving pen %s on %s\n", s->serial, sv->path);
            rc = serve(sv);
        }
    }
    if (rc != SIM_OK && s->err[0])
        fprintf(stderr, "penlink-sim: %s\n", s->err);
    if (a->stats && s->pen && s->pen_up && rc != SIM_POWER_CUT)
        sim_print_stats(s, stdout);
    if (sv->client_fd >= 0)
        close(sv->client_fd);
    if (sv->listen_fd >= 0) {
        close(sv->listen_fd);
        unlink(sv->path);
    }
    int crc = sim_close(s);
    if (crc != SIM_OK && rc == SIM_OK) {
        fprintf(stderr, "penlink-sim: %s\n", s->err);
        rc = crc;
    }
    free(s);
    tamper_free(&sv->tamper);
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    return rc;
}

int main(int argc, char **argv)
{
    static sim_args a; /* zero, then the defaults */
    a.sv.listen_fd = a.sv.client_fd = -1;
    sim_opts_default(&a.o);
    int rc = parse_args(argc, argv, &a);
    if (rc == ARG_HELP)
        return SIM_OK;
    if (rc != SIM_OK)
        return rc;
    if (a.replay_path)
        return run_replay(&a.sv, a.replay_path);
    return run_pen(&a);
}
