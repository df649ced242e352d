/*
 * Pulling into a frames file, the store `pull` and `watch` share until the
 * archive exists. The file is append-only: it starts with a header frame
 * naming the pen (serial, device key), written and synced before any chunk,
 * then each LogChunk frame is written as received; the file is synced
 * before the pen is told it may erase anything. A pull resumes after the
 * last record in the file, and only into a file whose header names the pen
 * being pulled: a file of another pen, or one that names no pen (written by
 * an earlier penlink), is refused untouched, nothing acknowledged, since
 * resuming from another pen's last seq would acknowledge records never
 * stored. A tail cut short by a crash is dropped first (those records were
 * never acknowledged, so the pen still has them).
 *
 * The same rule as the archive's for records that come again: the pen sends
 * whole stored chunks, so the first chunk of a pull may hold records the file
 * has (before the resume point). Each is compared with the file's copy before
 * anything of that chunk is written: other content is an integrity error
 * (exit 6), the chunk is not written and nothing is acknowledged; the same
 * content is not a new record (the chunk is written whole, as the pen sent
 * it, for its new records, and readers count each seq once). From a pen that
 * signs its log the pull goes on from the link of the file's last chunk, so
 * a pen whose chain forks from the file's is refused the same way.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* A chunk holds at most this many records (docs/protocol.md section 7), so
 * the records a pull's first chunk holds before the resume point are among
 * the file's last this many seqs. */
#define FILE_OVERLAP_MAX 4096u

/* The file's records of its last FILE_OVERLAP_MAX seqs, by seq modulo that:
 * what a re-sent record is compared with. */
struct file_tail {
    penlink_record *rec;
    unsigned char *have;
};

struct pull_ctx {
    struct cli *c;
    int fd;
    int err; /* errno of a failed write */
    const struct file_tail *tail;
    unsigned char *pending; /* the frame of the chunk being checked, not yet written */
    size_t pending_len, pending_cap;
    int conflict; /* a record came again with other content: nothing more is written */
    unsigned long long conflict_seq, same;
    /* Records below this seq are the file's already: a pen that does not sign
     * its log and still holds records it says no one acknowledged is asked
     * for them again, and each is compared with the file's copy (two pens
     * under one serial, or a log replaced, would otherwise be acknowledged
     * unseen). A chunk is written only once one of its records is new. */
    unsigned long long file_next;
    int approved;                 /* the pending chunk holds a new record */
    unsigned long long unchecked; /* re-sent records the file's tail cannot show */
    struct cli_progress *progress;
    uint64_t received; /* new records the pen sent (the pull's last progress) */
};

/* What a frames file holds. */
struct file_state {
    unsigned long long next; /* the next seq to pull */
    off_t keep;              /* bytes up to the end of the last complete frame */
    int have;                /* it holds records */
    int have_header;         /* it names its pen */
    penlink_file_header header;
    int have_link; /* the link after its last chunk (a pen that signs its log) */
    uint8_t link[32];
};

static int keep_tail(void *user, const penlink_record *r)
{
    struct file_tail *t = user;
    size_t i = (size_t)(r->seq % FILE_OVERLAP_MAX);
    if (!t->have[i] || r->seq > t->rec[i].seq) {
        t->rec[i] = *r;
        t->have[i] = 1;
    }
    return 0;
}

/* Whether two records of one seq say the same. */
static int same_record(const penlink_record *a, const penlink_record *b)
{
    if (a->time_ms != b->time_ms || a->kind != b->kind || a->fields != b->fields)
        return 0;
    for (uint32_t bit = 0; bit < PENLINK_FIELD_COUNT; bit++)
        if ((a->fields & (1u << bit)) &&
            penlink_record_field_get(a, 1u << bit) != penlink_record_field_get(b, 1u << bit))
            return 0;
    return 1;
}

