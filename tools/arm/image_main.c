/*
 * The program of pen-m4.elf, the image whose size is the pen's flash and RAM
 * budget. It is never run: it exists so that the linker keeps exactly what a
 * real pen uses and drops the rest (--gc-sections).
 *
 * The HAL is a set of trivial stubs over made-up peripheral registers. They
 * read and write volatile locations so that the compiler cannot prove
 * anything about their results and optimise the core's paths away.
 */
#include <stddef.h>
#include <stdint.h>

/* Made-up peripheral registers; the addresses only need to be volatile. */
#define REG(addr) (*(volatile uint32_t *)(addr))
#define USB_FIFO REG(0x50000020u)
#define USB_STAT REG(0x50000024u)
#define FLASH_DATA REG(0x40023c40u)
#define FLASH_ADDR REG(0x40023c44u)
#define FLASH_CTRL REG(0x40023c48u)
#define RTC_LO REG(0x40002800u)
#define RTC_HI REG(0x40002804u)
#define TICK REG(0xE000E018u) /* SysTick current value */
#define SENSOR REG(0x40012000u)

#if PL_M4_USE_CORE
/* ---- the core: firmware-stub/core/pen.h ------------------------------------------
 * What a port writes: a pen_hal over the board, a static pen, and a main loop
 * that hands USB bytes and usage events to the core. The flash is a 1 MiB SPI
 * NOR with 4 KiB sectors (typical for a log store beside the MCU's own flash).
 */
#include <stdbool.h>

#include "pen.h"
#include "usb_desc.h"

#define FLASH_SECTOR 4096u
#define FLASH_SECTORS 256u

static pen the_pen;

static int hal_flash_read(void *ctx, uint32_t addr, void *buf, uint32_t len)
{
    (void)ctx;
    uint8_t *b = buf;
    FLASH_ADDR = addr;
    for (uint32_t i = 0; i < len; i++)
        b[i] = (uint8_t)FLASH_DATA;
    return (FLASH_CTRL & 2u) ? -1 : 0;
}

static int hal_flash_program(void *ctx, uint32_t addr, const void *buf, uint32_t len)
{
    (void)ctx;
    const uint8_t *b = buf;
    FLASH_ADDR = addr;
    for (uint32_t i = 0; i < len; i++)
        FLASH_DATA = b[i];
    return (FLASH_CTRL & 2u) ? -1 : 0;
}

static int hal_flash_erase(void *ctx, uint32_t sector)
{
    (void)ctx;
    FLASH_ADDR = sector * FLASH_SECTOR;
    FLASH_CTRL = 0x20u;
    return (FLASH_CTRL & 2u) ? -1 : 0;
}

static uint64_t hal_mono_ms(void *ctx)
{
    (void)ctx;
    return (uint64_t)TICK;
}

static int64_t hal_rtc_get_ms(void *ctx)
{
    (void)ctx;
    return (int64_t)((uint64_t)RTC_HI << 32 | RTC_LO);
}

static int hal_rtc_set_ms(void *ctx, int64_t ms)
{
    (void)ctx;
    RTC_HI = (uint32_t)((uint64_t)ms >> 32);
    RTC_LO = (uint32_t)ms;
    return 0;
}

static int hal_usb_send(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++)
        USB_FIFO = data[i];
    return (USB_STAT & 0x80u) ? -1 : 0;
}

static int hal_cartridge_read(void *ctx, pen_cartridge *out)
{
    (void)ctx;
    out->serial = (uint64_t)SENSOR << 32 | SENSOR;
    out->uses = SENSOR;
    return (SENSOR & 1u) ? -1 : 0;
}

static int hal_cartridge_write_uses(void *ctx, uint32_t uses)
{
    (void)ctx;
    SENSOR = uses;
    return 0;
}

static int hal_sensors_read(void *ctx, pen_sensors *out)
{
    (void)ctx;
    out->depth_um = SENSOR;
    out->speed_sps = SENSOR;
    out->strokes = (uint64_t)SENSOR << 32 | SENSOR;
    return 0;
}

