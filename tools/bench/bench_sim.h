/*
 * The benchmarks' simulated pen: a state directory filled with DAYS of
 * clinic usage (outside any measurement), then penlink-sim serving it on a
 * Unix socket in a temporary directory, removed again at the end.
 */
#ifndef PENLINK_BENCH_SIM_H
#define PENLINK_BENCH_SIM_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct bench_sim {
    char dir[64];  /* the temporary directory */
    char uri[160]; /* sim:SOCKET, for penlink_dev_open() */
    pid_t pid;
} bench_sim;

/* Fills a new pen (@p extra: more penlink-sim options) in a new temporary
 * directory, kept as a template that bench_sim_serve() copies. 0 or -1. */
static inline int bench_sim_fill(bench_sim *b, const char *sim, int days, const char *extra)
{
    char cmd[1024];
    b->pid = 0;
    snprintf(b->dir, sizeof b->dir, "/tmp/penlink-bench.XXXXXX");
    if (!mkdtemp(b->dir))
        return -1;
    snprintf(cmd, sizeof cmd, "'%s' --state '%s/template' --simulate-days %d --flash-size %d %s",
             sim, b->dir, days, 64 * 1024 * 1024, extra ? extra : "");
    if (system(cmd) != 0) {
        fprintf(stderr, "bench: %s failed\n", cmd);
        return -1;
    }
    return 0;
}

/* Stops serving (if it does), keeping the directory. */
static inline void bench_sim_halt(bench_sim *b)
{
    if (b->pid > 0) {
        kill(b->pid, SIGTERM);
        waitpid(b->pid, NULL, 0);
    }
    b->pid = 0;
}

/* Serves a fresh copy of the filled pen: nothing pulled or acknowledged yet. 0 or -1. */
static inline int bench_sim_serve(bench_sim *b, const char *sim)
{
    char cmd[512], state[128], sock[128];
    bench_sim_halt(b);
    snprintf(state, sizeof state, "%s/pen", b->dir);
    snprintf(sock, sizeof sock, "%s/pen.sock", b->dir);
    snprintf(b->uri, sizeof b->uri, "sim:%s", sock);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' && cp -r '%s/template' '%s'", state, sock, b->dir,
             state);
    if (system(cmd) != 0)
        return -1;
    b->pid = fork();
    if (b->pid == 0) {
        execl(sim, sim, "--state", state, "--listen", sock, (char *)NULL);
        _exit(127);
    }
    struct stat sb;
    for (int i = 0; i < 1000 && stat(sock, &sb) != 0; i++)
        usleep(10000);
    return b->pid > 0 ? 0 : -1;
}

/* Fills a new pen and starts serving it. 0 or -1. */
static inline int bench_sim_start(bench_sim *b, const char *sim, int days, const char *extra)
{
    return bench_sim_fill(b, sim, days, extra) == 0 ? bench_sim_serve(b, sim) : -1;
}

/* Stops the pen and removes its directory. 0 or -1. */
static inline int bench_sim_stop(bench_sim *b)
{
    char cmd[128];
    bench_sim_halt(b);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", b->dir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
