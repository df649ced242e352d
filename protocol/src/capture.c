/*
 * Captures: pcapng / pcap blocks written and read, and the wire view of a
 * packet (pl/capture.h). The reader copies one block at a time into a
 * buffer that grows only to a block length already checked against the
 * bound given at init, so hostile lengths cost nothing; every field inside a
 * block is checked against the block before it is read.
 */
#include <stdlib.h>
#include <string.h>

#include "pl/capture.h"

#define SHB_TYPE 0x0A0D0D0Au
#define IDB_TYPE 1u
#define PB_TYPE 2u /* obsolete packet block */
#define SPB_TYPE 3u
#define EPB_TYPE 6u
#define BOM 0x1A2B3C4Du
#define OPT_END 0u
#define OPT_IF_NAME 2u
#define OPT_IF_DESCRIPTION 3u
#define OPT_IF_TSRESOL 9u
#define OPT_IF_TSOFFSET 14u
#define OPT_EPB_FLAGS 2u
#define EPB_INBOUND 1u
#define EPB_OUTBOUND 2u
#define BLOCK_MIN 12u
#define SHB_MIN 28u
#define PCAP_GLOBAL 24u
#define PCAP_RECORD 16u
#define PCAP_MAGIC_US 0xA1B2C3D4u
#define PCAP_MAGIC_NS 0xA1B23C4Du
#define USBMON_BULK 3u
#define USBPCAP_HDR_MIN 27u
#define USBPCAP_BULK 3u
#define USBMON_EREMOTEIO (-121)
#define FORMAT_PCAPNG 1
#define FORMAT_PCAP 2
#define OPTION_TEXT_MAX 100u

/* ---- bytes ---------------------------------------------------------------- */

static uint16_t rd16(const uint8_t *p, int swap)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return swap ? (uint16_t)(v >> 8 | v << 8) : v;
}

static uint32_t rd32(const uint8_t *p, int swap)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swap ? __builtin_bswap32(v) : v;
}

static uint64_t rd64(const uint8_t *p, int swap)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return swap ? __builtin_bswap64(v) : v;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void wr16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

static void wr32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void wr64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static size_t pad4(size_t n)
{
    return (n + 3u) & ~(size_t)3u;
}

/* ---- writing -------------------------------------------------------------- */

size_t pl_capture_shb(uint8_t out[PL_CAPTURE_SHB_SIZE])
{
    wr32(out, SHB_TYPE);
    wr32(out + 4, PL_CAPTURE_SHB_SIZE);
    wr32(out + 8, BOM);
    wr16(out + 12, 1);
    wr16(out + 14, 0);
    wr64(out + 16, UINT64_MAX); /* section length not given: it grows */
    wr32(out + 24, PL_CAPTURE_SHB_SIZE);
    return PL_CAPTURE_SHB_SIZE;
}

static size_t put_option(uint8_t *p, uint16_t code, const void *v, size_t len)
{
    wr16(p, code);
    wr16(p + 2, (uint16_t)len);
    memcpy(p + 4, v, len);
    memset(p + 4 + len, 0, pad4(len) - len);
    return 4 + pad4(len);
}

static size_t text_len(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n > OPTION_TEXT_MAX ? OPTION_TEXT_MAX : n;
}

size_t pl_capture_idb(uint8_t out[PL_CAPTURE_IDB_MAX], uint16_t linktype, const char *name,
                      const char *description)
{
    size_t n = 16;
    uint8_t resol = 6; /* microseconds */
    wr32(out, IDB_TYPE);
    wr16(out + 8, linktype);
    wr16(out + 10, 0);
    wr32(out + 12, 0); /* no snap length */
    if (text_len(name))
        n += put_option(out + n, OPT_IF_NAME, name, text_len(name));
    if (text_len(description))
        n += put_option(out + n, OPT_IF_DESCRIPTION, description, text_len(description));
    n += put_option(out + n, OPT_IF_TSRESOL, &resol, 1);
    wr32(out + n, OPT_END); /* code 0, length 0 */
    n += 4;
    wr32(out + 4, (uint32_t)(n + 4));
    wr32(out + n, (uint32_t)(n + 4));
    return n + 4;
}

