/**
 * @file pl/capture.h
 * Packet captures of penlink sessions: pcapng (and classic pcap) as
 * `penlink --trace` writes them and as Wireshark, tcpdump (usbmon) and
 * USBPcap record them, shared by the host (`penlink decode`, the trace
 * writer) and the simulator (`penlink-sim --replay`).
 *
 * Three layers, each usable alone:
 * - block writers: the pcapng blocks a trace is made of (section header,
 *   interface description, enhanced packet), and the pseudo-headers of the
 *   two link types a trace uses (docs/protocol.md section 11);
 * - an incremental reader that takes a capture file in any split and hands
 *   out one packet at a time. Input is hostile: every length is checked
 *   against the block it sits in and against a bound given at init before
 *   any memory is reserved for it;
 * - the wire view of a packet: which way its bytes went (host to pen, pen to
 *   host), on which conversation, and the bytes themselves, for the link
 *   types that carry penlink frames (the penlink stream link type, Linux
 *   usbmon with and without the mmapped header, USBPcap).
 */
#ifndef PL_CAPTURE_H
#define PL_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#include "pl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Link types (tcpdump.org LINKTYPE_ values). */
#define PL_LINKTYPE_PENLINK 147u     /**< LINKTYPE_USER0: penlink over a byte stream */
#define PL_LINKTYPE_USB_LINUX 189u   /**< usbmon, 48-byte header */
#define PL_LINKTYPE_USB_USBPCAP 249u /**< USBPcap (Windows) */
#define PL_LINKTYPE_USB_MMAPPED 220u /**< usbmon, 64-byte header (what penlink writes) */

/**
 * The penlink stream pseudo-header, before the bytes of every packet of
 * link type PL_LINKTYPE_PENLINK: 'p', version 1, direction, 0.
 */
#define PL_STREAM_PHDR_SIZE 4u
#define PL_STREAM_PHDR_MAGIC 0x70u
#define PL_STREAM_PHDR_VERSION 1u

/** The Linux usbmon mmapped header (LINKTYPE_USB_LINUX_MMAPPED). */
#define PL_USBMON_HDR_SIZE 64u
#define PL_USBMON_HDR_SIZE_LEGACY 48u

/** Which way bytes went. */
typedef enum pl_dir {
    PL_DIR_TO_PEN = 0,  /**< host to pen: a request (bulk OUT) */
    PL_DIR_TO_HOST = 1, /**< pen to host: a reply (bulk IN) */
} pl_dir;

/* ---- writing ---------------------------------------------------------- */

/** Bytes of a section header block as pl_capture_shb() writes it. */
#define PL_CAPTURE_SHB_SIZE 28u
/** Largest interface description block pl_capture_idb() writes. */
#define PL_CAPTURE_IDB_MAX 256u
/** Bytes an enhanced packet block adds to its data (and padding): header, flags, end. */
#define PL_CAPTURE_EPB_OVERHEAD 44u

/** A section header block (host byte order, no options). */
size_t pl_capture_shb(uint8_t out[PL_CAPTURE_SHB_SIZE]);

/**
 * An interface description block: @p linktype, snap length 0 (no limit),
 * microsecond timestamps, and @p name / @p description as if_name /
 * if_description options (each cut to 100 bytes; NULL: none).
 * @return bytes written (at most PL_CAPTURE_IDB_MAX).
 */
size_t pl_capture_idb(uint8_t out[PL_CAPTURE_IDB_MAX], uint16_t linktype, const char *name,
                      const char *description);

/**
 * The head of an enhanced packet block for @p len bytes of data: block
 * header and packet header (28 bytes). The caller writes the data, then
 * pl_capture_epb_tail(). @p ts_us: microseconds since the epoch.
 * @return 28.
 */
size_t pl_capture_epb_head(uint8_t out[28], uint32_t interface, int64_t ts_us, uint32_t len);

/**
 * The tail of that block: padding of the data to 4 bytes, the epb_flags
 * option with the direction (inbound for PL_DIR_TO_HOST, outbound for
 * PL_DIR_TO_PEN), the end of options and the trailing length.
 * @return bytes written (at most 16 + 3).
 */
size_t pl_capture_epb_tail(uint8_t out[19], uint32_t len, pl_dir dir);

/** The penlink stream pseudo-header for bytes going @p dir. */
void pl_capture_stream_phdr(uint8_t out[PL_STREAM_PHDR_SIZE], pl_dir dir);

/** One bulk transfer as usbmon records it. */
typedef struct pl_usb_xfer {
    uint64_t urb_id;  /**< any value unique among the transfers in flight */
    int64_t ts_us;    /**< time, microseconds since the epoch */
    uint16_t bus;     /**< bus number */
    uint8_t device;   /**< device address */
    uint8_t endpoint; /**< endpoint address, 0x80 set for IN */
    uint32_t len;     /**< bytes transferred (the data that follows) */
    int32_t status;   /**< 0, or a negative errno as usbmon reports it */
    int complete;     /**< 1: completion ('C'), 0: submission ('S') */
} pl_usb_xfer;