static int scan_file(struct cli *c, const char *path, int fd, struct file_state *fs,
                     struct file_tail *tail)
{
    penlink_decoder *dec = NULL;
    memset(fs, 0, sizeof *fs);
    int st = penlink_decoder_new(c->ctx, keep_tail, NULL, tail, &dec);
    if (st != PENLINK_OK)
        return cli_fail(c, "pull", st);
    static unsigned char buf[1 << 16];
    ssize_t n;
    int fst = PENLINK_OK;
    for (n = read(fd, buf, sizeof buf); n > 0 && fst == PENLINK_OK; n = read(fd, buf, sizeof buf))
        fst = penlink_decoder_feed(dec, buf, (size_t)n);
    if (n < 0) {
        penlink_decoder_free(dec);
        return cli_error(c, EXIT_IO, "pull: reading %s: %s", path, strerror(errno));
    }
    if (fst == PENLINK_OK)
        fst = penlink_decoder_finish(dec);
    uint64_t last = 0;
    fs->header.size = sizeof fs->header;
    penlink_decoder_stats stats = PENLINK_DECODER_STATS_INIT;
    /* none of these fails on a decoder that exists */
    (void)penlink_decoder_last_seq(dec, &last, &fs->have);
    fs->next = fs->have ? last + 1 : 0;
    (void)penlink_decoder_stats_get(dec, &stats);
    fs->keep = (off_t)stats.good_bytes;
    (void)penlink_decoder_header(dec, &fs->header, &fs->have_header);
    (void)penlink_decoder_last_link(dec, fs->link, &fs->have_link);
    const char *why = penlink_ctx_errmsg(c->ctx);
    int cut_short = fst == PENLINK_ERR_PROTOCOL && strstr(why, "cut short") != NULL;
    penlink_decoder_free(dec);
    if (fst != PENLINK_OK && !cut_short)
        return cli_error(c, cli_exit_for(fst),
                         "pull: %s is damaged (%s); it is left untouched: move it away or "
                         "pull into another file with -o",
                         path, why);
    return EXIT_OK;
}

/* Whether the file may take this pen's records: it holds no complete frame
 * yet (new, or cut short inside its first), or its header names this pen. */
static int check_owner(struct cli *c, const char *path, const struct file_state *fs,
                       const penlink_info *info)
{
    const penlink_file_header *h = &fs->header;
    if (fs->keep == 0)
        return EXIT_OK;
    if (!fs->have_header)
        return cli_error(c, EXIT_INTEGRITY,
                         "pull: %s does not name the pen whose log it holds (written by an "
                         "earlier penlink, or not a pull file), so its records cannot be tied to "
                         "pen %s: it is left untouched and nothing was acknowledged; pull into a "
                         "new file (-o NEW.plog)",
                         path, info->serial);
    if (strcmp(h->serial, info->serial) != 0)
        return cli_error(c, EXIT_INTEGRITY,
                         "pull: %s holds the log of pen %s, not of pen %s: it is left untouched "
                         "and nothing was acknowledged; pull pen %s into another file",
                         path, h->serial, info->serial, info->serial);
    if (h->has_device_key != info->has_device_key ||
        (h->has_device_key && memcmp(h->device_key, info->device_key, sizeof h->device_key))) {
        char was[65] = "none", now[65] = "none";
        if (h->has_device_key)
            penlink_key_to_hex(h->device_key, was);
        if (info->has_device_key)
            penlink_key_to_hex(info->device_key, now);
        return cli_error(c, EXIT_INTEGRITY,
                         "pull: %s holds the log of pen %s with device key %s, but this pen %s "
                         "presents device key %s: another pen under the same serial, or a pen "
                         "given a new identity; the file is left untouched and nothing was "
                         "acknowledged: pull into another file",
                         path, h->serial, was, info->serial, now);
    }
    return EXIT_OK;
}

