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

/* Fills a new pen (@p extra: more penlink-sim options) and starts serving it. 0 or -1. */
static inline int bench_sim_start(bench_sim *b, const char *sim, int days, const char *extra)
{
    char cmd[1024], state[128], sock[128];
    snprintf(b->dir, sizeof b->dir, "/tmp/penlink-bench.XXXXXX");
    if (!mkdtemp(b->dir))
        return -1;
    snprintf(state, sizeof state, "%s/pen", b->dir);
    snprintf(sock, sizeof sock, "%s/pen.sock", b->dir);
    snprintf(b->uri, sizeof b->uri, "sim:%s", sock);
    snprintf(cmd, sizeof cmd, "'%s' --state '%s' --simulate-days %d --flash-size %d %s", sim, state,
             days, 64 * 1024 * 1024, extra ? extra : "");
    if (system(cmd) != 0) {
        fprintf(stderr, "bench: %s failed\n", cmd);
        return -1;
    }
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

/* Stops the pen and removes its directory. 0 or -1. */
static inline int bench_sim_stop(bench_sim *b)
{
    char cmd[128];
    if (b->pid > 0) {
        kill(b->pid, SIGTERM);
        waitpid(b->pid, NULL, 0);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", b->dir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