size_t pl_capture_epb_head(uint8_t out[28], uint32_t interface, int64_t ts_us, uint32_t len)
{
    uint64_t ts = (uint64_t)ts_us;
    wr32(out, EPB_TYPE);
    wr32(out + 4, (uint32_t)(PL_CAPTURE_EPB_OVERHEAD + pad4(len)));
    wr32(out + 8, interface);
    wr32(out + 12, (uint32_t)(ts >> 32));
    wr32(out + 16, (uint32_t)ts);
    wr32(out + 20, len);
    wr32(out + 24, len);
    return 28;
}

size_t pl_capture_epb_tail(uint8_t out[19], uint32_t len, pl_dir dir)
{
    size_t n = pad4(len) - len;
    uint32_t flags = dir == PL_DIR_TO_HOST ? EPB_INBOUND : EPB_OUTBOUND;
    memset(out, 0, n);
    n += put_option(out + n, OPT_EPB_FLAGS, &flags, 4);
    wr32(out + n, OPT_END);
    n += 4;
    wr32(out + n, (uint32_t)(PL_CAPTURE_EPB_OVERHEAD + pad4(len)));
    return n + 4;
}

void pl_capture_stream_phdr(uint8_t out[PL_STREAM_PHDR_SIZE], pl_dir dir)
{
    out[0] = PL_STREAM_PHDR_MAGIC;
    out[1] = PL_STREAM_PHDR_VERSION;
    out[2] = (uint8_t)dir;
    out[3] = 0;
}

void pl_capture_usbmon_hdr(uint8_t out[PL_USBMON_HDR_SIZE], const pl_usb_xfer *x)
{
    int64_t sec = x->ts_us / 1000000, usec = x->ts_us % 1000000;
    memset(out, 0, PL_USBMON_HDR_SIZE);
    wr64(out, x->urb_id);
    out[8] = x->complete ? 'C' : 'S';
    out[9] = USBMON_BULK;
    out[10] = x->endpoint;
    out[11] = x->device;
    wr16(out + 12, x->bus);
    out[14] = '-'; /* no setup packet */
    out[15] = x->len ? 0 : (x->endpoint & 0x80 ? '<' : '>');
    wr64(out + 16, (uint64_t)sec);
    wr32(out + 24, (uint32_t)usec);
    wr32(out + 28, (uint32_t)x->status);
    wr32(out + 32, x->len);
    wr32(out + 36, x->len);
}

/* ---- reading -------------------------------------------------------------- */

void pl_capture_init(pl_capture *c, size_t max_block)
{
    memset(c, 0, sizeof *c);
    c->max_block = max_block ? max_block : PL_CAPTURE_DEFAULT_MAX_BLOCK;
    if (c->max_block < SHB_MIN)
        c->max_block = SHB_MIN;
}

void pl_capture_fini(pl_capture *c)
{
    free(c->buf);
    c->buf = NULL;
    c->cap = c->len = 0;
}

int pl_capture_sniff(const uint8_t *p, size_t len)
{
    if (len < 4)
        return 0;
    uint32_t m = le32(p);
    return m == SHB_TYPE || m == PCAP_MAGIC_US || m == PCAP_MAGIC_NS ||
           m == __builtin_bswap32(PCAP_MAGIC_US) || m == __builtin_bswap32(PCAP_MAGIC_NS);
}

size_t pl_capture_pending(const pl_capture *c)
{
    return c->len - c->drop;
}

const char *pl_capture_error(const pl_capture *c, uint64_t *offset)
{
    if (offset)
        *offset = c->err_offset;
    return c->error ? c->error : "";
}

static pl_status bad(pl_capture *c, pl_status st, const char *what)
{
    c->error = what;
    c->err_offset = c->offset;
    return st;
}