static const pen_hal hal = {
    .ctx = NULL,
    .flash_sector_size = FLASH_SECTOR,
    .flash_sector_count = FLASH_SECTORS,
    .flash_read = hal_flash_read,
    .flash_program = hal_flash_program,
    .flash_erase = hal_flash_erase,
    .mono_ms = hal_mono_ms,
    .rtc_get_ms = hal_rtc_get_ms,
    .rtc_set_ms = hal_rtc_set_ms,
    .usb_send = hal_usb_send,
    .cartridge_read = hal_cartridge_read,
    .cartridge_write_uses = hal_cartridge_write_uses,
    .sensors_read = hal_sensors_read,
    .record_logged = NULL, /* the simulator's hook; firmware leaves it NULL */
};

/* EP0: what the USB stack's SETUP handler does for control IN requests. */
static void usb_control(void)
{
    uint8_t setup[8], reply[256];
    for (int i = 0; i < 8; i++)
        setup[i] = (uint8_t)USB_FIFO;
    long n =
        pen_usb_control_in(setup, the_pen.serial, (USB_STAT & 0x100u) != 0, reply, sizeof reply);
    if (n < 0)
        USB_STAT = 0x200u; /* STALL */
    for (long i = 0; i < n; i++)
        USB_FIFO = reply[i];
}

int main(void)
{
    pen_opts opts;
    pen_opts_default(&opts);
    opts.serial = "PL0000001";
    if (pen_init(&the_pen, &hal, &opts) != PEN_OK)
        for (;;) {
        }
    pen_power_on(&the_pen);
    for (;;) {
        uint32_t stat = USB_STAT;
        if (stat & 0x1000u)
            pen_usb_reset(&the_pen);
        if (stat & 0x2000u)
            usb_control();
        uint8_t pkt[64];
        size_t len = stat & 63u;
        for (size_t i = 0; i < len; i++)
            pkt[i] = (uint8_t)USB_FIFO;
        if (len)
            pen_usb_rx(&the_pen, pkt, len);
        while (pen_poll(&the_pen)) {
        }
        /* Usage events, as the board's buttons and sensors raise them. */
        switch (SENSOR & 15u) {
        case 1: pen_cartridge_inserted(&the_pen); break;
        case 2: pen_cartridge_removed(&the_pen); break;
        case 3: pen_treatment_start(&the_pen); break;
        case 4: pen_treatment_end(&the_pen); break;
        case 5: pen_depth_changed(&the_pen); break;
        case 6: pen_speed_changed(&the_pen); break;
        case 7: pen_fault(&the_pen, SENSOR); break;
        case 8: pen_power_off(&the_pen); break;
        default: break;
        }
    }
}

#else
/* ---- no core yet ----------------------------------------------------------------
 * firmware-stub/core/ does not declare pen_init/pen_usb_rx/pen_poll yet, so
 * this loop stands in for it and references the protocol pieces the pen
 * uses: frame decoding, envelope unpacking into a fixed arena, packing a
 * reply into a frame, and chunk encoding. Its buffers are placeholders for
 * the core's own. Once pen.h exists, CMake sets PL_M4_USE_CORE and the
 * branch above drives the core instead.
 */
#include "pl/chunk.h"
#include "pl/envelope.h"
#include "pl/frame.h"

#define RX_PAYLOAD 1024u /* PL_FRAME_MIN_PAYLOAD: every host request fits */
#define TX_CAP 4096u     /* one LogChunk frame */
#define PB_ARENA 2048u   /* protobuf-c unpack arena for one request */

static uint8_t rx_buf[PL_FRAME_HEADER_SIZE + RX_PAYLOAD];
static uint8_t tx_buf[TX_CAP];
static uint8_t chunk_buf[TX_CAP - 64u];
static uint8_t pb_arena_buf[PB_ARENA];
static uint8_t z_arena[PL_CHUNK_ENC_ARENA];

static pl_frame_decoder dec;
static pl_arena arena;
static pl_chunk_enc enc;

