/*
 * Protocol messages for people and programs: one line per message (what
 * `penlink -v` and `decode --messages` print), every field as text (-vv),
 * or one JSON object per message (`decode --messages --json`). Strings from
 * the wire cross the CLI's one boundary here (cli_safe, cli_json_str);
 * links, signatures, keys and chunk data are shown in hex.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

#define FIELD_DEPTH_MAX 16

static const char *dir_name(penlink_direction d)
{
    switch (d) {
    case PENLINK_DIR_TO_PEN: return "to_pen";
    case PENLINK_DIR_TO_HOST: return "to_host";
    default: return "unknown";
    }
}

static const char *dir_arrow(penlink_direction d)
{
    switch (d) {
    case PENLINK_DIR_TO_PEN: return "host->pen";
    case PENLINK_DIR_TO_HOST: return "pen->host";
    default: return "?";
    }
}

static char *hex(const uint8_t *p, size_t n)
{
    char *s = malloc(2 * n + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i++)
        snprintf(s + 2 * i, 3, "%02x", p[i]);
    s[2 * n] = '\0';
    return s;
}

/* ---- text ---------------------------------------------------------------- */

typedef struct text_walk {
    FILE *f;
    int any; /* a field was printed */
    int n;   /* values printed at this level */
    int count[FIELD_DEPTH_MAX + 1];
} text_walk;

static int text_field(void *user, const penlink_field *fl)
{
    text_walk *w = user;
    w->any = 1;
    int d = fl->depth < FIELD_DEPTH_MAX ? fl->depth : FIELD_DEPTH_MAX;
    if (fl->type == PENLINK_FIELD_END) {
        fputc('}', w->f);
        return 0;
    }
    if (w->count[d]++)
        fputc(' ', w->f);
    if (fl->type == PENLINK_FIELD_BEGIN) {
        fprintf(w->f, "%s{", fl->name);
        if (d + 1 <= FIELD_DEPTH_MAX)
            w->count[d + 1] = 0;
        return 0;
    }
    fprintf(w->f, "%s=", fl->name);
    switch (fl->type) {
    case PENLINK_FIELD_UINT: fprintf(w->f, "%" PRIu64, fl->u); break;
    case PENLINK_FIELD_INT: fprintf(w->f, "%" PRId64, fl->i); break;
    case PENLINK_FIELD_BOOL: fputs(fl->u ? "true" : "false", w->f); break;
    case PENLINK_FIELD_TEXT: fprintf(w->f, "\"%s\"", cli_safe(fl->text)); break;
    case PENLINK_FIELD_BYTES: {
        char *h = hex(fl->bytes, fl->len);
        fputs(h ? h : "?", w->f);
        free(h);
        break;
    }
    default: break;
    }
    return 0;
}

void cli_message_text(FILE *f, const penlink_message *m, int fields, const char *prefix)
{
    fputs(prefix, f);
    if (m->packet)
        fprintf(f, "packet %" PRIu64 ": ", m->packet);
    else if (m->direction == PENLINK_DIR_UNKNOWN)
        fprintf(f, "offset %" PRIu64 ": ", m->offset);
    if (m->direction != PENLINK_DIR_UNKNOWN)
        fprintf(f, "%s ", dir_arrow(m->direction));
    fputs(m->name, f);
    if (m->internal_)
        fprintf(f, " request %u", m->request_id);
    fprintf(f, " (%u bytes)", m->size);
    if (m->chain)
        fprintf(f, " chain %s", m->chain);
    if (m->problem)
        fprintf(f, ": %s", m->problem);
    fputc('\n', f);
    if (fields && m->internal_) {
        text_walk w = { .f = f };
        fprintf(f, "%s  ", prefix);
        penlink_message_fields(m, text_field, &w);
        if (!w.any) /* a zero-length payload: an empty Envelope */
            fputs("(no fields: an empty Envelope)", f);
        fputc('\n', f);
    }
}

/* ---- JSON ------------------------------------------------------------------ */

typedef struct json_walk {
    json_t *stack[FIELD_DEPTH_MAX + 2];
    int top;
    int broken;
} json_walk;