/* Room for @p n bytes, where n was checked against max_block. */
static int reserve(pl_capture *c, size_t n)
{
    if (n <= c->cap)
        return 0;
    size_t cap = c->cap ? c->cap : 4096;
    while (cap < n)
        cap *= 2;
    if (cap > c->max_block)
        cap = c->max_block;
    if (cap < n)
        return -1;
    uint8_t *b = realloc(c->buf, cap);
    if (!b)
        return -1;
    c->buf = b;
    c->cap = cap;
    return 0;
}

/* Copies input until the block holds @p want bytes; 1 when it does. */
static int fill(pl_capture *c, const uint8_t **data, size_t *len, size_t *used, size_t want)
{
    if (c->len >= want)
        return 1;
    size_t n = want - c->len;
    if (n > *len)
        n = *len;
    memcpy(c->buf + c->len, *data, n);
    c->len += n;
    *data += n;
    *len -= n;
    *used += n;
    return c->len == want;
}

static int64_t to_us(uint64_t ts, uint8_t resol, int64_t offset_s, int *ok)
{
    uint64_t units, sec, frac_us;
    unsigned r = resol & 0x7Fu;
    *ok = 1;
    if (resol & 0x80u) {
        if (r > 63) {
            *ok = 0;
            return 0;
        }
        units = UINT64_C(1) << r;
        sec = ts >> r;
        frac_us = (uint64_t)((double)(ts & (units - 1)) * 1e6 / (double)units);
    } else {
        if (r > 19) {
            *ok = 0;
            return 0;
        }
        units = 1;
        for (unsigned i = 0; i < r; i++)
            units *= 10;
        sec = ts / units;
        uint64_t frac = ts % units;
        frac_us = units >= 1000000 ? frac / (units / 1000000) : frac * (1000000 / units);
    }
    return (int64_t)((sec + (uint64_t)offset_s) * 1000000u + frac_us);
}

/* Options of an interface description: if_tsresol and if_tsoffset. */
static pl_status parse_idb(pl_capture *c, const uint8_t *b, size_t total)
{
    int sw = c->swapped;
    if (total < 20)
        return bad(c, PL_ERR_CAPTURE, "interface description block too short");
    if (c->n_if == PL_CAPTURE_MAX_IF)
        return bad(c, PL_ERR_CAPTURE, "too many interfaces in one section");
    pl_capture_if *ifc = &c->ifs[c->n_if];
    ifc->linktype = rd16(b + 8, sw);
    ifc->tsresol = 6;
    ifc->tsoffset = 0;
    size_t p = 16, end = total - 4;
    while (p + 4 <= end) {
        uint16_t code = rd16(b + p, sw), olen = rd16(b + p + 2, sw);
        if (code == OPT_END)
            break;
        if (pad4(olen) > end - p - 4)
            return bad(c, PL_ERR_CAPTURE, "interface option runs past its block");
        if (code == OPT_IF_TSRESOL && olen >= 1)
            ifc->tsresol = b[p + 4];
        else if (code == OPT_IF_TSOFFSET && olen >= 8)
            ifc->tsoffset = (int64_t)rd64(b + p + 4, sw);
        p += 4 + pad4(olen);
    }
    int ok;
    (void)to_us(0, ifc->tsresol, 0, &ok);
    if (!ok)
        return bad(c, PL_ERR_CAPTURE, "interface timestamp resolution out of range");
    c->n_if++;
    return PL_OK;
}

