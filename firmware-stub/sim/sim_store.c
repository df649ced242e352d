/*
 * What penlink-sim keeps in its state directory as text: sim.state (who the
 * pen is, its flash geometry, its clock), replaced atomically whenever it
 * changes, and ground-truth.jsonl, a line per record the pen committed,
 * written so that it agrees with flash.bin after a kill at any point
 * (simulator.c says how; firmware-stub/README.md gives the guarantee).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim_store.h"
#include "state_dir.h"

#define STATE_TEXT_MAX 1024u /* sim.state: ten short lines */

int sim_path(const sim *s, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", s->dir, name);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int sim_truth_flush(sim *s)
{
    if (s->gt_errno)
        return -1;
    if (!s->gt || !s->gt_dirty)
        return 0;
    if (fflush(s->gt) != 0) {
        s->gt_errno = errno ? errno : EIO;
        return -1;
    }
    s->gt_dirty = false;
    return 0;
}

/* Reads the lines from @p off on while they are whole records below seq
 * @p limit: *@p keep ends up after the last of them, *@p kept counts them,
 * gt_next and gt_last_ms describe the last. 0 or -1. */
static int scan_lines(sim *s, FILE *f, off_t off, uint64_t limit, off_t *keep, uint64_t *kept)
{
    char *line = NULL;
    size_t cap = 0;
    *keep = off;
    *kept = 0;
    s->gt_next = 0;
    s->gt_last_ms = SIM_NO_TIME;
    if (fseeko(f, off, SEEK_SET) != 0)
        return -1;
    for (;;) {
        uint64_t seq;
        int64_t t;
        ssize_t n = getline(&line, &cap, f);
        if (n <= 0 || line[n - 1] != '\n' ||
            sscanf(line, "{\"seq\":%" SCNu64 ",\"time_ms\":%" SCNd64, &seq, &t) != 2 ||
            seq >= limit)
            break;
        *keep += n;
        (*kept)++;
        s->gt_next = seq + 1;
        s->gt_last_ms = t;
    }
    free(line);
    return ferror(f) ? -1 : 0;
}

/* Only a long ground truth's tail is read when the cut lies in it (a start
 * reads no more than this of a year's truth). */
#define TRUTH_TAIL 65536

int sim_truth_trim(sim *s, uint64_t limit)
{
    char path[600];
    off_t keep = 0, from = 0;
    uint64_t kept = 0;
    struct stat st;
    FILE *f = NULL;
    int rc = -1;

    if (sim_truth_flush(s) != 0)
        return -1;
    if (sim_path(s, SIM_TRUTH_FILE, path, sizeof path) != 0) {
        errno = ENAMETOOLONG;
        goto fail;
    }
    f = fopen(path, "r");
    if (!f || fstat(fileno(f), &st) != 0)
        goto fail;
    if (st.st_size > TRUTH_TAIL) {
        int c;
        if (fseeko(f, st.st_size - TRUTH_TAIL, SEEK_SET) != 0)
            goto fail;
        do /* to the start of the next line */
            c = getc(f);
        while (c != EOF && c != '\n');
        from = ftello(f);
        if (from < 0 || scan_lines(s, f, from, limit, &keep, &kept) != 0)
            goto fail;
    }
    if (kept == 0 && scan_lines(s, f, 0, limit, &keep, &kept) != 0) /* the cut lies earlier */
        goto fail;
    if (st.st_size > keep && ftruncate(fileno(s->gt), keep) != 0)
        goto fail;
    rc = 0;
fail:
    if (rc != 0)
        s->gt_errno = errno ? errno : EIO;
    if (f)
        fclose(f);
    return rc;
}

/* A record the core committed, as one JSON line (buffered: sim_truth_flush()
 * writes it before the next flash operation). */
void sim_truth_append(sim *s, const pl_record *r)
{
    const char *name = pl_record_kind_name(r->kind);
    s->gt_records++;
    if (!s->gt)
        return;
    /* a seq the truth already has: its slot never reached the flash before a
     * kill, and the pen (booting) gives the seq to this record */
    if (r->seq < s->gt_next && sim_truth_trim(s, r->seq) != 0)
        return;
    s->gt_next = r->seq + 1;
    s->gt_last_ms = r->time_ms;
    s->gt_dirty = true;
    fprintf(s->gt, "{\"seq\":%" PRIu64 ",\"time_ms\":%" PRId64 ",\"kind\":\"%s\"", r->seq,
            r->time_ms, name ? name : "unknown");
    for (uint32_t m = r->fields; m; m &= m - 1) {
        uint32_t bit = m & (~m + 1u);
        uint64_t v = pl_record_get(r, bit);
        if (bit == PL_F_CLOCK_DELTA_MS)
            fprintf(s->gt, ",\"%s\":%" PRId64, pl_record_field_name(bit), (int64_t)v);
        else
            fprintf(s->gt, ",\"%s\":%" PRIu64, pl_record_field_name(bit), v);
    }
    fputs("}\n", s->gt);
}

/* The serial as one word of sim.state: bytes outside '!'..'~', and the
 * backslash, as \xNN. */
static void escape_word(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 5 <= cap; p++) {
        if (*p > ' ' && *p < 0x7f && *p != '\\')
            out[o++] = (char)*p;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", *p);
    }
    out[o] = '\0';
}

