/*
 * pen_fuzz_one(): the protocol handler fed arbitrary bytes, for libFuzzer
 * (fuzz_handler.c) and for the plain random-input test (test_handler.c).
 *
 * One pen stays up across inputs, as a real pen does across hosts, over a
 * small RAM flash holding a few hundred records. Each input is one USB
 * session: a bus reset, then (when the first byte's low bit is set) a valid
 * Hello so that the requests behind it are reached, then the rest of the
 * input in pieces of varying size. The pen must answer with well-formed
 * frames no larger than the host allows, and become idle: anything else
 * aborts.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "identity.h"
#include "pen.h"

#define SECTOR 1024u
#define SECTORS 48u

int pen_fuzz_one(const uint8_t *data, size_t len);

typedef struct fz {
    uint8_t flash[SECTOR * SECTORS];
    pen pen;
    pen_hal hal;
    int64_t clock;
    uint32_t host_max;
    uint8_t frame[PL_FRAME_HEADER_SIZE + PL_FRAME_MAX_PAYLOAD];
    pl_frame_decoder dec;
    uint64_t sent;
} fz;

static fz *g;

static int f_read(void *ctx, uint32_t addr, void *buf, uint32_t len)
{
    fz *z = ctx;
    if ((uint64_t)addr + len > sizeof z->flash)
        abort();
    memcpy(buf, z->flash + addr, len);
    return 0;
}

static int f_program(void *ctx, uint32_t addr, const void *buf, uint32_t len)
{
    fz *z = ctx;
    const uint8_t *d = buf;
    if ((uint64_t)addr + len > sizeof z->flash)
        abort();
    for (uint32_t i = 0; i < len; i++) {
        if (d[i] & ~z->flash[addr + i])
            abort(); /* programming a bit back to 1: the core broke NOR rules */
        z->flash[addr + i] &= d[i];
    }
    return 0;
}

static int f_erase(void *ctx, uint32_t sector)
{
    fz *z = ctx;
    if (sector >= SECTORS)
        abort();
    memset(z->flash + (size_t)sector * SECTOR, 0xFF, SECTOR);
    return 0;
}

static uint64_t h_mono(void *ctx)
{
    fz *z = ctx;
    return (uint64_t)z->clock;
}

static int64_t h_rtc(void *ctx)
{
    fz *z = ctx;
    return z->clock;
}

static int h_rtc_set(void *ctx, int64_t ms)
{
    fz *z = ctx;
    if (ms >= z->clock)
        z->clock = ms; /* keeps the monotonic clock monotonic */
    return 0;
}

/* Every frame the pen sends must decode, unpack and fit the host's limit. */
static int h_send(void *ctx, const uint8_t *data, size_t len)
{
    fz *z = ctx;
    size_t used = 0;
    pl_frame f;
    if (len < PL_FRAME_HEADER_SIZE || len - PL_FRAME_HEADER_SIZE > z->host_max)
        abort();
    pl_frame_decoder_reset(&z->dec);
    if (pl_frame_decoder_feed(&z->dec, data, len, &used, &f) != PL_OK || used != len)
        abort();
    pl_envelope *e = pl_envelope_unpack(NULL, f.payload, f.len);
    if (!e)
        abort();
    pl_envelope_free(NULL, e);
    z->sent++;
    return 0;
}

static int h_cart(void *ctx, pen_cartridge *out)
{
    (void)ctx;
    out->serial = 0x4D4E000012345600ull;
    out->uses = 0;
    return 0;
}

static int h_sensors(void *ctx, pen_sensors *out)
{
    fz *z = ctx;
    out->depth_um = 700;
    out->speed_sps = 110;
    out->strokes = (uint64_t)z->clock / 10;
    return 0;
}

/* An identity, so that signed configuration, nonces and the hash chain are
 * fuzzed too: a fixed device key, one provisioned config key, a counter for
 * the random source (runs repeat), libsodium for the rest (identity.c). */
static uint8_t dev_sk[64], cfg_pk[1][32];
static uint64_t rnd_ctr;

static int h_key(void *ctx, uint8_t pk[32])
{
    (void)ctx;
    memcpy(pk, dev_sk + 32, 32);
    return 0;
}

static int h_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64])
{
    (void)ctx;
    return crypto_sign_detached(sig, NULL, msg, len, dev_sk);
}

static int h_random(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(++rnd_ctr * 0x9E3779B97F4A7C15ull >> 56);
    return 0;
}

