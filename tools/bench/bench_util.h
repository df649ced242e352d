/*
 * What every benchmark shares: the clock its figures are read on, and the
 * command line of those that pull a simulated pen's DAYS of usage ROUNDS
 * times, into a SQLite file or a PostgreSQL server (bench_archive,
 * bench_push).
 */
#ifndef PENLINK_BENCH_UTIL_H
#define PENLINK_BENCH_UTIL_H

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Monotonic seconds, to the nanosecond. */
static inline double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define BENCH_DAYS_DEFAULT 4500 /* about 1,000,000 records */
#define BENCH_ROUNDS_DEFAULT 3

typedef struct bench_args {
    int days, rounds;
    const char *server; /* --archive URI: a PostgreSQL server, or NULL */
    const char *sim;    /* PENLINK_SIM */
} bench_args;

/*
 * Parses [-d DAYS] [-r ROUNDS] [--archive URI] PENLINK_SIM into @p a; -h
 * prints @p usage. --archive takes a server only (@p is_server says which
 * URIs are). Returns -1 to go on, else the exit status: 0 after -h, 2 on a
 * usage error.
 */
static inline int bench_args_parse(int argc, char **argv, const char *usage,
                                   int (*is_server)(const char *uri), bench_args *a)
{
    static const struct option opts[] = {
        { "archive", required_argument, NULL, 'a' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int opt;
    a->days = BENCH_DAYS_DEFAULT;
    a->rounds = BENCH_ROUNDS_DEFAULT;
    a->server = NULL;
    a->sim = NULL;
    while ((opt = getopt_long(argc, argv, "d:r:a:h", opts, NULL)) != -1) {
        if (opt == 'd') {
            a->days = atoi(optarg);
        } else if (opt == 'r') {
            a->rounds = atoi(optarg);
        } else if (opt == 'a' && is_server(optarg)) {
            a->server = optarg;
        } else {
            fputs(usage, stdout);
            return opt == 'h' ? 0 : 2;
        }
    }
    if (optind != argc - 1 || a->days < 1 || a->rounds < 1)
        return 2;
    a->sim = argv[optind];
    return -1;
}

#endif