/* Records come from flash, one at a time. */
static int flash_record(void *ctx, uint32_t i, pl_record *out)
{
    (void)ctx;
    FLASH_ADDR = i;
    out->seq = FLASH_DATA;
    out->time_ms = (int64_t)FLASH_DATA << 32 | FLASH_DATA;
    out->kind = FLASH_DATA;
    out->fields = pl_record_kind_fields(out->kind);
    out->depth_um = FLASH_DATA;
    out->speed_sps = FLASH_DATA;
    out->duration_ms = FLASH_DATA;
    out->cartridge_serial = FLASH_DATA;
    out->cartridge_uses = FLASH_DATA;
    out->lifetime_cartridges = FLASH_DATA;
    out->fault_code = FLASH_DATA;
    out->strokes = FLASH_DATA;
    out->config_revision = FLASH_DATA;
    out->reserved_ = 0;
    out->clock_delta_ms = (int32_t)FLASH_DATA;
    out->dropped = FLASH_DATA;
    return 0;
}

static void usb_send(const uint8_t *p, long n)
{
    for (long i = 0; i < n; i++)
        USB_FIFO = p[i];
}

static void handle(const pl_frame *f)
{
    pl_arena_reset(&arena);
    pl_envelope *req = pl_envelope_unpack(&arena.alloc, f->payload, f->len);
    pl_envelope rep = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__LogChunk lc = PENLINK__V1__LOG_CHUNK__INIT;
    Penlink__V1__Error err = PENLINK__V1__ERROR__INIT;

    if (req && req->body_case == PENLINK__V1__ENVELOPE__BODY_PULL_LOG) {
        pl_chunk_info info;
        if (pl_chunk_encode(&enc, flash_record, NULL, PL_CHUNK_BATCH, chunk_buf, sizeof chunk_buf,
                            &info) == PL_OK) {
            lc.has_first_seq = lc.has_record_count = lc.has_raw_size = lc.has_data = 1;
            lc.first_seq = info.first_seq;
            lc.record_count = info.record_count;
            lc.raw_size = info.raw_size;
            lc.data.data = chunk_buf;
            lc.data.len = info.data_size;
            rep.body_case = PENLINK__V1__ENVELOPE__BODY_LOG_CHUNK;
            rep.log_chunk = &lc;
        }
    }
    if (rep.body_case == PENLINK__V1__ENVELOPE__BODY__NOT_SET) {
        err.has_code = 1;
        err.code = PENLINK__V1__ERROR_CODE__ERROR_MALFORMED_MESSAGE;
        rep.body_case = PENLINK__V1__ENVELOPE__BODY_ERROR;
        rep.error = &err;
    }
    if (req) {
        rep.has_request_id = 1;
        rep.request_id = req->request_id;
    }
    long n = pl_envelope_frame(&rep, tx_buf, sizeof tx_buf);
    if (n > 0)
        usb_send(tx_buf, n);
}

int main(void)
{
    pl_frame_decoder_init(&dec, rx_buf, sizeof rx_buf, RX_PAYLOAD);
    pl_arena_init(&arena, pb_arena_buf, sizeof pb_arena_buf);
    if (pl_chunk_enc_init(&enc, z_arena, sizeof z_arena) != PL_OK)
        for (;;) {
        }
    for (;;) {
        uint8_t pkt[64];
        size_t len = USB_STAT & 63u, off = 0;
        for (size_t i = 0; i < len; i++)
            pkt[i] = (uint8_t)USB_FIFO;
        while (off < len) {
            size_t used = 0;
            pl_frame f;
            pl_status st = pl_frame_decoder_feed(&dec, pkt + off, len - off, &used, &f);
            off += used;
            if (st == PL_OK)
                handle(&f);
            else if (st != PL_NEED_MORE)
                USB_STAT = (uint32_t)-st; /* the real core answers with an Error frame */
        }
        (void)TICK;
        (void)RTC_LO;
        (void)RTC_HI;
        (void)SENSOR;
        (void)FLASH_CTRL;
    }
}
#endif
