/* penlink info: who the pen is, what its log holds, its clock and limits. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "cli.h"
#include "clock.h"

static const char usage[] =
    "Usage: penlink [--device URI] info [-h]\n"
    "\n"
    "Show a pen's identity (serial, model, hardware and firmware), the protocol\n"
    "version it speaks, its log (sequence range held, acknowledged, flash use),\n"
    "its clock and the drift from this computer's, its configuration revision\n"
    "and the limits within which it accepts configuration. --json for scripts.\n";

static json_t *limits_json(const penlink_limits *l)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "depth_min_um",
                     (json_int_t)l->depth_min_um, "depth_max_um", (json_int_t)l->depth_max_um,
                     "depth_step_um", (json_int_t)l->depth_step_um, "speed_min_sps",
                     (json_int_t)l->speed_min_sps, "speed_max_sps", (json_int_t)l->speed_max_sps,
                     "max_treatment_s", (json_int_t)l->max_treatment_s, "max_cartridge_uses",
                     (json_int_t)l->max_cartridge_uses, "auto_off_min_s",
                     (json_int_t)l->auto_off_min_s, "auto_off_max_s", (json_int_t)l->auto_off_max_s,
                     "max_text_len", (json_int_t)l->max_text_len);
}

/* The keys into @p o: the device key and the configuration keys, with fingerprints. */
static void keys_json(json_t *o, const penlink_info *i)
{
    char hex[65], fp[PENLINK_KEY_FINGERPRINT_LEN];
    if (i->has_device_key) {
        penlink_key_to_hex(i->device_key, hex);
        penlink_key_to_fingerprint(i->device_key, fp);
        json_object_set_new(o, "device_key", json_string(hex));
        json_object_set_new(o, "device_key_fingerprint", json_string(fp));
    } else {
        json_object_set_new(o, "device_key", json_null());
        json_object_set_new(o, "device_key_fingerprint", json_null());
    }
    json_t *keys = json_array(), *fps = json_array();
    for (uint32_t k = 0; k < i->n_config_keys; k++) {
        penlink_key_to_hex(i->config_keys[k], hex);
        penlink_key_to_fingerprint(i->config_keys[k], fp);
        json_array_append_new(keys, json_string(hex));
        json_array_append_new(fps, json_string(fp));
    }
    json_object_set_new(o, "config_keys", keys);
    json_object_set_new(o, "config_key_fingerprints", fps);
}

static void info_json(const penlink_info *i, int64_t host, const char *t)
{
    uint64_t held = i->log_next_seq - i->log_first_seq;
    json_t *o = json_pack(
        "{s:o, s:o, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:I, s:I, s:I, s:o}",
        "serial", cli_json_str(i->serial), "model", cli_json_str(i->model), "hardware_revision",
        cli_json_str(i->hardware_revision), "firmware_version", cli_json_str(i->firmware_version),
        "log_first_seq", (json_int_t)i->log_first_seq, "log_next_seq", (json_int_t)i->log_next_seq,
        "log_acked_seq", (json_int_t)i->log_acked_seq, "records_held", (json_int_t)held,
        "log_capacity_bytes", (json_int_t)i->log_capacity_bytes, "log_used_bytes",
        (json_int_t)i->log_used_bytes, "device_time_ms", (json_int_t)i->device_time_ms,
        "device_time", t, "clock_drift_ms", (json_int_t)(i->device_time_ms - host), "uptime_ms",
        (json_int_t)i->uptime_ms, "config_revision", (json_int_t)i->config_revision, "limits",
        limits_json(&i->limits));
    char proto[24];
    snprintf(proto, sizeof proto, "%u.%u", i->protocol_major, i->protocol_minor);
    json_object_set_new(o, "protocol", json_string(proto));
    keys_json(o, i);
    json_object_set_new(o, "signed_clock",
                        json_boolean(i->features & PENLINK_FEATURE_SIGNED_CLOCK));
    json_object_set_new(o, "identify", json_boolean(i->features & PENLINK_FEATURE_IDENTIFY));
    json_object_set_new(o, "signed_config",
                        json_boolean(i->features & PENLINK_FEATURE_SIGNED_CONFIG));
    json_object_set_new(o, "signed_log", json_boolean(i->features & PENLINK_FEATURE_SIGNED_CHUNKS));
    cli_json_out(o);
}