static json_t *value(const penlink_field *fl)
{
    switch (fl->type) {
    case PENLINK_FIELD_UINT:
        if (fl->u > (uint64_t)INT64_MAX) {
            char v[24];
            snprintf(v, sizeof v, "%" PRIu64, fl->u);
            return json_string(v); /* exact, where JSON numbers would round */
        }
        return json_integer((json_int_t)fl->u);
    case PENLINK_FIELD_INT: return json_integer((json_int_t)fl->i);
    case PENLINK_FIELD_BOOL: return json_boolean(fl->u);
    case PENLINK_FIELD_TEXT: return cli_json_str(fl->text);
    case PENLINK_FIELD_BYTES: {
        char *h = hex(fl->bytes, fl->len);
        json_t *j = json_string(h ? h : "");
        free(h);
        return j;
    }
    default: return json_null();
    }
}

/* Puts @p v under @p fl->name in the object on top, in an array when repeated. */
static void put(json_walk *w, const penlink_field *fl, json_t *v)
{
    json_t *o = w->stack[w->top];
    if (!fl->repeated) {
        json_object_set_new(o, fl->name, v);
        return;
    }
    json_t *a = json_object_get(o, fl->name);
    if (!a) {
        a = json_array();
        json_object_set_new(o, fl->name, a);
    }
    json_array_append_new(a, v);
}

static int json_field(void *user, const penlink_field *fl)
{
    json_walk *w = user;
    if (fl->type == PENLINK_FIELD_END) {
        if (w->top > 0)
            w->top--;
        return 0;
    }
    if (fl->type == PENLINK_FIELD_BEGIN) {
        json_t *o = json_object();
        put(w, fl, o);
        if (w->top < FIELD_DEPTH_MAX + 1)
            w->stack[++w->top] = o;
        else
            w->broken = 1;
        return 0;
    }
    put(w, fl, value(fl));
    return 0;
}

void *cli_message_json(const penlink_message *m)
{
    char t[40];
    json_t *j = json_object();
    json_object_set_new(j, "message", json_string(m->name));
    json_object_set_new(j, "index", json_integer((json_int_t)m->index));
    /* a capture's: the offset of the packet block, and the packet's number */
    json_object_set_new(j, "offset", json_integer((json_int_t)m->offset));
    if (m->packet)
        json_object_set_new(j, "packet", json_integer((json_int_t)m->packet));
    if (m->packet || m->time_us) { /* a capture's or a live session's: always timed, 0 too */
        /* the time rule's pair (docs/json.md), rounded down like the ISO text,
         * and the packet's own microseconds for those who compare packets */
        int64_t ms = m->time_us / 1000 - (m->time_us % 1000 < 0);
        cli_format_time(ms, t, sizeof t);
        json_object_set_new(j, "time_ms", json_integer(ms));
        json_object_set_new(j, "time", json_string(t));
        json_object_set_new(j, "time_us", json_integer(m->time_us));
    }
    json_object_set_new(j, "direction", json_string(dir_name(m->direction)));
    if (m->packet)
        json_object_set_new(j, "stream", json_integer(m->stream));
    json_object_set_new(j, "size", json_integer(m->size));
    if (m->internal_) {
        char crc[12], check[8];
        snprintf(crc, sizeof crc, "0x%08x", m->payload_crc);
        snprintf(check, sizeof check, "0x%04x", m->header_check);
        json_object_set_new(j, "frame",
                            json_pack("{s:i, s:i, s:I, s:s, s:s}", "version", m->version, "flags",
                                      m->flags, "length", (json_int_t)m->payload_len, "crc", crc,
                                      "header_check", check));
        json_object_set_new(j, "request_id", json_integer(m->request_id));
        json_walk w = { .top = 0 };
        w.stack[0] = json_object();
        penlink_message_fields(m, json_field, &w);
        json_object_set_new(j, "fields", w.stack[0]);
    }
    if (m->chain)
        json_object_set_new(j, "chain", json_string(m->chain));
    if (m->problem)
        json_object_set_new(j, "problem", json_string(m->problem));
    return j;
}

/* ---- -v -------------------------------------------------------------------- */

int cli_message_verbose(void *user, const penlink_message *m)
{
    const struct cli *c = user;
    cli_message_text(stderr, m, c->verbose >= 2, "penlink: ");
    return 0;
}