/* An enhanced, simple or obsolete packet block: the packet, checked. */
static pl_status parse_packet(pl_capture *c, uint32_t type, const uint8_t *b, size_t total,
                              pl_capture_packet *out)
{
    int sw = c->swapped, ok;
    uint32_t ifc = 0, caplen, origlen, flags = 0;
    uint64_t ts = 0;
    size_t data_at;
    if (type == SPB_TYPE) {
        if (total < 16)
            return bad(c, PL_ERR_CAPTURE, "simple packet block too short");
        origlen = rd32(b + 8, sw);
        caplen = (uint32_t)(total - 16) < origlen ? (uint32_t)(total - 16) : origlen;
        data_at = 12;
    } else {
        if (total < 32)
            return bad(c, PL_ERR_CAPTURE, "packet block too short");
        ifc = type == EPB_TYPE ? rd32(b + 8, sw) : rd16(b + 8, sw);
        ts = (uint64_t)rd32(b + 12, sw) << 32 | rd32(b + 16, sw);
        caplen = rd32(b + 20, sw);
        origlen = rd32(b + 24, sw);
        data_at = 28;
        if (caplen > total - 32 || pad4(caplen) > total - 32)
            return bad(c, PL_ERR_CAPTURE, "packet data runs past its block");
        size_t p = data_at + pad4(caplen), end = total - 4;
        while (type == EPB_TYPE && p + 4 <= end) {
            uint16_t code = rd16(b + p, sw), olen = rd16(b + p + 2, sw);
            if (code == OPT_END)
                break;
            if (pad4(olen) > end - p - 4)
                return bad(c, PL_ERR_CAPTURE, "packet option runs past its block");
            if (code == OPT_EPB_FLAGS && olen >= 4)
                flags = rd32(b + p + 4, sw);
            p += 4 + pad4(olen);
        }
    }
    if (ifc >= c->n_if)
        return bad(c, PL_ERR_CAPTURE, "packet on an interface that was not described");
    memset(out, 0, sizeof *out);
    out->number = ++c->packets;
    out->offset = c->offset;
    out->interface = ifc;
    out->linktype = c->ifs[ifc].linktype;
    out->ts_us = to_us(ts, c->ifs[ifc].tsresol, c->ifs[ifc].tsoffset, &ok);
    out->flags = flags;
    out->swapped = sw;
    out->data = b + data_at;
    out->len = caplen;
    out->orig_len = origlen;
    return PL_OK;
}

static pl_status pcapng_feed(pl_capture *c, const uint8_t *data, size_t len, size_t *used,
                             pl_capture_packet *out)
{
    for (;;) {
        /* type and length, and for a section header its byte-order mark */
        if (!fill(c, &data, &len, used, 8))
            return PL_NEED_MORE;
        uint32_t type = le32(c->buf);
        int shb = type == SHB_TYPE;
        if (shb) {
            if (!fill(c, &data, &len, used, 12))
                return PL_NEED_MORE;
            uint32_t bom = le32(c->buf + 8);
            if (bom == BOM)
                c->swapped = 0;
            else if (bom == __builtin_bswap32(BOM))
                c->swapped = 1;
            else
                return bad(c, PL_ERR_CAPTURE, "section header with an unknown byte-order mark");
        } else if (c->packets == 0 && c->offset == 0) {
            return bad(c, PL_ERR_CAPTURE, "pcapng file does not start with a section header");
        }
        type = rd32(c->buf, c->swapped);
        uint32_t total = rd32(c->buf + 4, c->swapped);
        if (total < (shb ? SHB_MIN : BLOCK_MIN) || total % 4 != 0)
            return bad(c, PL_ERR_CAPTURE, "block length is not a valid block size");
        if (total > c->max_block)
            return bad(c, PL_ERR_CAPTURE_TOO_LARGE, "block larger than the reader's limit");
        if (reserve(c, total) != 0)
            return bad(c, PL_ERR_NO_SPACE, "no memory for a block");
        if (!fill(c, &data, &len, used, total))
            return PL_NEED_MORE;
        const uint8_t *b = c->buf;
        if (rd32(b + total - 4, c->swapped) != total)
            return bad(c, PL_ERR_CAPTURE, "block's trailing length differs from its leading one");
        pl_status st = PL_OK;
        int delivered = 0;
        if (shb) {
            if (rd16(b + 12, c->swapped) != 1)
                return bad(c, PL_ERR_CAPTURE, "section of an unknown pcapng major version");
            c->n_if = 0;
        } else if (type == IDB_TYPE) {
            st = parse_idb(c, b, total);
        } else if (type == EPB_TYPE || type == SPB_TYPE || type == PB_TYPE) {
            st = parse_packet(c, type, b, total, out);
            delivered = st == PL_OK;
        }
        if (st != PL_OK)
            return st;
        if (delivered) {
            c->drop = total;
            return PL_OK;
        }
        c->offset += total;
        c->len = 0;
        if (len == 0)
            return PL_NEED_MORE;
    }
}