static int unescape_word(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    while (*in) {
        unsigned v;
        if (o + 1 >= cap)
            return -1;
        if (in[0] == '\\' && in[1] == 'x' && sscanf(in + 2, "%2x", &v) == 1 && v != 0) {
            out[o++] = (char)v;
            in += 4;
        } else {
            out[o++] = *in++;
        }
    }
    out[o] = '\0';
    return 0;
}

enum {
    HAVE_SERIAL = 1,
    HAVE_SECTOR_SIZE = 2,
    HAVE_SECTOR_COUNT = 4,
    HAVE_BATCH = 8,
    HAVE_ALL = 15
};

/* 0 (*exists says whether there is a state), -1 errno, -2 a file that is
 * not a whole state. */
int sim_state_load(sim *s, bool *exists)
{
    char path[600], *line = NULL;
    size_t cap = 0;
    unsigned have = 0;
    FILE *f;
    *exists = false;
    if (sim_path(s, SIM_STATE_FILE, path, sizeof path) != 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : -1;
    *exists = true;
    for (;;) {
        ssize_t n = getline(&line, &cap, f);
        if (n <= 0)
            break;
        line[strcspn(line, "\n")] = '\0';
        char *val = strchr(line, ' ');
        if (!val)
            continue;
        *val++ = '\0';
        if (strcmp(line, "serial") == 0) {
            if (unescape_word(val, s->serial, sizeof s->serial) == 0)
                have |= HAVE_SERIAL;
        } else if (strcmp(line, "sector_size") == 0) {
            s->sector_size = (uint32_t)strtoul(val, NULL, 10);
            have |= HAVE_SECTOR_SIZE;
        } else if (strcmp(line, "sector_count") == 0) {
            s->sector_count = (uint32_t)strtoul(val, NULL, 10);
            have |= HAVE_SECTOR_COUNT;
        } else if (strcmp(line, "batch") == 0) {
            s->batch = (uint32_t)strtoul(val, NULL, 10);
            have |= HAVE_BATCH;
        } else if (strcmp(line, "rtc_offset_ms") == 0) {
            s->rtc_offset_ms = strtoll(val, NULL, 10);
        } else if (strcmp(line, "clock_ms") == 0) {
            s->clock_ms = strtoll(val, NULL, 10);
        } else if (strcmp(line, "model_end_ms") == 0) {
            s->model_end_ms = strtoll(val, NULL, 10);
        } else if (strcmp(line, "runs") == 0) {
            s->runs = (uint32_t)strtoul(val, NULL, 10);
        } else if (strcmp(line, "fixed_calendar") == 0) {
            s->fixed_calendar = strcmp(val, "1") == 0;
        } else if (strcmp(line, "gap_planted_to") == 0) {
            s->gap_planted_to = strtoull(val, NULL, 10);
        }
    }
    int bad = ferror(f);
    free(line);
    fclose(f);
    if (bad) {
        errno = EIO;
        return -1;
    }
    return have == HAVE_ALL ? 0 : -2;
}

int sim_state_serial(const char *dir, char *out, size_t cap)
{
    bool exists = false;
    int rc = -1;
    sim *o = calloc(1, sizeof *o);
    if (!o) {
        errno = ENOMEM;
        return -1;
    }
    if (snprintf(o->dir, sizeof o->dir, "%s", dir) >= (int)sizeof o->dir)
        errno = ENAMETOOLONG;
    else
        rc = sim_state_load(o, &exists);
    if (rc == 0 && !exists) {
        errno = ENOENT;
        rc = -1;
    }
    if (rc == 0)
        snprintf(out, cap, "%s", o->serial);
    free(o);
    return rc;
}

/* Replaces sim.state atomically (state_dir.h). 0 or -1 with errno. */
int sim_state_save(sim *s, int64_t clock_ms)
{
    char path[600], serial[4 * PEN_SERIAL_MAX + 1], text[STATE_TEXT_MAX];
    if (sim_path(s, SIM_STATE_FILE, path, sizeof path) != 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    escape_word(s->serial, serial, sizeof serial);
    int n = snprintf(text, sizeof text,
                     "serial %s\nsector_size %" PRIu32 "\nsector_count %" PRIu32 "\nbatch %" PRIu32
                     "\nrtc_offset_ms %" PRId64 "\nclock_ms %" PRId64 "\nmodel_end_ms %" PRId64
                     "\nruns %" PRIu32 "\nfixed_calendar %d\ngap_planted_to %" PRIu64 "\n",
                     serial, s->sector_size, s->sector_count, s->batch, s->rtc_offset_ms, clock_ms,
                     s->model_end_ms, s->runs, s->fixed_calendar ? 1 : 0, s->gap_planted_to);
    if (n < 0 || (size_t)n >= sizeof text) {
        errno = EOVERFLOW;
        return -1;
    }
    return sd_write_atomic(path, text, (size_t)n, 0644);
}