/* The device key, the configuration keys and what they sign, for a person. */
static void keys_text(const penlink_info *i)
{
    char hex[65], fp[PENLINK_KEY_FINGERPRINT_LEN];
    if (i->has_device_key) {
        penlink_key_to_hex(i->device_key, hex);
        penlink_key_to_fingerprint(i->device_key, fp);
        printf("device key        %s (fingerprint %s; signs its log)\n", hex, fp);
    } else {
        printf("device key        none: this pen's log is not signed\n");
    }
    if (i->n_config_keys == 0)
        printf("config signing    not required: no keys provisioned (a development pen;\n"
               "                  anyone with a cable can change its configuration)\n");
    for (uint32_t k = 0; k < i->n_config_keys; k++) {
        penlink_key_to_hex(i->config_keys[k], hex);
        penlink_key_to_fingerprint(i->config_keys[k], fp);
        printf("%s%s (fingerprint %s)\n",
               k ? "                  " : "config signing    required, by one of: ", hex, fp);
    }
    if (i->features & PENLINK_FEATURE_SIGNED_CLOCK)
        printf("clock signing     required, by the same keys\n");
}

static void info_text(const penlink_info *i, int64_t host, const char *t)
{
    uint64_t held = i->log_next_seq - i->log_first_seq;
    uint64_t unacked = i->log_next_seq > i->log_acked_seq ? i->log_next_seq - i->log_acked_seq : 0;
    double pct = i->log_capacity_bytes
                     ? 100.0 * (double)i->log_used_bytes / (double)i->log_capacity_bytes
                     : 0.0;
    printf("serial            %s\n", cli_safe(i->serial));
    printf("model             %s (hardware %s)\n", cli_safe(i->model),
           cli_safe(i->hardware_revision));
    printf("firmware          %s, protocol %u.%u\n", cli_safe(i->firmware_version),
           i->protocol_major, i->protocol_minor);
    if (held)
        printf("log               seq %" PRIu64 "..%" PRIu64 " (%" PRIu64 " records held)\n",
               i->log_first_seq, i->log_next_seq - 1, held);
    else
        printf("log               empty (next seq %" PRIu64 ")\n", i->log_next_seq);
    printf("not yet pulled    %" PRIu64 " records (acknowledged below seq %" PRIu64 ")\n", unacked,
           i->log_acked_seq);
    printf("flash             %" PRIu64 " of %" PRIu64 " bytes used (%.1f%%)\n", i->log_used_bytes,
           i->log_capacity_bytes, pct);
    printf("clock             %s (%+.3f s from this computer)\n", t,
           (double)(i->device_time_ms - host) / 1000.0);
    printf("uptime            %.1f h\n", (double)i->uptime_ms / 3.6e6);
    printf("config revision   %u\n", i->config_revision);
    printf("limits            depth %u..%u um in %u um steps, speed %u..%u strokes/s,\n"
           "                  treatment <= %u s, cartridge uses <= %u, auto-off %u..%u s\n",
           i->limits.depth_min_um, i->limits.depth_max_um, i->limits.depth_step_um,
           i->limits.speed_min_sps, i->limits.speed_max_sps, i->limits.max_treatment_s,
           i->limits.max_cartridge_uses, i->limits.auto_off_min_s, i->limits.auto_off_max_s);
    keys_text(i);
    printf("identify          %s\n", i->features & PENLINK_FEATURE_IDENTIFY
                                         ? "yes: penlink identify makes it blink and beep"
                                         : "no (older firmware)");
}

int cmd_info(struct cli *c, int argc, char **argv)
{
    int done = cli_help_only(argc, argv, usage, 0);
    if (done >= 0)
        return done;
    penlink_dev *dev = NULL;
    int rc = cli_open(c, &dev);
    if (rc != EXIT_OK)
        return rc;
    penlink_info i = PENLINK_INFO_INIT;
    int st = penlink_dev_info(dev, &i);
    int64_t host = pc_wall_ms();
    if (st != PENLINK_OK) {
        penlink_dev_close(dev);
        return cli_fail(c, "info", st);
    }
    char t[40];
    cli_format_time(i.device_time_ms, t, sizeof t);
    /* printed before the pen is closed: its configuration keys are the
     * device's (penlink_info.config_keys, valid until penlink_dev_close) */
    if (c->json)
        info_json(&i, host, t);
    else
        info_text(&i, host, t);
    penlink_dev_close(dev);
    return EXIT_OK;
}