static pl_status pcap_feed(pl_capture *c, const uint8_t *data, size_t len, size_t *used,
                           pl_capture_packet *out)
{
    if (c->n_if == 0) {
        if (!fill(c, &data, &len, used, PCAP_GLOBAL))
            return PL_NEED_MORE;
        if (rd16(c->buf + 4, c->swapped) != 2)
            return bad(c, PL_ERR_CAPTURE, "pcap file of an unknown major version");
        c->ifs[0].linktype = (uint16_t)rd32(c->buf + 20, c->swapped);
        c->ifs[0].tsresol = c->nanosecond ? 9 : 6;
        c->n_if = 1;
        c->offset += PCAP_GLOBAL;
        c->len = 0;
    }
    if (!fill(c, &data, &len, used, PCAP_RECORD))
        return PL_NEED_MORE;
    uint32_t caplen = rd32(c->buf + 8, c->swapped);
    if (caplen > c->max_block - PCAP_RECORD)
        return bad(c, PL_ERR_CAPTURE_TOO_LARGE, "packet record larger than the reader's limit");
    if (reserve(c, PCAP_RECORD + (size_t)caplen) != 0)
        return bad(c, PL_ERR_NO_SPACE, "no memory for a packet record");
    if (!fill(c, &data, &len, used, PCAP_RECORD + (size_t)caplen))
        return PL_NEED_MORE;
    uint64_t sec = rd32(c->buf, c->swapped), sub = rd32(c->buf + 4, c->swapped);
    uint64_t units = c->nanosecond ? 1000000000u : 1000000u;
    if (sub >= units)
        return bad(c, PL_ERR_CAPTURE, "packet record's sub-second time out of range");
    memset(out, 0, sizeof *out);
    out->number = ++c->packets;
    out->offset = c->offset;
    out->linktype = c->ifs[0].linktype;
    out->ts_us = (int64_t)(sec * 1000000u + (c->nanosecond ? sub / 1000u : sub));
    out->swapped = c->swapped;
    out->data = c->buf + PCAP_RECORD;
    out->len = caplen;
    out->orig_len = rd32(c->buf + 12, c->swapped);
    c->drop = PCAP_RECORD + (size_t)caplen;
    return PL_OK;
}

pl_status pl_capture_feed(pl_capture *c, const uint8_t *data, size_t len, size_t *used,
                          pl_capture_packet *out)
{
    *used = 0;
    if (c->error)
        return PL_ERR_CAPTURE;
    if (c->drop) {
        c->offset += c->drop;
        c->len = 0;
        c->drop = 0;
    }
    if (c->format == 0) {
        if (reserve(c, SHB_MIN) != 0)
            return bad(c, PL_ERR_NO_SPACE, "no memory for a block");
        if (!fill(c, &data, &len, used, 4))
            return PL_NEED_MORE;
        uint32_t m = le32(c->buf);
        if (m == SHB_TYPE) {
            c->format = FORMAT_PCAPNG;
        } else if (m == PCAP_MAGIC_US || m == PCAP_MAGIC_NS) {
            c->format = FORMAT_PCAP;
            c->nanosecond = m == PCAP_MAGIC_NS;
        } else if (m == __builtin_bswap32(PCAP_MAGIC_US) || m == __builtin_bswap32(PCAP_MAGIC_NS)) {
            c->format = FORMAT_PCAP;
            c->swapped = 1;
            c->nanosecond = m == __builtin_bswap32(PCAP_MAGIC_NS);
        } else {
            return bad(c, PL_ERR_CAPTURE, "not a pcapng or pcap file");
        }
    }
    pl_status st = c->format == FORMAT_PCAPNG ? pcapng_feed(c, data, len, used, out)
                                              : pcap_feed(c, data, len, used, out);
    return st;
}