/** The 64-byte usbmon header of a bulk transfer (host byte order). */
void pl_capture_usbmon_hdr(uint8_t out[PL_USBMON_HDR_SIZE], const pl_usb_xfer *x);

/* ---- reading ---------------------------------------------------------- */

/** Interfaces per section a reader keeps; packets on others are refused. */
#define PL_CAPTURE_MAX_IF 64u
/** The default bound on one block (a packet and its headers), bytes. */
#define PL_CAPTURE_DEFAULT_MAX_BLOCK (4u * 1024u * 1024u)

/** One packet of a capture. Pointers are valid until the next feed. */
typedef struct pl_capture_packet {
    uint64_t number;    /**< 1-based, in file order (as Wireshark numbers them) */
    uint64_t offset;    /**< file offset of the block (record) that holds it */
    uint32_t interface; /**< interface id within its section (0 in a pcap file) */
    uint32_t linktype;
    int64_t ts_us;  /**< microseconds since the epoch */
    uint32_t flags; /**< pcapng epb_flags (bits 0-1: 1 inbound, 2 outbound), or 0 */
    int swapped;    /**< the file's byte order is not this machine's */
    const uint8_t *data;
    uint32_t len;      /**< bytes captured */
    uint32_t orig_len; /**< bytes on the wire (>= len when the capture cut them) */
} pl_capture_packet;

typedef struct pl_capture_if {
    uint16_t linktype;
    uint8_t tsresol; /**< pcapng if_tsresol (6: microseconds) */
    int64_t tsoffset;
} pl_capture_if;

/** Incremental reader. Treat the members as private. */
typedef struct pl_capture {
    uint8_t *buf;
    size_t cap, len; /**< buf holds len bytes of the current block */
    size_t max_block;
    size_t drop; /**< a delivered block: drop it on the next call */
    int format;  /**< 0 not known yet, 1 pcapng, 2 pcap */
    int swapped;
    int nanosecond; /**< pcap: nanosecond timestamps */
    uint32_t pcap_linktype;
    uint32_t n_if;
    pl_capture_if ifs[PL_CAPTURE_MAX_IF];
    uint64_t offset; /**< file offset of buf[0] */
    uint64_t packets;
    const char *error; /**< what the last error was about */
    uint64_t err_offset;
} pl_capture;

/**
 * Prepares @p c. Nothing is allocated until bytes come. @p max_block bounds
 * the memory one block may take (0: PL_CAPTURE_DEFAULT_MAX_BLOCK).
 */
void pl_capture_init(pl_capture *c, size_t max_block);
/** Frees what @p c holds. */
void pl_capture_fini(pl_capture *c);

/** 1 when @p p (at least 4 bytes) starts a pcapng or pcap file. */
int pl_capture_sniff(const uint8_t *p, size_t len);

/**
 * Feeds bytes; *@p used says how many were taken. Call again with the rest.
 * @return PL_OK with *@p out filled (valid until the next call);
 *         PL_NEED_MORE when all input was taken without a complete packet;
 *         PL_ERR_CAPTURE (malformed: pl_capture_error() says what and where)
 *         or PL_ERR_CAPTURE_TOO_LARGE (a block above max_block, refused
 *         before anything was reserved for it); after an error the reader
 *         stays failed.
 */
pl_status pl_capture_feed(pl_capture *c, const uint8_t *data, size_t len, size_t *used,
                          pl_capture_packet *out);

/** Bytes held of a block not yet complete (a file cut short leaves them). */
size_t pl_capture_pending(const pl_capture *c);

/** What the last error concerned, and the file offset of its block. */
const char *pl_capture_error(const pl_capture *c, uint64_t *offset);

/* ---- the wire view ----------------------------------------------------- */

/** Bytes of one direction of one conversation, from one packet. */
typedef struct pl_wire {
    pl_dir dir;
    uint32_t stream; /**< the conversation: USB bus << 16 | address << 8 | endpoint; 0 for a
                          penlink stream packet */
    uint16_t bus;    /**< USB: bus number and device address, else 0 */
    uint8_t device;
    uint8_t endpoint;
    const uint8_t *data;
    uint32_t len;
} pl_wire;

/**
 * The penlink-relevant bytes of @p p: the data of a penlink stream packet,
 * of a bulk OUT submission or a bulk IN completion (usbmon, USBPcap).
 * @return 1 with *@p out filled; 0 when the packet carries no such bytes
 *         (another link type, a control transfer, an IN submission, no data);
 *         PL_ERR_CAPTURE when its pseudo-header is malformed.
 */
int pl_capture_wire(const pl_capture_packet *p, pl_wire *out);

#ifdef __cplusplus
}
#endif
#endif