static void setup(void)
{
    pen_opts o;
    g = calloc(1, sizeof *g);
    if (!g)
        abort();
    memset(g->flash, 0xFF, sizeof g->flash);
    g->clock = 1767225600000ll;
    g->hal.ctx = g;
    g->hal.flash_sector_size = SECTOR;
    g->hal.flash_sector_count = SECTORS;
    g->hal.flash_read = f_read;
    g->hal.flash_program = f_program;
    g->hal.flash_erase = f_erase;
    g->hal.mono_ms = h_mono;
    g->hal.rtc_get_ms = h_rtc;
    g->hal.rtc_set_ms = h_rtc_set;
    g->hal.usb_send = h_send;
    g->hal.cartridge_read = h_cart;
    g->hal.sensors_read = h_sensors;
    uint8_t seed[32], sk2[64];
    if (sodium_init() < 0)
        abort();
    memset(seed, 7, sizeof seed);
    crypto_sign_seed_keypair(dev_sk + 32, dev_sk, seed);
    memset(seed, 8, sizeof seed);
    crypto_sign_seed_keypair(cfg_pk[0], sk2, seed);
    g->hal.device_key = h_key;
    g->hal.sign = h_sign;
    g->hal.verify = sim_crypto_verify;
    g->hal.sha256 = sim_crypto_sha256;
    g->hal.random = h_random;
    g->hal.config_keys = (const uint8_t(*)[32])cfg_pk;
    g->hal.config_key_count = 1;
    if (pl_frame_decoder_init(&g->dec, g->frame, sizeof g->frame, PL_FRAME_MAX_PAYLOAD) != PL_OK)
        abort();
    pen_opts_default(&o);
    o.batch_records = 32;
    if (pen_init(&g->pen, &g->hal, &o) != PEN_OK)
        abort();
    /* a log with chunks and a staged tail */
    for (int i = 0; i < 300; i++) {
        g->clock += 60000;
        pen_status st;
        switch (i % 6) {
        case 0: st = pen_cartridge_inserted(&g->pen); break;
        case 1: st = pen_treatment_start(&g->pen); break;
        case 2: st = pen_depth_changed(&g->pen); break;
        case 3: st = pen_treatment_end(&g->pen); break;
        case 4: st = pen_cartridge_removed(&g->pen); break;
        default: st = pen_fault(&g->pen, (uint32_t)i); break;
        }
        if (st != PEN_OK)
            abort();
        while (pen_poll(&g->pen))
            ;
    }
}

static void settle(void)
{
    for (int i = 0; i < 10000; i++)
        if (!pen_poll(&g->pen))
            return;
    abort(); /* the pen never became idle */
}

int pen_fuzz_one(const uint8_t *data, size_t len)
{
    uint64_t s;
    size_t pos = 0;
    if (!g)
        setup();
    pen_usb_reset(&g->pen);
    g->host_max = PL_FRAME_MIN_PAYLOAD;
    if (len > 0) {
        uint8_t ctl = data[pos++];
        if (ctl & 1) {
            uint8_t buf[128];
            pl_envelope env = PENLINK__V1__ENVELOPE__INIT;
            Penlink__V1__Hello h = PENLINK__V1__HELLO__INIT;
            h.has_protocol_major = h.has_max_frame_payload = 1;
            h.protocol_major = 1;
            h.max_frame_payload = (ctl & 2) ? 65536 : PL_FRAME_MIN_PAYLOAD;
            env.has_request_id = 1;
            env.request_id = 1;
            env.body_case = PENLINK__V1__ENVELOPE__BODY_HELLO;
            env.hello = &h;
            long n = pl_envelope_frame(&env, buf, sizeof buf);
            if (n <= 0)
                abort();
            pen_usb_rx(&g->pen, buf, (size_t)n);
            g->host_max = h.max_frame_payload;
        }
    }
    s = len * 0x9E3779B97F4A7C15ull + (len ? data[0] : 0);
    while (pos < len) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        size_t n = 1 + (size_t)((s >> 33) % 97);
        if (n > len - pos)
            n = len - pos;
        pen_usb_rx(&g->pen, data + pos, n);
        /* a frame's announced maximum may change mid-input (a Hello in the input) */
        if (g->pen.ready && g->pen.tx_max > g->host_max)
            g->host_max = g->pen.tx_max;
        pos += n;
        if ((s >> 20) & 1)
            pen_poll(&g->pen);
    }
    settle();
    return 0;
}