/* ---- the wire view --------------------------------------------------------- */

static int usbmon(const pl_capture_packet *p, size_t hdr, pl_wire *w)
{
    const uint8_t *d = p->data;
    int sw = p->swapped;
    if (p->len < hdr)
        return PL_ERR_CAPTURE;
    uint8_t type = d[8], xfer = d[9], ep = d[10];
    int32_t status = (int32_t)rd32(d + 28, sw);
    uint32_t cap = rd32(d + 36, sw);
    uint32_t avail = p->len - (uint32_t)hdr;
    if (xfer != USBMON_BULK)
        return 0;
    int in = (ep & 0x80) != 0;
    if (in ? type != 'C' || (status != 0 && status != USBMON_EREMOTEIO) : type != 'S')
        return 0;
    w->len = cap < avail ? cap : avail;
    if (w->len == 0)
        return 0;
    w->dir = in ? PL_DIR_TO_HOST : PL_DIR_TO_PEN;
    w->bus = rd16(d + 12, sw);
    w->device = d[11];
    w->endpoint = ep;
    w->data = d + hdr;
    return 1;
}

static int usbpcap(const pl_capture_packet *p, pl_wire *w)
{
    const uint8_t *d = p->data;
    if (p->len < USBPCAP_HDR_MIN)
        return PL_ERR_CAPTURE;
    uint16_t hlen = le16(d);
    if (hlen < USBPCAP_HDR_MIN || hlen > p->len)
        return PL_ERR_CAPTURE;
    uint32_t status = le32(d + 10);
    uint8_t info = d[16], ep = d[21], xfer = d[22];
    uint32_t dlen = le32(d + 23);
    if (xfer != USBPCAP_BULK)
        return 0;
    int in = (ep & 0x80) != 0, completion = info & 1;
    if (in ? !completion || status != 0 : completion)
        return 0;
    uint32_t avail = p->len - hlen;
    w->len = dlen < avail ? dlen : avail;
    if (w->len == 0)
        return 0;
    w->dir = in ? PL_DIR_TO_HOST : PL_DIR_TO_PEN;
    w->bus = le16(d + 17);
    w->device = (uint8_t)le16(d + 19);
    w->endpoint = ep;
    w->data = d + hlen;
    return 1;
}

int pl_capture_wire(const pl_capture_packet *p, pl_wire *w)
{
    int r;
    memset(w, 0, sizeof *w);
    switch (p->linktype) {
    case PL_LINKTYPE_PENLINK:
        if (p->len < PL_STREAM_PHDR_SIZE || p->data[0] != PL_STREAM_PHDR_MAGIC ||
            p->data[1] != PL_STREAM_PHDR_VERSION || p->data[2] > PL_DIR_TO_HOST)
            return PL_ERR_CAPTURE;
        w->dir = (pl_dir)p->data[2];
        w->stream = p->interface;
        w->data = p->data + PL_STREAM_PHDR_SIZE;
        w->len = p->len - PL_STREAM_PHDR_SIZE;
        return w->len > 0;
    case PL_LINKTYPE_USB_MMAPPED: r = usbmon(p, PL_USBMON_HDR_SIZE, w); break;
    case PL_LINKTYPE_USB_LINUX: r = usbmon(p, PL_USBMON_HDR_SIZE_LEGACY, w); break;
    case PL_LINKTYPE_USB_USBPCAP: r = usbpcap(p, w); break;
    default: return 0;
    }
    if (r == 1)
        w->stream = (uint32_t)w->bus << 16 | (uint32_t)w->device << 8 | w->endpoint;
    return r;
}