static int write_all(int fd, const void *data, size_t len)
{
    const unsigned char *b = data;
    while (len > 0) {
        ssize_t w = write(fd, b, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        b += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Syncs the directory holding @p path, so that a new file's name survives
 * a crash as well as its bytes. */
static int sync_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Starts an empty file: the header naming the pen, synced before any chunk. */
static int write_header(struct cli *c, const char *path, int fd, const penlink_info *info)
{
    penlink_file_header h = PENLINK_FILE_HEADER_INIT;
    snprintf(h.serial, sizeof h.serial, "%s", info->serial);
    snprintf(h.model, sizeof h.model, "%s", info->model);
    h.has_device_key = info->has_device_key;
    memcpy(h.device_key, info->device_key, sizeof h.device_key);
    unsigned char buf[PENLINK_FILE_HEADER_MAX];
    size_t n = 0;
    if (penlink_file_header_encode(&h, buf, sizeof buf, &n) != PENLINK_OK)
        return cli_error(c, EXIT_INTERNAL, "pull: cannot encode the header of %s", path);
    if (write_all(fd, buf, n) != 0 || fsync(fd) != 0 || sync_dir(path) != 0)
        return cli_error(c, EXIT_IO, "pull: writing %s: %s (nothing acknowledged)", path,
                         strerror(errno));
    return EXIT_OK;
}

/* Writes the chunk whose records were checked. */
static int flush_pending(struct pull_ctx *p)
{
    if (!p->pending_len)
        return 0;
    size_t n = p->pending_len;
    p->pending_len = 0;
    if (!p->approved)
        return 0; /* every record of it was the file's already */
    p->approved = 0;
    if (write_all(p->fd, p->pending, n) != 0) {
        p->err = errno;
        return -1;
    }
    return 0;
}

/* A chunk is written once its records passed (on_record: the first record
 * after the resume point; every chunk the pull takes has one). */
static int on_chunk(void *user, const penlink_chunk *ch)
{
    struct pull_ctx *p = user;
    if (flush_pending(p) != 0)
        return -1;
    p->approved = 0;
    if (ch->frame_len > p->pending_cap) {
        unsigned char *nb = realloc(p->pending, ch->frame_len);
        if (!nb) {
            p->err = ENOMEM;
            return -1;
        }
        p->pending = nb;
        p->pending_cap = ch->frame_len;
    }
    memcpy(p->pending, ch->frame, ch->frame_len);
    p->pending_len = ch->frame_len;
    return 0;
}

static int compare_with_file(struct pull_ctx *p, const penlink_record *r);

static int on_new_record(void *user, const penlink_record *r)
{
    struct pull_ctx *p = user;
    if (r->seq < p->file_next) {
        size_t i = (size_t)(r->seq % FILE_OVERLAP_MAX);
        if (!p->tail->have[i] || p->tail->rec[i].seq != r->seq) {
            p->unchecked++; /* the file has it, its copy is not at hand */
            return 0;
        }
        return compare_with_file(p, r);
    }
    p->approved = 1;
    return flush_pending(p);
}

/* A record before the resume point: the file's copy must say the same. */
static int on_overlap(void *user, const penlink_record *r)
{
    struct pull_ctx *p = user;
    size_t i = (size_t)(r->seq % FILE_OVERLAP_MAX);
    if (!p->tail->have[i] || p->tail->rec[i].seq != r->seq)
        return 0; /* not in the file: the chunk brings it */
    return compare_with_file(p, r);
}

static int compare_with_file(struct pull_ctx *p, const penlink_record *r)
{
    size_t i = (size_t)(r->seq % FILE_OVERLAP_MAX);
    if (same_record(&p->tail->rec[i], r)) {
        p->same++;
        return 0;
    }
    p->conflict = 1;
    p->conflict_seq = r->seq;
    p->pending_len = 0;
    return -1;
}

static void on_progress(void *user, const penlink_progress *pr)
{
    struct pull_ctx *p = user;
    p->received = pr->records;
    cli_progress_update(p->progress, pr);
}

/* Which statuses stop a pull half way, the records before kept: the pen gone,
 * hung, or the pull interrupted. */
int cli_stopped_midway(int status)
{
    return status == PENLINK_ERR_GONE || status == PENLINK_ERR_TIMEOUT ||
           status == PENLINK_ERR_CANCELLED;
}

/* The pen's count of the records it holds, when it can be believed: the pull
 * did not find the pen contradicting itself, and the count fits in its flash
 * (a record takes at least a byte). */
static int pen_count_credible(const struct pull_stop *s, uint64_t more)
{
    if (s->status == PENLINK_ERR_INTEGRITY || s->status == PENLINK_ERR_PROTOCOL)
        return 0;
    return s->capacity_bytes == 0 || more <= s->capacity_bytes;
}

void cli_pull_stopped(struct cli *c, const struct pull_stop *s)
{
    if (c->quiet || c->json)
        return;
    const char *who = s->serial && s->serial[0] ? cli_safe(s->serial) : c->prog;
    unsigned long long next = s->next_seq;
    if (s->ack_unconfirmed)
        fprintf(stderr, "%s: pull stopped at the acknowledgement.\n", who);
    else if (s->have_seq)
        fprintf(stderr, "%s: pull stopped at seq %llu.\n", who, next);
    else
        fprintf(stderr, "%s: pull stopped before any record was asked for.\n", who);
    if (s->kept && s->ack_unconfirmed)
        fprintf(stderr, "  kept:       %llu new records (seq %llu..%llu) in %s\n",
                (unsigned long long)s->kept, (unsigned long long)s->from_seq, next - 1,
                cli_safe(s->where));
    else if (s->kept)
        fprintf(stderr,
                "  kept:       %llu new records (seq %llu..%llu) in %s, NOT acknowledged: the "
                "pen keeps them too\n",
                (unsigned long long)s->kept, (unsigned long long)s->from_seq, next - 1,
                cli_safe(s->where));
    else
        fprintf(stderr, "  kept:       no new record\n");
    if (s->received > s->kept && !s->ack_unconfirmed && s->signs)
        fprintf(stderr,
                "              (received %llu: the last %llu are not yet covered by the pen's "
                "signature, so not kept; the next pull asks for them again)\n",
                (unsigned long long)s->received, (unsigned long long)(s->received - s->kept));
    else if (s->received > s->kept && !s->ack_unconfirmed)
        fprintf(stderr, "              (received %llu: %llu of them were archived already)\n",
                (unsigned long long)s->received, (unsigned long long)(s->received - s->kept));
    if (s->ack_unconfirmed)
        fprintf(stderr,
                "  ack:        sent through seq %llu, but NOT confirmed: the pen went silent "
                "after it, so it may have erased those records (they are archived). 'penlink "
                "info' says whether it took it: \"acknowledged below seq %llu\"\n",
                (unsigned long long)s->ack_unconfirmed - 1, (unsigned long long)s->ack_unconfirmed);
    if (s->have_seq && s->pen_next_seq > next) {
        uint64_t more = s->pen_next_seq - next;
        if (pen_count_credible(s, more))
            fprintf(stderr, "  on the pen: %llu more records (seq %llu..%llu), not yet pulled\n",
                    (unsigned long long)more, next, (unsigned long long)s->pen_next_seq - 1);
        else
            fprintf(stderr, "  on the pen: more records, how many is unknown (the pen's own "
                            "count does not hold together)\n");
    } else if (!s->have_seq && s->pen_next_seq > s->pen_acked_seq &&
               pen_count_credible(s, s->pen_next_seq - s->pen_acked_seq)) {
        fprintf(stderr, "  on the pen: %llu records not yet acknowledged (seq %llu..%llu)\n",
                (unsigned long long)(s->pen_next_seq - s->pen_acked_seq),
                (unsigned long long)s->pen_acked_seq, (unsigned long long)s->pen_next_seq - 1);
    }
    if (!s->midway)
        fprintf(stderr, "  next:       see the error above first: the pen was told nothing "
                        "and keeps its records\n");
    else if (s->ack_unconfirmed)
        fprintf(stderr,
                "  next:       run 'penlink pull' again when the pen answers: it acknowledges "
                "again what the pen did not take; nothing is lost\n");
    else if (s->have_seq)
        fprintf(stderr,
                "  next:       run 'penlink pull' again%s: it resumes at seq %llu; nothing is "
                "lost\n",
                s->status == PENLINK_ERR_CANCELLED ? "" : " when the pen answers", next);
    else
        fprintf(stderr, "  next:       run 'penlink pull' again: it resumes after the last "
                        "record kept; nothing is lost\n");
}

/* The pen's description, and its serial to name the file's pen. */
static int pull_info(struct cli *c, penlink_dev *dev, const struct pull_opts *o, penlink_info *info,
                     struct pull_summary *s)
{
    int st = penlink_dev_info(dev, info);
    if (st != PENLINK_OK) {
        int rc = cli_fail(c, "pull", st);
        if (st == PENLINK_ERR_CANCELLED) {
            struct pull_stop ps = { .where = o->path, .status = st, .midway = 1 };
            cli_pull_stopped(c, &ps);
        }
        return rc;
    }
    snprintf(s->serial, sizeof s->serial, "%s", info->serial);
    if (!info->serial[0])
        return cli_error(c, EXIT_PROTOCOL,
                         "pull: the pen sent no serial, so its log cannot be named in %s", o->path);
    return EXIT_OK;
}

/* Where the pull starts: after the file's last record, or the pen's first; for an unsigned
 * pen, the records it still holds unacknowledged below that, to be compared. */
static unsigned long long pull_from(const struct file_state *fs, const penlink_info *info)
{
    unsigned long long from = fs->have ? fs->next : info->log_first_seq;
    if (fs->have && !fs->have_link) {
        /* docs/protocol.md section 5 rule 7: an unsigned pen that still holds
         * records below the file's end that it says no one acknowledged is
         * asked for them again, to be compared */
        unsigned long long again =
            info->log_acked_seq > info->log_first_seq ? info->log_acked_seq : info->log_first_seq;
        if (again < from)
            from = again;
    }
    return from;
}

/* The file read and made ready to append: its pen checked, a torn last frame cut, a new
 * file given its header. */
static int prepare_file(struct cli *c, const struct pull_opts *o, int fd, const penlink_info *info,
                        struct file_state *fs, struct file_tail *tail)
{
    int rc = scan_file(c, o->path, fd, fs, tail);
    if (rc == EXIT_OK)
        rc = check_owner(c, o->path, fs, info);
    if (rc != EXIT_OK)
        return rc;
    struct stat sb;
    if (fstat(fd, &sb) == 0 && sb.st_size > fs->keep) {
        /* a crash cut the last frame short: its records were never acked */
        if (ftruncate(fd, fs->keep) != 0)
            return cli_error(c, EXIT_IO, "pull: %s: %s", o->path, strerror(errno));
        if (c->verbose)
            fprintf(stderr, "pull: dropped a %lld-byte incomplete tail of %s\n",
                    (long long)(sb.st_size - fs->keep), o->path);
    }
    if (fs->keep == 0)
        return write_header(c, o->path, fd, info);
    return EXIT_OK;
}

/* After the pull: what came made durable, then every way it may have failed, said. */
static int pull_outcome(struct cli *c, const struct pull_opts *o, const struct pull_ctx *pc,
                        const penlink_info *info, unsigned long long from, int st,
                        const penlink_pull_result *res)
{
    /* whatever arrived intact is kept: make it durable before anything else */
    if (fsync(pc->fd) != 0)
        return cli_error(c, EXIT_IO, "pull: syncing %s: %s (nothing acknowledged)", o->path,
                         strerror(errno));
    if (pc->err)
        return cli_error(c, EXIT_IO, "pull: writing %s: %s (nothing acknowledged)", o->path,
                         strerror(pc->err));
    if (pc->conflict)
        return cli_error(c, EXIT_INTEGRITY,
                         "pull: record %llu arrived again with content different from its copy "
                         "in %s: the pen's log was replaced or re-sealed under the same "
                         "identity; the chunk holding it was not written and nothing was "
                         "acknowledged",
                         pc->conflict_seq, o->path);
    if (st != PENLINK_OK) {
        int rc = cli_fail(c, "pull", st);
        if (cli_stopped_midway(st) || res->records) {
            struct pull_stop ps = { .serial = info->serial,
                                    .where = o->path,
                                    .status = st,
                                    .midway = cli_stopped_midway(st),
                                    .have_seq = 1,
                                    .from_seq = from,
                                    .next_seq = res->next_seq,
                                    .kept = res->records,
                                    .received = pc->received,
                                    .pen_next_seq = info->log_next_seq,
                                    .pen_acked_seq = info->log_acked_seq,
                                    .capacity_bytes = info->log_capacity_bytes };
            cli_pull_stopped(c, &ps);
        }
        return rc;
    }
    if (pc->unchecked)
        return cli_error(c, EXIT_INTEGRITY,
                         "pull: the pen sent again %llu records %s holds but that could not be "
                         "compared with their copies (more than %u records from the file's "
                         "end): nothing was acknowledged; pull this pen into an archive, which "
                         "compares them all",
                         pc->unchecked, o->path, FILE_OVERLAP_MAX);
    return EXIT_OK;
}

/* The records saved, acknowledged to the pen (unless --no-ack or nothing new). */
static int acknowledge(struct cli *c, penlink_dev *dev, const struct pull_opts *o,
                       const penlink_info *info, unsigned long long from,
                       const penlink_pull_result *res, struct pull_summary *s)
{
    s->acked_seq = info->log_acked_seq;
    if (!(o->ack && res->next_seq > 0 && res->next_seq - 1 >= info->log_acked_seq &&
          res->next_seq > from))
        return EXIT_OK;
    uint64_t acked = 0;
    int st = penlink_dev_ack(dev, res->next_seq - 1, &acked);
    if (st ==
        PENLINK_ERR_INVALID_ARG) /* a seq of the pen's own chunks: the pen contradicts itself */
        return cli_fail(c,
                        "pull: records saved, but the pen refused to acknowledge the records it "
                        "had just sent: they stay on the pen",
                        PENLINK_ERR_DEVICE);
    if (st == PENLINK_ERR_TIMEOUT || st == PENLINK_ERR_GONE || st == PENLINK_ERR_CANCELLED) {
        char what[512];
        snprintf(what, sizeof what,
                 "pull: %llu new records (seq %llu..%llu) saved in %s, but the pen did not "
                 "confirm the acknowledgement: if it took it, it may have erased them (they "
                 "are in the file); the next pull acknowledges again",
                 (unsigned long long)res->records, (unsigned long long)from,
                 (unsigned long long)res->next_seq - 1, o->path);
        return cli_fail(c, what, st);
    }
    if (st != PENLINK_OK)
        return cli_fail(c,
                        "pull: records saved, but the acknowledgement failed (the next pull "
                        "acknowledges them)",
                        st);
    s->acked_seq = acked;
    return EXIT_OK;
}

int cli_pull_to_file(struct cli *c, penlink_dev *dev, const struct pull_opts *o,
                     struct pull_summary *s)
{
    penlink_info info = PENLINK_INFO_INIT;
    memset(s, 0, sizeof *s);
    int rc = pull_info(c, dev, o, &info, s);
    if (rc != EXIT_OK)
        return rc;
    int fd = open(o->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return cli_error(c, EXIT_IO, "pull: cannot open %s: %s", o->path, strerror(errno));
    struct file_state fs;
    struct file_tail tail = { calloc(FILE_OVERLAP_MAX, sizeof *tail.rec),
                              calloc(FILE_OVERLAP_MAX, 1) };
    struct pull_ctx pc = { .c = c, .fd = fd, .tail = &tail };
    if (!tail.rec || !tail.have) {
        rc = cli_error(c, EXIT_INTERNAL, "pull: out of memory");
        goto out;
    }
    rc = prepare_file(c, o, fd, &info, &fs, &tail);
    if (rc != EXIT_OK)
        goto out;
    unsigned long long from = pull_from(&fs, &info);
    pc.file_next = fs.have ? fs.next : 0;
    s->resumed = fs.have;
    if (o->progress)
        pc.progress = cli_progress_begin(c, info.serial);
    penlink_pull_cb cb = { .size = sizeof(penlink_pull_cb),
                           .on_chunk = on_chunk,
                           .on_record = on_new_record,
                           .on_overlap = on_overlap,
                           .on_progress = on_progress,
                           .user = &pc,
                           .after_link = fs.have && fs.have_link ? fs.link : NULL };
    penlink_pull_result res = PENLINK_PULL_RESULT_INIT;
    int st = penlink_dev_pull(dev, from, &cb, &res);
    if (!pc.conflict)
        flush_pending(&pc);
    cli_progress_end(pc.progress, res.records, st == PENLINK_OK && !pc.err && !pc.conflict);
    s->from_seq = from;
    s->next_seq = res.next_seq;
    s->records = res.records;
    s->bytes = res.bytes;
    s->gap = res.gap;
    rc = pull_outcome(c, o, &pc, &info, from, st, &res);
    if (rc == EXIT_OK)
        rc = acknowledge(c, dev, o, &info, from, &res, s);
out:
    free(pc.pending);
    free(tail.rec);
    free(tail.have);
    close(fd);
    return rc;
}

/* ---- pulling into the archive ------------------------------------------- */

int cli_pull_to_archive(struct cli *c, penlink_dev *dev, int progress,
                        penlink_archive_pull_result *res)
{
    penlink_archive *ar = NULL;
    memset(res, 0, sizeof *res); /* callers report it even when the archive won't open */
    res->size = sizeof *res;
    int st = penlink_archive_open(c->ctx, c->archive, &ar);
    if (st != PENLINK_OK)
        return cli_fail(c, "archive", st);
    struct pull_ctx pc = { .c = c, .fd = -1 };
    penlink_info info = PENLINK_INFO_INIT; /* the serial, for the progress lines; a pen that does
                                            * not answer this is not asked again by the pull */
    st = penlink_dev_info(dev, &info);
    if (st != PENLINK_OK) {
        penlink_archive_close(ar);
        int rc = cli_fail(c, "pull", st);
        if (st == PENLINK_ERR_CANCELLED) {
            struct pull_stop ps = { .where = "the archive", .status = st, .midway = 1 };
            cli_pull_stopped(c, &ps);
        }
        return rc;
    }
    if (progress)
        pc.progress = cli_progress_begin(c, info.serial);
    penlink_pull_cb cb = { .size = sizeof(penlink_pull_cb),
                           .on_progress = on_progress,
                           .user = &pc };
    st = penlink_archive_pull(ar, dev, &cb, res);
    cli_progress_end(pc.progress, res->records_new, st == PENLINK_OK);
    penlink_archive_close(ar);
    if (res->gap)
        cli_warn(c,
                 "%s: %llu records (seq %llu..%llu) were no longer on the pen: acknowledged "
                 "elsewhere, or lost to a full log before they were pulled (recorded in the "
                 "archive)",
                 res->serial, (unsigned long long)res->gap, (unsigned long long)res->from_seq,
                 (unsigned long long)(res->from_seq + res->gap - 1));
    if (res->overflows)
        cli_warn(c,
                 "%s: %llu log_overflow records: the pen dropped records before they were "
                 "pulled",
                 res->serial, (unsigned long long)res->overflows);
    if (st != PENLINK_OK) {
        int rc = cli_fail(c, "pull", st);
        /* the archive's pull may have stopped before it asked the pen anything:
         * then what the pen said here stands for it */
        int have_seq = res->serial[0] != '\0';
        if (cli_stopped_midway(st) || (res->records_new && res->acked_seq < res->next_seq)) {
            struct pull_stop ps = { .serial = info.serial,
                                    .where = "the archive",
                                    .status = st,
                                    .midway = cli_stopped_midway(st),
                                    .have_seq = have_seq,
                                    .from_seq = res->from_seq,
                                    .next_seq = res->next_seq,
                                    .kept = res->records_new,
                                    .received = pc.received,
                                    .pen_next_seq =
                                        have_seq ? res->pen_next_seq : info.log_next_seq,
                                    .pen_acked_seq = info.log_acked_seq,
                                    .capacity_bytes = info.log_capacity_bytes,
                                    .signs = (info.features & PENLINK_FEATURE_SIGNED_CHUNKS) != 0,
                                    .ack_unconfirmed = res->ack_unconfirmed };
            cli_pull_stopped(c, &ps);
        }
        return rc;
    }
    return EXIT_OK;
}
