/**
 * @file penlink.h
 * libpenlink: the host side of penlink, the USB toolchain of a microneedling
 * pen's usage log.
 *
 * This is the library's only public header. Every object is an opaque handle
 * created by a `_new` function and released by the matching `_free`. Every
 * function that can fail returns a #penlink_status: #PENLINK_OK (0) or a
 * negative code; penlink_strerror() turns a code into a sentence and
 * penlink_ctx_errmsg() gives the detail of the last failure on a context
 * (offset, field, the pen's own words). The library never prints and never
 * exits.
 *
 * Thread safety: a context and the objects made from it are used by one
 * thread at a time.
 */
#ifndef PENLINK_H
#define PENLINK_H

#include <stddef.h>
#include <stdint.h>

/** Marks the library's exported functions (visible when libpenlink itself is built). */
#if defined(PENLINK_BUILDING)
#define PENLINK_API __attribute__((visibility("default")))
#else
#define PENLINK_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** Status codes. Append-only: a value never changes meaning. */
typedef enum penlink_status {
    PENLINK_OK = 0,                   /**< success */
    PENLINK_ERR_INVALID_ARG = -1,     /**< a caller passed an impossible argument */
    PENLINK_ERR_NO_MEM = -2,          /**< out of memory */
    PENLINK_ERR_IO = -3,              /**< reading or writing a file failed (errno in the detail) */
    PENLINK_ERR_PROTOCOL = -4,        /**< bytes that do not follow the penlink protocol */
    PENLINK_ERR_INTEGRITY = -5,       /**< a checksum or a consistency check failed */
    PENLINK_ERR_CANCELLED = -6,       /**< stopped by a callback or penlink_ctx_cancel() */
    PENLINK_ERR_UNSUPPORTED = -7,     /**< input of a format or version this build does not know */
    PENLINK_ERR_NOT_FOUND = -8,       /**< no pen at that address (none plugged in, wrong serial) */
    PENLINK_ERR_ACCESS = -9,          /**< permission denied: install the udev rule */
    PENLINK_ERR_BUSY = -10,           /**< another program holds the pen */
    PENLINK_ERR_GONE = -11,           /**< the pen went away (unplugged, simulator stopped) */
    PENLINK_ERR_TIMEOUT = -12,        /**< the pen did not answer in time, after retries */
    PENLINK_ERR_VERSION = -13,        /**< the pen speaks another protocol major version */
    PENLINK_ERR_DEVICE = -14,         /**< the pen refused the request: penlink_dev_error() */
    PENLINK_ERR_CONFLICT = -15,       /**< the configuration changed meanwhile (compare-and-set) */
    PENLINK_ERR_AMBIGUOUS = -16,      /**< several pens match; name one by serial */
    PENLINK_ERR_INVALID_CONFIG = -17, /**< a value is outside the pen's limits */
    PENLINK_ERR_AUTH = -18,           /**< not authorised: unsigned, wrongly signed, replayed */
    PENLINK_ERR__SENTINEL = -19       /**< never returned; keeps the list append-only */
} penlink_status;

/** A sentence describing @p status ("bytes that do not follow ..."); never NULL. */
PENLINK_API const char *penlink_strerror(int status);

/**
 * The name of @p status as it is spelt in #penlink_status ("PENLINK_OK",
 * "PENLINK_ERR_IO", ...), for logs and machine-readable output: unlike
 * penlink_strerror()'s sentence it never changes once a status exists.
 * @return a static string, never NULL: "unknown" for a value that is no
 *         #penlink_status (positive, the sentinel, or beyond it).
 */
PENLINK_API const char *penlink_status_name(int status);

/** Library version as "MAJOR.MINOR.PATCH". */
PENLINK_API const char *penlink_version(void);

/* ---- sizes ------------------------------------------------------------ */

/** Bytes of an Ed25519 public key: a pen's device key, a config key. */
#define PENLINK_KEY_SIZE 32
/** Bytes of an Ed25519 secret key as penlink keeps it (seed, then public key). */
#define PENLINK_SECRET_KEY_SIZE 64
/** Bytes of an Ed25519 signature. */
#define PENLINK_SIGNATURE_SIZE 64
/** Bytes of a hash-chain link (docs/protocol.md 9.3). */
#define PENLINK_LINK_SIZE 32
/** Longest serial, model, hardware revision or firmware version a pen sends, bytes. */
#define PENLINK_SERIAL_MAX 32
/** Room for a serial (or model, revision, version) with its NUL. */
#define PENLINK_SERIAL_SIZE (PENLINK_SERIAL_MAX + 1)
/** Room for a public key as lower-case hex digits with a NUL (penlink_key_to_hex()). */
#define PENLINK_KEY_HEX_SIZE (2 * PENLINK_KEY_SIZE + 1)
/** Longest text configuration value (device_label, clinic_id), bytes. */
#define PENLINK_CONFIG_TEXT_MAX 64
/** Room for a text configuration value with its NUL. */
#define PENLINK_CONFIG_TEXT_SIZE (PENLINK_CONFIG_TEXT_MAX + 1)
/** Room for a pen's address with its NUL (penlink_found.uri). */
#define PENLINK_URI_SIZE 96
/** Room for a short name with its NUL: an OS user, a host, an author, a field, a place. */
#define PENLINK_NAME_SIZE 64
/** Room for a sentence with its NUL: a pen's words, a detail, a note, a reason. */
#define PENLINK_TEXT_SIZE 256
/** Room for a longer sentence with its NUL (penlink_finding.detail). */
#define PENLINK_LONG_TEXT_SIZE 320
/** Room for a push report's detail with its NUL (penlink_push_report.detail). */
#define PENLINK_DETAIL_SIZE 512
/** Room for a one-word label with its NUL: a kind, a result, a period. */
#define PENLINK_LABEL_SIZE 16
/** Room for where a configuration came from with its NUL ("read", "written"). */
#define PENLINK_SOURCE_SIZE 8
/** Room for a finding's id with its NUL ("KIND:PEN:SEQ"), or a list of versions. */
#define PENLINK_ID_SIZE 128
/** Room for an annotation's text with its NUL. */
#define PENLINK_NOTE_SIZE 1024

/** A library context: holds the last error's detail. */
typedef struct penlink_ctx penlink_ctx;

/**
 * Asks every long operation on @p ctx (a pull, a wait for a reply, a decode,
 * an archive's verify, audit or push: between pens and at each chunk) to stop
 * as soon as it can; it then returns #PENLINK_ERR_CANCELLED (an interrupted
 * verify stores no verdict). Safe to call from another thread or from a signal
 * handler (it only sets a flag); penlink_ctx_reset_cancel() clears it.
 */
PENLINK_API void penlink_ctx_cancel(penlink_ctx *ctx);
/** Clears a cancellation request so that @p ctx can be used again. */
PENLINK_API void penlink_ctx_reset_cancel(penlink_ctx *ctx);

/**
 * Reply timeout in ms and retries of idempotent requests for pens opened on
 * @p ctx from now on, Hello included (defaults 2000 ms and 2). A value out of
 * range (timeout_ms <= 0, retries < 0) restores the default.
 */
PENLINK_API void penlink_ctx_set_timeout(penlink_ctx *ctx, int timeout_ms, int retries);

/**
 * Creates a context in *@p out.
 * @return #PENLINK_OK; #PENLINK_ERR_NO_MEM; #PENLINK_ERR_INVALID_ARG (@p out NULL).
 */
PENLINK_API int penlink_ctx_new(penlink_ctx **out);
/** Frees a context (NULL is fine). */
PENLINK_API void penlink_ctx_free(penlink_ctx *ctx);
/**
 * Detail of the last failure on @p ctx ("offset 1234: frame payload CRC
 * mismatch"), or "" when there is none. Valid until the next call on @p ctx.
 */
PENLINK_API const char *penlink_ctx_errmsg(const penlink_ctx *ctx);

/** Record kinds (RecordKind in protocol/penlink.proto). */
enum penlink_record_kind {
    PENLINK_REC_POWER_ON = 1,
    PENLINK_REC_POWER_OFF = 2,
    PENLINK_REC_TREATMENT_START = 3,
    PENLINK_REC_TREATMENT_END = 4,
    PENLINK_REC_CARTRIDGE_INSERTED = 5,
    PENLINK_REC_CARTRIDGE_REMOVED = 6,
    PENLINK_REC_CARTRIDGE_REFUSED = 7,
    PENLINK_REC_DEPTH_CHANGED = 8,
    PENLINK_REC_SPEED_CHANGED = 9,
    PENLINK_REC_FAULT = 10,
    PENLINK_REC_CONFIG_CHANGED = 11,
    PENLINK_REC_CLOCK_SET = 12,
    PENLINK_REC_LOG_OVERFLOW = 13,
    PENLINK_REC_SECURITY_EVENT =
        14 /**< a refused SetConfig; fault_code holds the pen's ErrorCode */
};

/** Field bits of penlink_record.fields (RecordField in penlink.proto). */
enum penlink_record_field {
    PENLINK_F_DEPTH_UM = 1u << 0,
    PENLINK_F_SPEED_SPS = 1u << 1,
    PENLINK_F_DURATION_MS = 1u << 2,
    PENLINK_F_CARTRIDGE_SERIAL = 1u << 3,
    PENLINK_F_CARTRIDGE_USES = 1u << 4,
    PENLINK_F_LIFETIME_CARTRIDGES = 1u << 5,
    PENLINK_F_STROKES = 1u << 6,
    PENLINK_F_FAULT_CODE = 1u << 7,
    PENLINK_F_CONFIG_REVISION = 1u << 8,
    PENLINK_F_CLOCK_DELTA_MS = 1u << 9,
    PENLINK_F_DROPPED = 1u << 10
};

/** Number of field bits of this version. */
#define PENLINK_FIELD_COUNT 11

/** One usage record as logged by the pen. Fields not in @c fields are 0. */
typedef struct penlink_record {
    uint64_t seq;                 /**< sequence number: contiguous, never reused */
    int64_t time_ms;              /**< pen clock, ms since the Unix epoch (UTC) */
    uint32_t kind;                /**< #penlink_record_kind, or a newer kind */
    uint32_t fields;              /**< #penlink_record_field bits present */
    uint32_t depth_um;            /**< needle depth, micrometres */
    uint32_t speed_sps;           /**< needle strokes per second */
    uint32_t duration_ms;         /**< treatment duration */
    uint32_t cartridge_uses;      /**< uses of this cartridge, this one included */
    uint64_t cartridge_serial;    /**< serial read from the cartridge's chip */
    uint32_t lifetime_cartridges; /**< cartridges inserted over the pen's life */
    uint32_t fault_code;          /**< pen-specific fault number */
    uint64_t strokes;             /**< needle strokes during the treatment */
    uint32_t config_revision;     /**< configuration revision now in force */
    uint32_t reserved_;           /**< always 0 */
    int64_t clock_delta_ms;       /**< CLOCK_SET: new time minus old time */
    uint64_t dropped;             /**< LOG_OVERFLOW: records the full log had to drop */
} penlink_record;

/** "treatment_start", ..., or NULL for a kind this version does not know. */
PENLINK_API const char *penlink_record_kind_name(uint32_t kind);
/** Column name of one field bit ("depth_um"), or NULL. */
PENLINK_API const char *penlink_record_field_name(uint32_t field_bit);
/** Value of one field bit, unsigned (clock_delta_ms as two's complement). */
PENLINK_API uint64_t penlink_record_field_get(const penlink_record *rec, uint32_t field_bit);

/**
 * Called for every decoded record, in order. Return 0 to go on, non-zero
 * to stop (the decode then returns #PENLINK_ERR_CANCELLED).
 */
typedef int (*penlink_record_cb)(void *user, const penlink_record *rec);

/**
 * Called for every protocol message met while decoding a file of frames
 * (@p name is the Envelope body, e.g. "hello" or "log_chunk", or "none"; @p
 * offset the frame's offset in the input). May be NULL. For captures, and
 * for every field of each message, see penlink_decoder_set_message_cb().
 */
typedef int (*penlink_message_cb)(void *user, uint64_t offset, uint32_t request_id,
                                  const char *name);

/** Streaming decoder of files and captures. */
typedef struct penlink_decoder penlink_decoder;

/** What a decoder found the input to be. */
typedef enum penlink_input_format {
    PENLINK_INPUT_UNKNOWN = 0, /**< nothing decided yet */
    PENLINK_INPUT_FRAMES = 1,  /**< penlink frames (a capture, or `penlink pull` output) */
    PENLINK_INPUT_CHUNKS = 2,  /**< bare chunks: concatenated zlib streams of RecordBatch */
    PENLINK_INPUT_CAPTURE = 3  /**< a pcapng or pcap capture (penlink --trace, usbmon, USBPcap) */
} penlink_input_format;

/**
 * Creates a decoder. The input format is detected from its first bytes.
 * @p on_record is required; @p on_message may be NULL.
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (@p ctx, @p on_record or
 *         @p out NULL); #PENLINK_ERR_NO_MEM.
 */
PENLINK_API int penlink_decoder_new(penlink_ctx *ctx, penlink_record_cb on_record,
                                    penlink_message_cb on_message, void *user,
                                    penlink_decoder **out);
/** Frees a decoder (NULL is fine). */
PENLINK_API void penlink_decoder_free(penlink_decoder *dec);

/**
 * Feeds input bytes in any split, down to one byte a call (the format is
 * decided once two bytes have come; a call with 0 bytes does nothing).
 * Stops at the first damage: the return is then #PENLINK_ERR_PROTOCOL or
 * #PENLINK_ERR_INTEGRITY and penlink_ctx_errmsg() names the input offset and
 * the problem. #PENLINK_ERR_CANCELLED when the decoder's context was
 * cancelled (penlink_ctx_cancel()): it stops between packets of a capture,
 * or before the next call's bytes.
 * @return #PENLINK_OK; #PENLINK_ERR_PROTOCOL; #PENLINK_ERR_INTEGRITY;
 *         #PENLINK_ERR_CANCELLED (also: the record or a message callback
 *         returned non-zero); #PENLINK_ERR_UNSUPPORTED (the first bytes are no
 *         format this version reads); #PENLINK_ERR_INVALID_ARG (@p dec NULL, or
 *         @p data NULL with @p len above 0); #PENLINK_ERR_NO_MEM. After a
 *         failure (any of these but #PENLINK_ERR_INVALID_ARG), every later
 *         call, and penlink_decoder_finish(), returns the same status: a
 *         cancelled decoder does not resume.
 */
PENLINK_API int penlink_decoder_feed(penlink_decoder *dec, const void *data, size_t len);

/**
 * Ends the input: a truncated last frame or chunk is an error.
 * @return #PENLINK_OK; #PENLINK_ERR_PROTOCOL (a frame or capture cut short,
 *         or an input of 1 byte); #PENLINK_ERR_INTEGRITY; #PENLINK_ERR_CANCELLED;
 *         #PENLINK_ERR_NO_MEM; #PENLINK_ERR_INVALID_ARG (NULL); or the status
 *         of an earlier failed penlink_decoder_feed() or finish. A failure
 *         sticks: later calls return it again.
 */
PENLINK_API int penlink_decoder_finish(penlink_decoder *dec);

/**
 * After penlink_decoder_finish() succeeded on a capture: the @p i-th
 * (0-based) note on what the capture leaves unsaid, NULL past the last: a
 * frame cut short by the capture's end, a reply of LogChunks without its
 * LogEnd, no penlink frame at all. None of them is an error. The library's
 * text; valid as long as @p dec.
 */
PENLINK_API const char *penlink_decoder_note(const penlink_decoder *dec, size_t i);

/** The detected format. */
PENLINK_API penlink_input_format penlink_decoder_format(const penlink_decoder *dec);

/**
 * A decoder's totals so far (penlink_decoder_stats_get()). The caller sets
 * @c size (#PENLINK_DECODER_STATS_INIT does): fields may be added at the
 * end, and the library writes only those @c size covers.
 */
typedef struct penlink_decoder_stats {
    size_t size;         /**< sizeof(penlink_decoder_stats) as the caller was built */
    uint64_t records;    /**< records passed to on_record (each seq once), the one whose
                              callback stopped the decode included */
    uint64_t chunks;     /**< chunks decoded */
    uint64_t good_bytes; /**< input bytes up to the end of the last frame or chunk decoded
                              completely: what can be kept of a file that ends in a damaged
                              or cut-short tail */
    uint64_t duplicates; /**< a file (frames or bare chunks, not a capture) holds each seq
                              once as far as its records go: a record whose seq came before
                              is compared with the first copy; the same content (a file
                              joined from copies of one pen's file, a chunk sent again) is
                              passed to on_record once and counted here; other content for
                              a seq stops the decode with #PENLINK_ERR_INTEGRITY */
    uint64_t problems;   /**< damaged stretches and messages with a problem met so far
                              (penlink_decoder_set_message_cb()) */
} penlink_decoder_stats;

/** A penlink_decoder_stats initialiser: its size set, every total 0. */
#define PENLINK_DECODER_STATS_INIT                                                                 \
    {                                                                                              \
        sizeof(penlink_decoder_stats), 0, 0, 0, 0, 0                                               \
    }

/**
 * Writes the decoder's totals so far into *@p out (only the fields
 * @p out->size covers).
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (NULL, or @p out->size
 *         smaller than the first released penlink_decoder_stats).
 */
PENLINK_API int penlink_decoder_stats_get(const penlink_decoder *dec, penlink_decoder_stats *out);

/**
 * The highest record seq decoded so far: *@p have gets 1 and *@p seq (may
 * be NULL) the seq when any record was decoded, else *@p have gets 0.
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (@p dec or @p have NULL).
 */
PENLINK_API int penlink_decoder_last_seq(const penlink_decoder *dec, uint64_t *seq, int *have);

/**
 * Of a file of frames: the hash-chain link (docs/protocol.md 9.3) after the
 * chunk that ends at the highest seq, when that chunk carries one (a pen
 * that signs its log): *@p have gets 1 and @p link (may be NULL) the link;
 * else *@p have gets 0. A pull that resumes the file goes on from it
 * (penlink_pull_cb.after_link).
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (@p dec or @p have NULL).
 */
PENLINK_API int penlink_decoder_last_link(const penlink_decoder *dec,
                                          uint8_t link[PENLINK_LINK_SIZE], int *have);

/**
 * Whose log a file of frames is. `penlink pull -o` starts every file with a
 * header frame: an Envelope with request_id 0 (a value no host uses on the
 * wire, docs/protocol.md section 3) whose body is a DeviceInfo carrying only
 * the pen's identity. A reader that does not know headers sees one more
 * message and skips it, as it skips every message but LogChunk.
 * docs/protocol.md section 10 gives the bytes. The caller sets @c size
 * (#PENLINK_FILE_HEADER_INIT does): fields may be added at the end, and the
 * library reads and writes only those @c size covers.
 */
typedef struct penlink_file_header {
    size_t size;                      /**< sizeof(penlink_file_header) as the caller was built */
    char serial[PENLINK_SERIAL_SIZE]; /**< the pen's serial, 1..32 bytes, as the pen sent it:
                                         unchecked text */
    char model[PENLINK_SERIAL_SIZE];  /**< its model, maybe empty; informational, cut to 32 bytes */
    int has_device_key; /**< the pen had an identity (a device key) when the file began */
    uint8_t device_key[PENLINK_KEY_SIZE]; /**< its Ed25519 public key */
} penlink_file_header;

/** A penlink_file_header initialiser: its size set, every field empty. */
#define PENLINK_FILE_HEADER_INIT                                                                   \
    {                                                                                              \
        .size = sizeof(penlink_file_header)                                                        \
    }

/** Largest encoded file header, bytes. */
#define PENLINK_FILE_HEADER_MAX 256

/**
 * Encodes @p h as a file header frame into @p buf (#PENLINK_FILE_HEADER_MAX
 * bytes always suffice); *@p len gets its size in bytes.
 * @return #PENLINK_OK, or #PENLINK_ERR_INVALID_ARG for a NULL argument, @p h
 *         without its size, an empty or unterminated serial, or a buffer too small.
 */
PENLINK_API int penlink_file_header_encode(const penlink_file_header *h, void *buf, size_t cap,
                                           size_t *len);

/**
 * The file header of the input: *@p have gets 1 and *@p out (may be NULL)
 * the header when the input began with one; *@p have gets 0 when it did not
 * (a capture, bare chunks, a file written before headers existed) or when
 * too little was fed to tell.
 * A header that is malformed (no serial, a serial over 32 bytes, a key that
 * is not 32 bytes) stops the decode with #PENLINK_ERR_PROTOCOL; a header
 * further on that names another pen (two pens' files joined) stops it with
 * #PENLINK_ERR_INTEGRITY. A header further on in an input that did not
 * begin with one is an ordinary message.
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (@p dec or @p have NULL, or
 *         @p out without its size).
 */
PENLINK_API int penlink_decoder_header(const penlink_decoder *dec, penlink_file_header *out,
                                       int *have);

/* ---- messages on the wire (docs/engineer-guide.md) ------------------- */

/** Which way a message went. */
typedef enum penlink_direction {
    PENLINK_DIR_UNKNOWN = 0, /**< a file of frames: not known */
    PENLINK_DIR_TO_PEN = 1,  /**< host to pen: a request */
    PENLINK_DIR_TO_HOST = 2  /**< pen to host: a reply */
} penlink_direction;

/**
 * One protocol message, as a capture, a file or a live session shows it.
 * Strings are the library's (never from the wire) except where noted;
 * everything is valid only during the callback that passes it.
 */
typedef struct penlink_message {
    uint64_t index;  /**< 1-based: the n-th message (or damaged stretch) of its input */
    uint64_t offset; /**< a file of frames: the frame's offset; a capture: the offset of the
                          packet block where the frame ends; live: 0 */
    uint64_t packet; /**< a capture: 1-based number of the packet where the frame ends (as
                          Wireshark numbers them); else 0 */
    int64_t time_us; /**< a capture: that packet's time; live: now (µs since the epoch); else 0 */
    penlink_direction direction; /**< which way it went */
    uint32_t stream;             /**< a capture: the conversation (USB bus << 16 | address << 8 |
                                      endpoint, or the interface of a stream trace); else 0 */
    uint32_t size;        /**< bytes of the frame (header and payload), or of the damaged stretch */
    uint32_t payload_len; /**< header: payload length */
    uint32_t payload_crc; /**< header: CRC-32 of the payload */
    uint32_t header_check; /**< header: its check (low 16 bits of a CRC-32) */
    uint8_t version;       /**< header: framing version */
    uint8_t flags;         /**< header: flags */
    uint32_t request_id;   /**< the Envelope's request_id (0: a file header) */
    const char *name;      /**< Envelope body ("hello", "log_chunk"), "none" for an Envelope
                                without a body (or one this version does not know), "damaged"
                                for bytes that are not an intact frame */
    const char *problem;   /**< NULL, or what is wrong: why a stretch is damaged, a payload that
                                is not an Envelope, a chunk that does not decode, a broken link */
    const char *chain;     /**< log_chunk and log_end of a pen that signs its log: how far the
                                hash chain and head signature were checked ("verified", or
                                "unchecked: ..." saying why not); NULL otherwise */
    const void *internal_; /**< for penlink_message_fields() */
} penlink_message;

/** Called for each message; a non-zero return stops what is calling it. */
typedef int (*penlink_message_ex_cb)(void *user, const penlink_message *m);

/** Types of penlink_field values. */
typedef enum penlink_field_type {
    PENLINK_FIELD_UINT = 0,  /**< u */
    PENLINK_FIELD_INT = 1,   /**< i (signed protobuf types) */
    PENLINK_FIELD_BOOL = 2,  /**< u (0 or 1) */
    PENLINK_FIELD_TEXT = 3,  /**< text: a string from the wire, unchecked (escape it) */
    PENLINK_FIELD_BYTES = 4, /**< bytes, len */
    PENLINK_FIELD_BEGIN = 5, /**< a message field starts: its fields follow, then END */
    PENLINK_FIELD_END = 6    /**< the message field opened by the last BEGIN ends */
} penlink_field_type;

/** One field of a message, as penlink_message_fields() visits them. */
typedef struct penlink_field {
    const char *name;        /**< the field's name in protocol/penlink.proto */
    uint32_t number;         /**< its field number */
    penlink_field_type type; /**< which of the value members holds its value */
    int repeated;            /**< one element of a repeated field (one call per element) */
    int depth;               /**< 0 for the Envelope's own fields, 1 inside its body, ... */
    uint64_t u;              /**< #PENLINK_FIELD_UINT, #PENLINK_FIELD_BOOL */
    int64_t i;               /**< #PENLINK_FIELD_INT */
    const char *text;        /**< #PENLINK_FIELD_TEXT (NUL-terminated) */
    const uint8_t *bytes;    /**< #PENLINK_FIELD_BYTES */
    size_t len;              /**< #PENLINK_FIELD_BYTES: bytes; #PENLINK_FIELD_TEXT: its length */
} penlink_field;

/** Called for each field by penlink_message_fields(); non-zero stops the visit. */
typedef int (*penlink_field_cb)(void *user, const penlink_field *f);

/**
 * Visits every field present in the Envelope of @p m, in field-number order,
 * nested messages between BEGIN and END (the body is the BEGIN named
 * m->name at depth 0). Only during the callback that passed @p m.
 * @return #PENLINK_OK, #PENLINK_ERR_INVALID_ARG (a damaged stretch has no
 *         fields), or #PENLINK_ERR_CANCELLED when @p cb returned non-zero.
 */
PENLINK_API int penlink_message_fields(const penlink_message *m, penlink_field_cb cb, void *user);

/**
 * Calls @p cb (NULL: no longer) with every message a decoder meets, before
 * the records of a LogChunk are passed to the record callback. In a
 * capture (pcapng or pcap: `penlink --trace`, usbmon, USBPcap) damaged
 * stretches are reported as messages named "damaged" and the decode goes
 * on; the hash chain and head signatures are checked as far as the input
 * allows (see penlink_message.chain).
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (@p dec NULL).
 */
PENLINK_API int penlink_decoder_set_message_cb(penlink_decoder *dec, penlink_message_ex_cb cb,
                                               void *user);

/**
 * Records every byte of every session opened on @p ctx from now on into
 * the pcapng file @p path (created, or truncated), one packet per USB bulk
 * transfer (link type LINKTYPE_USB_LINUX_MMAPPED, as usbmon records them)
 * or per read and write of a simulated pen's socket (the penlink stream
 * link type, docs/protocol.md section 11), timestamped, each written to the
 * file as it happens so that a crash leaves a readable file. NULL stops
 * recording and closes the file. @p path is opened as given: a symbolic
 * link is followed, an existing file truncated.
 *
 * A packet that cannot be written (a full disk) does not fail the operation
 * that moved its bytes, since they went over the wire all the same (a pull
 * whose acknowledgement was sent has been acknowledged by the pen): the
 * trace stops there and penlink_ctx_trace_error() says so. Only creating
 * the file, or describing a session in it when the session opens, fails
 * with #PENLINK_ERR_IO.
 * @return #PENLINK_OK, #PENLINK_ERR_IO (cannot create @p path),
 *         #PENLINK_ERR_INVALID_ARG (@p ctx NULL).
 */
PENLINK_API int penlink_ctx_set_trace(penlink_ctx *ctx, const char *path);

/**
 * NULL while the trace of @p ctx holds every packet so far; else a sentence
 * naming the file, the packet whose write failed and why: the trace ends
 * before it. Valid until the trace is changed or @p ctx freed.
 */
PENLINK_API const char *penlink_ctx_trace_error(const penlink_ctx *ctx);

/**
 * Calls @p cb with every message sent or received by the pens opened on
 * @p ctx from now on (NULL: no longer), as it goes: what `penlink -v` shows.
 * A non-zero return is ignored.
 */
PENLINK_API void penlink_ctx_set_message_cb(penlink_ctx *ctx, penlink_message_ex_cb cb, void *user);

/** Called with one line of text for people (valid during the call). */
typedef void (*penlink_text_cb)(void *user, const char *text);

/**
 * Calls @p cb (NULL: no longer) with one sentence whenever a session opened
 * on @p ctx from now on has waited a reply timeout in vain and asks again
 * ("the pen has not answered get_info for 2.0 s; asking again (try 2 of
 * 3)"), so that a person is not left facing seconds of silence. The text
 * names the pen by its serial as the pen sent it: escape it before a
 * terminal sees it.
 */
PENLINK_API void penlink_ctx_set_notice_cb(penlink_ctx *ctx, penlink_text_cb cb, void *user);

/**
 * Where long archive work stands (penlink_ctx_set_progress_cb()): the pushes
 * of penlink_archive_push(), the checks of penlink_archive_verify(), the
 * reading of penlink_audit_run(), the records of penlink_archive_scan().
 *
 * The library allocates it and keeps it valid during the call only; callers
 * read it and never allocate one, so members may be added at the end.
 */
typedef struct penlink_work_progress {
    const char *work;   /**< "push", "verify", "audit" or "export" (penlink_archive_scan()) */
    const char *serial; /**< the pen the work is on (the work goes pen by pen), NULL when not per
                             pen */
    const char *unit;   /**< what @c done and @c total count: "records" (or "chunks") */
    uint64_t done;      /**< units of this pen done so far; never goes back within a pen */
    uint64_t total;     /**< units this pen is expected to take, 0 when unknown; an estimate
                             (from the seqs archived) until the last call, never below done */
    int finished;       /**< 1 on the pen's last call (also when the work failed or was
                             stopped): @c done is final and @c total equals it */
} penlink_work_progress;

/** Called with the progress of long archive work (penlink_ctx_set_progress_cb()). */
typedef void (*penlink_work_progress_cb)(void *user, const penlink_work_progress *p);

/**
 * Units of work between two calls of a #penlink_work_progress_cb at most
 * (besides each pen's first and last call), so that a progress callback
 * costs nothing measurable however long the work.
 */
#define PENLINK_WORK_PROGRESS_STEP 16384

/**
 * Calls @p cb (NULL: no longer) with the progress of long work on archives
 * opened on @p ctx: penlink_archive_push() (on the context of its @p from
 * archive), penlink_archive_verify(), penlink_audit_run() and
 * penlink_archive_scan(). For each pen the work visits, a first call comes
 * before any of its units (@c done 0), then one at most every
 * #PENLINK_WORK_PROGRESS_STEP units, then a last one with @c finished set.
 * The calls come from the thread doing the work, which waits for @p cb to
 * return: keep it short.
 * @return #PENLINK_OK, or #PENLINK_ERR_INVALID_ARG (@p ctx NULL).
 */
PENLINK_API int penlink_ctx_set_progress_cb(penlink_ctx *ctx, penlink_work_progress_cb cb,
                                            void *user);

/* ---- pens ------------------------------------------------------------ */

/** Default USB vendor ID of a pen (pid.codes). */
#define PENLINK_USB_VID 0x1209
/** Default USB product ID of a pen (the pid.codes test ID). */
#define PENLINK_USB_PID 0x0001

/** Longest USB port path, "BUS-PORT.PORT..." (USB allows 7 tiers of ports). */
#define PENLINK_PORT_MAX 32

/**
 * One pen found by penlink_dev_list(). The library allocates these and hands
 * out pointers to them, so members may be added at the end: a caller never
 * allocates one nor indexes an array of them.
 */
typedef struct penlink_found {
    char uri[PENLINK_URI_SIZE];       /**< what penlink_dev_open() takes, e.g. "usb:PEN-000123" */
    char serial[PENLINK_SERIAL_SIZE]; /**< the pen's serial (empty when it could not be read) */
    char where[PENLINK_NAME_SIZE];    /**< e.g. "usb port 1-2.3 (bus 1 device 4)" */
    int status;                       /**< #PENLINK_OK, or why it can't be opened (e.g. ACCESS) */
    char port[PENLINK_PORT_MAX];      /**< the port path as udev and `lsusb -t` name it, "1-2.3"
                                           (bus 1, port 3 of the hub on port 2); "usb:1-2.3" opens
                                           the pen on that port whatever its serial */
} penlink_found;

/**
 * Lists the pens plugged in over USB (vendor interface on PENLINK_USB_VID:PID,
 * or the IDs in the environment variable PENLINK_USB_ID="VID:PID", hex),
 * sorted by bus, then port path (1-2 before 1-2.1 before 1-10).
 * *@p list gets a NULL-terminated array of pointers to the *@p n pens found
 * (none: an array holding only NULL), which the caller releases with
 * penlink_dev_list_free(); on failure *@p list is NULL and *@p n 0.
 * @return #PENLINK_OK (also when none is found: *@p n = 0);
 *         #PENLINK_ERR_INVALID_ARG (@p ctx, @p list or @p n NULL);
 *         #PENLINK_ERR_NO_MEM; #PENLINK_ERR_IO, #PENLINK_ERR_ACCESS,
 *         #PENLINK_ERR_BUSY, #PENLINK_ERR_NOT_FOUND, #PENLINK_ERR_GONE or
 *         #PENLINK_ERR_TIMEOUT when libusb cannot list the bus.
 */
PENLINK_API int penlink_dev_list(penlink_ctx *ctx, penlink_found ***list, size_t *n);

/** Releases a list penlink_dev_list() made, and the pens in it (NULL is fine). */
PENLINK_API void penlink_dev_list_free(penlink_found **list);

/**
 * Waits up to @p timeout_ms for a pen to be plugged in or unplugged (libusb
 * hotplug; where hotplug is not available it just sleeps). *@p changed gets
 * 1 when something changed, 0 when the time ran out.
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (@p ctx or @p changed NULL);
 *         #PENLINK_ERR_CANCELLED (penlink_ctx_cancel()); #PENLINK_ERR_NO_MEM.
 */
PENLINK_API int penlink_dev_wait_change(penlink_ctx *ctx, int timeout_ms, int *changed);

/** An open session with one pen. */
typedef struct penlink_dev penlink_dev;

/**
 * Opens a pen and starts a clean session: stale replies left by an earlier
 * client are drained, then Hello and version negotiation.
 *
 * @p uri: "usb" (the only pen plugged in; #PENLINK_ERR_AMBIGUOUS lists them
 * when there are several), "usb:SERIAL", "usb:BUS-PORT[.PORT...]" (the pen on
 * that USB port, e.g. "usb:1-2.3", as penlink_found.port names it; a serial
 * of that shape is named "usb:serial=SERIAL"), or "sim:PATH" (the Unix socket
 * of penlink-sim). NULL means the PENLINK_DEVICE environment variable, else
 * "usb".
 *
 * @return #PENLINK_OK; #PENLINK_ERR_NOT_FOUND, #PENLINK_ERR_ACCESS,
 *         #PENLINK_ERR_BUSY (three different causes, three different hints in
 *         penlink_ctx_errmsg()); #PENLINK_ERR_AMBIGUOUS (several pens, none
 *         chosen); #PENLINK_ERR_VERSION; #PENLINK_ERR_TIMEOUT;
 *         #PENLINK_ERR_INVALID_ARG (@p ctx or @p out NULL, a @p uri of no form
 *         above); #PENLINK_ERR_PROTOCOL, #PENLINK_ERR_DEVICE (the pen broke or
 *         refused the Hello); #PENLINK_ERR_GONE; #PENLINK_ERR_CANCELLED;
 *         #PENLINK_ERR_NO_MEM.
 */
PENLINK_API int penlink_dev_open(penlink_ctx *ctx, const char *uri, penlink_dev **out);
/** Ends the session and releases the pen (NULL is fine). */
PENLINK_API void penlink_dev_close(penlink_dev *dev);

/** Reply timeout in ms (default 2000) and retries of idempotent requests (default 2). */
PENLINK_API void penlink_dev_set_timeout(penlink_dev *dev, int timeout_ms, int retries);

/** The pen's structured error after #PENLINK_ERR_DEVICE / CONFLICT / INVALID_CONFIG. */
typedef struct penlink_device_error {
    uint32_t code;                   /**< ErrorCode of docs/protocol.md */
    char message[PENLINK_TEXT_SIZE]; /**< the pen's words */
    char field[PENLINK_NAME_SIZE];   /**< offending field, e.g. "config.depth_max_um" */
} penlink_device_error;

/**
 * The pen's own error of the last request on @p dev that it refused
 * (#PENLINK_ERR_DEVICE, #PENLINK_ERR_CONFLICT, #PENLINK_ERR_INVALID_CONFIG,
 * #PENLINK_ERR_AUTH); valid as long as @p dev. Never fails.
 * @return the error (code 0 and empty text while the pen refused nothing), or
 *         NULL for a NULL @p dev.
 */
PENLINK_API const penlink_device_error *penlink_dev_error(const penlink_dev *dev);

/**
 * Limits within which the pen accepts configuration: filled by
 * penlink_dev_info() (penlink_info.limits), read by penlink_config_check().
 * A caller's own sets @c size (#PENLINK_LIMITS_INIT does).
 */
typedef struct penlink_limits {
    size_t size;                 /**< sizeof(penlink_limits) as the caller was built */
    uint32_t depth_min_um;       /**< shallowest needle depth, micrometres */
    uint32_t depth_max_um;       /**< deepest needle depth, micrometres */
    uint32_t depth_step_um;      /**< depths are multiples of this */
    uint32_t speed_min_sps;      /**< slowest needle speed, strokes per second */
    uint32_t speed_max_sps;      /**< fastest needle speed, strokes per second */
    uint32_t max_treatment_s;    /**< longest treatment limit, seconds */
    uint32_t max_cartridge_uses; /**< most uses of one cartridge that may be allowed */
    uint32_t auto_off_min_s;     /**< shortest auto-off delay, seconds */
    uint32_t auto_off_max_s;     /**< longest auto-off delay, seconds */
    uint32_t max_text_len;       /**< longest text value, bytes */
} penlink_limits;

/** A penlink_limits initialiser: its size set, every other member 0. */
#define PENLINK_LIMITS_INIT                                                                        \
    {                                                                                              \
        .size = sizeof(penlink_limits)                                                             \
    }

/** Most config-signing keys a pen announces (penlink_info.n_config_keys). */
#define PENLINK_CONFIG_KEYS_MAX 4

/**
 * What GetInfo reports, plus the session's negotiated values. The caller
 * sets @c size (#PENLINK_INFO_INIT does) before penlink_dev_info() fills it:
 * fields may be added at the end, and the library writes (and, where it
 * takes one in, reads) only those @c size covers.
 */
typedef struct penlink_info {
    size_t size;                      /**< sizeof(penlink_info) as the caller was built */
    char serial[PENLINK_SERIAL_SIZE]; /**< the pen's serial */
    char model[PENLINK_SERIAL_SIZE];  /**< its model */
    char hardware_revision[PENLINK_SERIAL_SIZE]; /**< its hardware revision */
    char firmware_version[PENLINK_SERIAL_SIZE];  /**< its firmware version */
    uint64_t log_first_seq;                      /**< oldest record the pen holds */
    uint64_t log_next_seq;                       /**< seq of the next record */
    uint64_t log_acked_seq;                      /**< every seq below is acknowledged */
    uint64_t log_capacity_bytes;                 /**< room for the log on the pen */
    uint64_t log_used_bytes;                     /**< of which in use */
    int64_t device_time_ms;                      /**< the pen's clock, ms since the epoch */
    uint64_t uptime_ms;                          /**< since the pen was switched on */
    uint32_t config_revision;                    /**< the configuration in force */
    penlink_limits limits;                       /**< what configuration the pen accepts */
    uint32_t protocol_major;                     /**< the pen's protocol version, major */
    uint32_t protocol_minor;                     /**< and minor */
    uint32_t features;                           /**< #penlink_feature bits the pen announced */
    uint32_t max_frame_payload;                  /**< the pen's largest frame payload, bytes */
    int has_device_key;                          /**< the pen has an identity (signs its log) */
    uint8_t device_key[PENLINK_KEY_SIZE];        /**< its Ed25519 public key */
    uint32_t n_config_keys; /**< keys allowed to sign its configuration, at most
                                 #PENLINK_CONFIG_KEYS_MAX (0: it takes unsigned
                                 configuration) */
    /** The n_config_keys keys (NULL when none), owned by the penlink_dev that
     *  filled this: valid until its next penlink_dev_info() or penlink_dev_close(). */
    const uint8_t (*config_keys)[PENLINK_KEY_SIZE];
} penlink_info;

/** A penlink_info initialiser: its size set, every field 0. */
#define PENLINK_INFO_INIT                                                                          \
    {                                                                                              \
        .size = sizeof(penlink_info)                                                               \
    }

/** Bits of penlink_info.features (Feature in penlink.proto). */
enum penlink_feature {
    PENLINK_FEATURE_LOG_PULL = 1,
    PENLINK_FEATURE_CONFIG = 2,
    PENLINK_FEATURE_CLOCK = 4,
    PENLINK_FEATURE_SIGNED_CONFIG = 8,  /**< refuses configuration not signed by its keys */
    PENLINK_FEATURE_SIGNED_CHUNKS = 16, /**< hash-chains its log and signs the head */
    PENLINK_FEATURE_IDENTIFY = 32,      /**< can signal itself (penlink_dev_identify()) */
    PENLINK_FEATURE_SIGNED_CLOCK = 64   /**< refuses a clock setting not signed by its keys */
};

/**
 * Reads DeviceInfo into *@p out, whose @c size the caller set.
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (NULL, or @p out->size
 *         smaller than the first released penlink_info); #PENLINK_ERR_PROTOCOL
 *         (a reply that is no DeviceInfo, or names another serial);
 *         #PENLINK_ERR_DEVICE; #PENLINK_ERR_TIMEOUT; #PENLINK_ERR_GONE;
 *         #PENLINK_ERR_CANCELLED.
 */
PENLINK_API int penlink_dev_info(penlink_dev *dev, penlink_info *out);

/** Bits of penlink_config.present: which fields are set. */
enum penlink_config_field {
    PENLINK_CFG_DEPTH_MIN_UM = 1u << 0,
    PENLINK_CFG_DEPTH_MAX_UM = 1u << 1,
    PENLINK_CFG_DEPTH_DEFAULT_UM = 1u << 2,
    PENLINK_CFG_SPEED_MIN_SPS = 1u << 3,
    PENLINK_CFG_SPEED_MAX_SPS = 1u << 4,
    PENLINK_CFG_MAX_TREATMENT_S = 1u << 5,
    PENLINK_CFG_MAX_CARTRIDGE_USES = 1u << 6,
    PENLINK_CFG_AUTO_OFF_S = 1u << 7,
    PENLINK_CFG_DEVICE_LABEL = 1u << 8,
    PENLINK_CFG_CLINIC_ID = 1u << 9,
    PENLINK_CFG_ALL = (1u << 10) - 1
};

/**
 * A pen configuration, or a change to one (only the fields in @c present).
 * The caller sets @c size (#PENLINK_CONFIG_INIT does): a later version adds
 * keys at the end, and the library reads and writes only the fields @c size
 * covers. Configurations the library hands out (penlink_config_entry) have
 * their size set.
 */
typedef struct penlink_config {
    size_t size;                 /**< sizeof(penlink_config) as the caller was built */
    uint32_t present;            /**< #penlink_config_field bits */
    uint32_t revision;           /**< as read; ignored when setting */
    uint32_t depth_min_um;       /**< shallowest depth allowed, micrometres */
    uint32_t depth_max_um;       /**< deepest depth allowed, micrometres */
    uint32_t depth_default_um;   /**< depth at power on, micrometres */
    uint32_t speed_min_sps;      /**< slowest speed allowed, strokes per second */
    uint32_t speed_max_sps;      /**< fastest speed allowed, strokes per second */
    uint32_t max_treatment_s;    /**< seconds */
    uint32_t max_cartridge_uses; /**< 1 = single use */
    uint32_t auto_off_s;         /**< seconds */
    char device_label[PENLINK_CONFIG_TEXT_SIZE]; /**< the clinic's name for the pen */
    char clinic_id[PENLINK_CONFIG_TEXT_SIZE];    /**< the clinic it belongs to */
} penlink_config;

/** A penlink_config initialiser: its size set, no field present. */
#define PENLINK_CONFIG_INIT                                                                        \
    {                                                                                              \
        .size = sizeof(penlink_config)                                                             \
    }

/** Describes the configuration keys (for files, the CLI and error messages). */
typedef struct penlink_config_key {
    const char *name; /**< JSON / CLI key, with its unit: "depth_max_um" */
    uint32_t bit;     /**< #penlink_config_field */
    int is_text;      /**< 1 for device_label and clinic_id */
    const char *help; /**< one line */
} penlink_config_key;
/** The keys, in a stable order; *@p n gets their number. */
PENLINK_API const penlink_config_key *penlink_config_keys(size_t *n);
/** The key with that name, or NULL. */
PENLINK_API const penlink_config_key *penlink_config_key_find(const char *name);
/** Value of a numeric key in @p cfg (0 for text keys, and for a @p cfg without its size). */
PENLINK_API uint32_t penlink_config_get_u32(const penlink_config *cfg, uint32_t bit);
/**
 * Sets a numeric key and marks it present.
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (@p cfg NULL or without its
 *         size, or @p bit not one numeric key's #penlink_config_field bit).
 */
PENLINK_API int penlink_config_set_u32(penlink_config *cfg, uint32_t bit, uint32_t v);
/**
 * Sets a text key (at most #PENLINK_CONFIG_TEXT_MAX bytes) and marks it present.
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (@p cfg or @p v NULL, @p cfg
 *         without its size, @p bit not a text key's bit, or @p v too long:
 *         nothing is changed).
 */
PENLINK_API int penlink_config_set_text(penlink_config *cfg, uint32_t bit, const char *v);
/** Text of a text key ("" for numeric keys, and for a @p cfg without its size). */
PENLINK_API const char *penlink_config_get_text(const penlink_config *cfg, uint32_t bit);

/**
 * Checks a whole configuration against a pen's limits and the cross-field
 * rules (min <= default <= max, depths on the step, text length), as the pen
 * will.
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_CONFIG with the key and the
 *         allowed range in penlink_ctx_errmsg(); #PENLINK_ERR_INVALID_ARG
 *         (@p limits or @p cfg NULL, or either without its size).
 */
PENLINK_API int penlink_config_check(penlink_ctx *ctx, const penlink_limits *limits,
                                     const penlink_config *cfg);

/**
 * Reads the configuration (all fields present).
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (NULL); #PENLINK_ERR_TIMEOUT, #PENLINK_ERR_GONE,
 * #PENLINK_ERR_PROTOCOL, #PENLINK_ERR_DEVICE (the pen refused: penlink_dev_error()),
 * #PENLINK_ERR_CANCELLED, #PENLINK_ERR_NO_MEM.
 */
PENLINK_API int penlink_dev_config_get(penlink_dev *dev, penlink_config *out);

/* ---- keys (docs/security.md) ------------------------------------------- */

/**
 * An Ed25519 key pair for signing configuration (libsodium layout). The
 * caller sets @c size (#PENLINK_KEY_INIT does) before penlink_key_load() or
 * penlink_key_generate() fills it; the signing functions refuse a key
 * without it.
 */
typedef struct penlink_key {
    size_t size;                             /**< sizeof(penlink_key) as the caller was built */
    uint8_t secret[PENLINK_SECRET_KEY_SIZE]; /**< seed, then public key: keep it secret */
    uint8_t public_key[PENLINK_KEY_SIZE];    /**< the public key (what pens are provisioned with) */
} penlink_key;

/** A penlink_key initialiser: its size set, every other member 0. */
#define PENLINK_KEY_INIT                                                                           \
    {                                                                                              \
        .size = sizeof(penlink_key)                                                                \
    }

/**
 * Makes a new key pair and writes it: @p path (the secret key, mode 0600,
 * never over an existing file) and @p path + ".pub" (the public key, to
 * provision on pens). Missing directories of @p path are made (mode 0700,
 * as mkdir -p). *@p out (may be NULL) gets the pair.
 * @return #PENLINK_OK, #PENLINK_ERR_IO (exists, a directory cannot be made,
 *         or cannot be written); #PENLINK_ERR_INVALID_ARG (a NULL argument, an
 *         @p out without its size);
 *         #PENLINK_ERR_UNSUPPORTED (libsodium failed to initialise).
 */
PENLINK_API int penlink_key_generate(penlink_ctx *ctx, const char *path, penlink_key *out);

/**
 * Reads a secret key file written by penlink_key_generate(). Refuses a file
 * that others may read (not 0600 or stricter).
 * @return #PENLINK_OK, #PENLINK_ERR_IO (cannot be read),
 *         #PENLINK_ERR_INVALID_ARG (not a key file, a public key, or readable
 *         by others: a file the caller must replace or chmod; #PENLINK_ERR_AUTH
 *         is kept for a signature the pen refused; also: a NULL argument, an
 *         @p out without its size); #PENLINK_ERR_UNSUPPORTED
 *         (libsodium failed to initialise).
 */
PENLINK_API int penlink_key_load(penlink_ctx *ctx, const char *path, penlink_key *out);

/**
 * The public key of a key file: a public key file (.pub), or a secret key
 * file (read as penlink_key_load() reads it).
 * @return #PENLINK_OK, #PENLINK_ERR_IO, #PENLINK_ERR_INVALID_ARG (damaged,
 *         or a NULL argument), #PENLINK_ERR_UNSUPPORTED (libsodium failed to
 *         initialise), or what penlink_key_load() returns.
 */
PENLINK_API int penlink_key_load_public(penlink_ctx *ctx, const char *path,
                                        uint8_t pk[PENLINK_KEY_SIZE]);

/** Writes @p pk as 64 lower-case hex digits and a NUL into @p hex. */
PENLINK_API void penlink_key_to_hex(const uint8_t pk[PENLINK_KEY_SIZE],
                                    char hex[PENLINK_KEY_HEX_SIZE]);

/** Bytes of a key fingerprint with its NUL ("3f1c:9a0e:7b21:44d0"). */
#define PENLINK_KEY_FINGERPRINT_LEN 20

/**
 * A key's fingerprint, the short form people compare: the first 8 bytes of
 * the SHA-256 of the 32-byte public key, as 16 lower-case hex digits in
 * groups of 4 joined by ':'. Two different keys sharing one is a
 * 1 in 2^64 chance; use penlink_key_to_hex() where that is not enough.
 */
PENLINK_API void penlink_key_to_fingerprint(const uint8_t pk[PENLINK_KEY_SIZE],
                                            char out[PENLINK_KEY_FINGERPRINT_LEN]);

/**
 * Whether @p pk is one of the config keys @p info lists (the keys the pen
 * accepts): *@p accepts gets 1 or 0.
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (a NULL argument).
 */
PENLINK_API int penlink_info_accepts_key(const penlink_info *info,
                                         const uint8_t pk[PENLINK_KEY_SIZE], int *accepts);

/**
 * Changes the fields present in @p change, if the pen's revision is still
 * @p expected_revision (compare-and-set). On success *@p result (may be NULL)
 * is the whole configuration now in force.
 * @return #PENLINK_OK; #PENLINK_ERR_CONFLICT (changed meanwhile: re-read);
 *         #PENLINK_ERR_INVALID_CONFIG (the pen refused a value, see
 *         penlink_dev_error()); #PENLINK_ERR_AUTH (the pen takes only signed
 *         changes: penlink_dev_config_set_signed()); #PENLINK_ERR_INVALID_ARG
 *         (@p dev or @p change NULL, @p change or @p result without its size);
 *         the statuses of a request: #PENLINK_ERR_TIMEOUT, #PENLINK_ERR_GONE,
 *         #PENLINK_ERR_PROTOCOL, #PENLINK_ERR_DEVICE (the pen refused otherwise,
 *         or does not take configuration), #PENLINK_ERR_CANCELLED,
 *         #PENLINK_ERR_NO_MEM.
 */
PENLINK_API int penlink_dev_config_set(penlink_dev *dev, uint32_t expected_revision,
                                       const penlink_config *change, penlink_config *result);

/**
 * penlink_dev_config_set() signed with @p key (NULL: unsigned): asks the pen
 * for a fresh nonce and signs the pen's serial, the expected revision, the
 * nonce and the values (docs/protocol.md). A pen provisioned with config
 * keys takes only this.
 * @return as penlink_dev_config_set(): #PENLINK_OK; #PENLINK_ERR_CONFLICT;
 *         #PENLINK_ERR_INVALID_CONFIG; #PENLINK_ERR_AUTH, also when the pen
 *         refuses the signature (penlink_dev_error() has its reason);
 *         #PENLINK_ERR_INVALID_ARG (also: a @p key without its size); #PENLINK_ERR_TIMEOUT;
 * #PENLINK_ERR_GONE; #PENLINK_ERR_PROTOCOL (also: a nonce of the wrong size); #PENLINK_ERR_DEVICE;
 * #PENLINK_ERR_CANCELLED; #PENLINK_ERR_NO_MEM.
 */
PENLINK_API int penlink_dev_config_set_signed(penlink_dev *dev, uint32_t expected_revision,
                                              const penlink_key *key, const penlink_config *change,
                                              penlink_config *result);

/**
 * Sets the pen's clock; *@p previous_ms (may be NULL) gets the clock just before.
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (NULL); #PENLINK_ERR_AUTH (a
 *         pen that takes only a signed clock, penlink_dev_clock_set_signed());
 *         #PENLINK_ERR_TIMEOUT, #PENLINK_ERR_GONE, #PENLINK_ERR_PROTOCOL,
 *         #PENLINK_ERR_DEVICE (the pen refused: penlink_dev_error()), #PENLINK_ERR_CANCELLED,
 *         #PENLINK_ERR_NO_MEM.
 */
PENLINK_API int penlink_dev_clock_set(penlink_dev *dev, int64_t time_ms, int64_t *previous_ms);

/**
 * penlink_dev_clock_set() signed with @p key (NULL: unsigned): asks the pen
 * for a fresh nonce and signs the pen's serial, the nonce and @p time_ms
 * (docs/protocol.md 9.4). A pen that announces #PENLINK_FEATURE_SIGNED_CLOCK
 * takes only this.
 * @return as penlink_dev_clock_set(): #PENLINK_OK; #PENLINK_ERR_AUTH, also
 *         when the pen refuses the signature (penlink_dev_error() has its
 *         reason); #PENLINK_ERR_INVALID_ARG (also: a @p key without its size);
 *         #PENLINK_ERR_TIMEOUT;
 *         #PENLINK_ERR_GONE; #PENLINK_ERR_PROTOCOL (also: a nonce of the wrong
 *         size); #PENLINK_ERR_DEVICE; #PENLINK_ERR_CANCELLED; #PENLINK_ERR_NO_MEM.
 */
PENLINK_API int penlink_dev_clock_set_signed(penlink_dev *dev, int64_t time_ms,
                                             const penlink_key *key, int64_t *previous_ms);

/** Default signal of penlink_dev_identify(), seconds (the reference pen's). */
#define PENLINK_IDENTIFY_DEFAULT_S 10
/** Longest signal of penlink_dev_identify(), seconds (the reference pen's). */
#define PENLINK_IDENTIFY_MAX_S 60

/**
 * Makes the pen signal itself (blink, beep) for @p seconds, so that a
 * person can tell which pen on a desk it is; 0 stops a signal going on.
 * *@p granted (may be NULL) gets the seconds the pen will signal (a pen
 * may grant less than asked).
 * @return #PENLINK_OK; #PENLINK_ERR_DEVICE when the pen does not support it
 *         (it did not announce #PENLINK_FEATURE_IDENTIFY: nothing is sent) or
 *         refuses; #PENLINK_ERR_INVALID_ARG (@p dev NULL); #PENLINK_ERR_TIMEOUT;
 *         #PENLINK_ERR_GONE;
 *         #PENLINK_ERR_PROTOCOL; #PENLINK_ERR_CANCELLED; #PENLINK_ERR_NO_MEM.
 */
PENLINK_API int penlink_dev_identify(penlink_dev *dev, uint32_t seconds, uint32_t *granted);

/** One chunk as received: the bytes to archive or write to a file. */
typedef struct penlink_chunk {
    uint64_t first_seq;    /**< seq of its first record */
    uint32_t record_count; /**< records in it */
    uint32_t raw_size;     /**< bytes of its records before compression */
    const uint8_t *data;   /**< zlib stream */
    size_t len;            /**< bytes of data */
    const uint8_t *frame;  /**< the whole frame it came in (header + Envelope) */
    size_t frame_len;      /**< bytes of frame */
    int has_link;          /**< from a pen that signs its log: the chain, already checked */
    uint8_t prev_link[PENLINK_LINK_SIZE]; /**< the chain before this chunk */
    uint8_t link[PENLINK_LINK_SIZE];      /**< the chain after it */
} penlink_chunk;

/** A pen's signed log head, checked with its device key (docs/protocol.md 9.3). */
typedef struct penlink_head {
    uint64_t next_seq;                         /**< the records up to here are covered */
    uint8_t link[PENLINK_LINK_SIZE];           /**< the chain after the last chunk sent */
    uint8_t signature[PENLINK_SIGNATURE_SIZE]; /**< Ed25519 by the device key */
    uint8_t device_key[PENLINK_KEY_SIZE];      /**< the key it verified with */
} penlink_head;

/**
 * Progress of a pull. The first call comes before any record, with the
 * totals the pen announced; then one after every chunk taken.
 */
typedef struct penlink_progress {
    uint64_t records;       /**< new records received so far */
    uint64_t bytes;         /**< bytes received so far */
    uint64_t records_total; /**< expected new records (from DeviceInfo), 0 if unknown */
    uint64_t next_seq;      /**< continue from here */
    uint64_t bytes_total;   /**< expected bytes, estimated from DeviceInfo's log_used_bytes
                                 for the records expected; 0 if unknown */
} penlink_progress;

/** Called with each chunk of a pull (penlink_pull_cb.on_chunk); non-zero stops it. */
typedef int (*penlink_chunk_cb)(void *user, const penlink_chunk *chunk);
/** Called with a pull's progress (penlink_pull_cb.on_progress). */
typedef void (*penlink_progress_cb)(void *user, const penlink_progress *p);
/** Called with each verified signed head (penlink_pull_cb.on_head); non-zero stops the pull. */
typedef int (*penlink_head_cb)(void *user, const penlink_head *head);
/** Called with each confirmed gap (penlink_pull_cb.on_gap); non-zero stops the pull. */
typedef int (*penlink_gap_cb)(void *user, uint64_t first_seq, uint64_t count, uint64_t acked_seq);

/**
 * Callbacks of a pull; any may be NULL. A non-zero return stops the pull.
 * The caller sets @c size (#PENLINK_PULL_CB_INIT does): members may be
 * added at the end, and the library reads only those @c size covers.
 */
typedef struct penlink_pull_cb {
    size_t size;                     /**< sizeof(penlink_pull_cb) as the caller was built */
    penlink_chunk_cb on_chunk;       /**< each chunk, checked */
    penlink_record_cb on_record;     /**< each record, only seq >= from_seq */
    penlink_progress_cb on_progress; /**< progress */
    void *user;                      /**< passed to each callback */
    /**
     * Optional: the records the pen sent before from_seq. The pen sends whole
     * stored chunks, so the first one may start before from_seq; a caller
     * that already holds those records (the archive) checks that they are
     * the same, which a pen whose log was reset or replaced fails.
     */
    penlink_record_cb on_overlap;
    /**
     * Optional: a signed head arrived and verified; every chunk and record
     * passed before it is covered by the pen's signature. The archive
     * commits here. Not called for a pen that does not sign its log.
     */
    penlink_head_cb on_head;
    /**
     * Optional: records @p first_seq .. @p first_seq + @p count - 1 are gone
     * from the pen, by its own word twice (a LogEnd and a DeviceInfo read
     * after it): dropped before anyone pulled them, or acknowledged before by
     * someone (@p acked_seq: the pen's log_acked_seq, every seq below it was
     * acknowledged). The pull goes on after them. A hole that the pen does not
     * confirm is never a gap: it is asked for again.
     */
    penlink_gap_cb on_gap;
    /**
     * Optional (may be NULL): the hash-chain link after the last chunk the
     * caller already holds, a chunk that ends at from_seq (32 bytes: the
     * link of its last verified head). From a pen that signs its log, the
     * first chunk must then follow it: one whose prev_link is another link,
     * or one that starts before from_seq (it seals again records the caller
     * holds in another chunk: the pen's chain forks from the stored one), is
     * an integrity error (alarm "unverified"), nothing of it passed on.
     */
    const uint8_t *after_link;
} penlink_pull_cb;

/** A penlink_pull_cb initialiser: its size set, no callback. */
#define PENLINK_PULL_CB_INIT                                                                       \
    {                                                                                              \
        .size = sizeof(penlink_pull_cb)                                                            \
    }

/**
 * What a pull saw. The caller sets @c size (#PENLINK_PULL_RESULT_INIT
 * does): fields may be added at the end, and the library writes only those
 * @c size covers.
 */
typedef struct penlink_pull_result {
    size_t size;        /**< sizeof(penlink_pull_result) as the caller was built */
    uint64_t from_seq;  /**< asked for */
    uint64_t first_seq; /**< first record received (> from_seq: a gap, records lost) */
    uint64_t next_seq;  /**< one past the last record received */
    uint64_t records;   /**< new records (seq >= from_seq) */
    uint64_t chunks;    /**< chunks received */
    uint64_t bytes;     /**< bytes received */
    uint64_t gap;       /**< records the pen said are gone (all gaps of the pull) */
    uint64_t retries;   /**< replies asked for again (frames lost, damaged or late) */
} penlink_pull_result;

/** A penlink_pull_result initialiser: its size set. */
#define PENLINK_PULL_RESULT_INIT                                                                   \
    {                                                                                              \
        .size = sizeof(penlink_pull_result)                                                        \
    }

/**
 * Pulls every record from @p from_seq on. Every chunk is checked (CRC,
 * sizes, counts, sequence, and from a pen that signs its log the hash chain
 * and the signed heads) before its callbacks run; records before
 * @p from_seq (a stored chunk starts earlier) go to on_overlap, not on_record.
 * A reply with frames refused, missing, doubled, reordered or late is asked
 * for again from the first record not taken (a few times in a row at most);
 * a hole becomes a gap (on_gap) only when the pen confirms it. The pull is
 * bounded by the log_next_seq the pen announced plus a margin.
 * Nothing is acknowledged: call penlink_dev_ack() through next_seq - 1 once
 * the records are stored.
 * @return #PENLINK_OK; #PENLINK_ERR_PROTOCOL or #PENLINK_ERR_TIMEOUT when the
 *         replies stayed damaged or the pen broke the protocol (seqs at or
 *         above 2^63, empty chunks); #PENLINK_ERR_INTEGRITY when the pen
 *         contradicts itself or its log fails the chain or signature checks;
 *         #PENLINK_ERR_DEVICE when the pen refused or does not pull logs;
 *         #PENLINK_ERR_GONE; #PENLINK_ERR_CANCELLED; #PENLINK_ERR_NO_MEM;
 *         #PENLINK_ERR_INVALID_ARG (@p dev NULL, or @p cb or @p result
 *         without its size).
 */
PENLINK_API int penlink_dev_pull(penlink_dev *dev, uint64_t from_seq, const penlink_pull_cb *cb,
                                 penlink_pull_result *result);

/**
 * Tells the pen every record up to @p through_seq is durably stored; the pen
 * may then erase them. *@p acked_seq (may be NULL) gets the pen's answer: the
 * first seq it has not acknowledged, which must be @p through_seq + 1 (or
 * the pen's earlier acknowledgement when that was already higher).
 * @return #PENLINK_OK; #PENLINK_ERR_DEVICE when the pen acknowledged less (it
 *         keeps the records: nothing is lost); #PENLINK_ERR_INTEGRITY when it
 *         claims more than it was told (it may erase records no one stored);
 *         #PENLINK_ERR_INVALID_ARG (@p dev NULL, a seq at or above 2^63 - 1,
 *         or one the pen refuses as at or past the end of its log: nothing is
 *         acknowledged, penlink_dev_error() has the pen's words); the
 *         statuses of a request (#PENLINK_ERR_TIMEOUT, #PENLINK_ERR_GONE,
 *         #PENLINK_ERR_PROTOCOL, #PENLINK_ERR_DEVICE, #PENLINK_ERR_CANCELLED) and
 *         of penlink_dev_info() when the pen's state was not read yet.
 */
PENLINK_API int penlink_dev_ack(penlink_dev *dev, uint64_t through_seq, uint64_t *acked_seq);

/* ---- the archive ------------------------------------------------------ */

/**
 * The archive: every record a pen ever logged, exactly once, durably (SQLite
 * by default, WAL, synced before any acknowledgement), with the raw chunks
 * as received, the devices, the pulls, integrity alarms, and an append-only
 * configuration history.
 */
typedef struct penlink_archive penlink_archive;

/**
 * Where the archive lives by default: $XDG_DATA_HOME/penlink/archive.db
 * (~/.local/share/penlink/archive.db). Writes the path to @p buf.
 * @return #PENLINK_OK; #PENLINK_ERR_NOT_FOUND (neither XDG_DATA_HOME nor HOME
 *         is set); #PENLINK_ERR_INVALID_ARG (@p buf NULL, or @p cap too small).
 */
PENLINK_API int penlink_archive_default_path(char *buf, size_t cap);

/**
 * Opens the archive at @p path (NULL: $PENLINK_ARCHIVE, else the default
 * path) for writing, creating it and its directory if needed and migrating
 * an older schema. Nothing is written to the file before it is known to be
 * a penlink archive (PRAGMA application_id, or an earlier penlink's tables)
 * of a schema this penlink handles: another program's SQLite file or a
 * newer schema is #PENLINK_ERR_UNSUPPORTED and stays byte for byte as it
 * was. A damaged file is #PENLINK_ERR_INTEGRITY with a message that says
 * how to recover. Pulls that an earlier penlink left 'running' (it was
 * killed) are marked 'interrupted' when no other connection has the archive
 * open.
 *
 * A @p path that is a PostgreSQL connection string (postgresql://...,
 * postgres://..., or keyword=value such as service=NAME) opens the archive
 * on that server instead (docs/fleet.md); its password comes from libpq's
 * own means (~/.pgpass, PGPASSFILE, a service file), never from @p path
 * (#PENLINK_ERR_INVALID_ARG). The server's schema is recognised by its own
 * identity (the schema penlink and its schema_version table): a server
 * schema newer than this library is #PENLINK_ERR_UNSUPPORTED, and left
 * untouched.
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (NULL, no path and no default,
 *         a password in a connection string); #PENLINK_ERR_IO (cannot be
 *         created, opened or reached); #PENLINK_ERR_UNSUPPORTED;
 *         #PENLINK_ERR_INTEGRITY; #PENLINK_ERR_NO_MEM.
 */
PENLINK_API int penlink_archive_open(penlink_ctx *ctx, const char *path, penlink_archive **out);

/**
 * Opens an existing archive for reading only (audit, export, verify): the
 * file is never written, so a read-only copy or medium works. SQLite's
 * read-only mode is used (beside a WAL archive it may create the -shm and
 * -wal files a reader needs, where the directory allows); on read-only media
 * with no log to fold in, the file is read as immutable; a WAL archive whose
 * -wal holds data that cannot be read there is #PENLINK_ERR_IO with what to
 * do. An older schema is migrated in a private temporary copy. Functions
 * that write return #PENLINK_ERR_INVALID_ARG on the handle.
 *
 * On a PostgreSQL server (@p path a connection string, as for
 * penlink_archive_open()) the session is read-only (the server refuses
 * every write in it), the schema must exist, and one older than this
 * library is read as it is, never migrated (what it lacks reads as empty).
 * Any role that may read the schema will do: the reader role of
 * penlink_archive_init_server(), or any role on a standby.
 * @return #PENLINK_OK; #PENLINK_ERR_IO (missing, empty, unreadable);
 *         #PENLINK_ERR_UNSUPPORTED (not a penlink archive, newer schema);
 *         #PENLINK_ERR_INTEGRITY (damaged); #PENLINK_ERR_INVALID_ARG (@p ctx or
 *         @p out NULL); #PENLINK_ERR_NO_MEM.
 */
PENLINK_API int penlink_archive_open_readonly(penlink_ctx *ctx, const char *path,
                                              penlink_archive **out);

/**
 * Whether what the archive behind @p ar holds could be added to from here,
 * however @p ar was opened: for a file, the kernel lets this process write
 * the file and its directory (where the -wal and -shm files go), so a
 * read-only copy, mount or medium is 0; on a PostgreSQL server, the session
 * is on a primary (not a standby) and its role may insert into the archive
 * (the writer role, not the reader role). verify records its verdicts only
 * where this is 1, and config set changes a pen only where this is 1.
 * *@p writable gets 1 or 0; when 0, penlink_ctx_errmsg() says why.
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (@p ar or @p writable NULL).
 */
PENLINK_API int penlink_archive_writable(penlink_archive *ar, int *writable);

/**
 * Opens an archive that must already exist (for reading it: audit, export),
 * so that a mistyped path is an error (#PENLINK_ERR_IO) instead of a new,
 * empty archive that reports nothing.
 * @return as penlink_archive_open(): #PENLINK_OK, #PENLINK_ERR_INVALID_ARG,
 *         #PENLINK_ERR_IO (also: no such file), #PENLINK_ERR_UNSUPPORTED,
 *         #PENLINK_ERR_INTEGRITY, #PENLINK_ERR_NO_MEM.
 */
PENLINK_API int penlink_archive_open_existing(penlink_ctx *ctx, const char *path,
                                              penlink_archive **out);
/** Closes an archive (NULL is fine): what was committed stays. */
PENLINK_API void penlink_archive_close(penlink_archive *ar);

/**
 * Sets up a PostgreSQL server for a shared archive (docs/fleet.md): the
 * schema "penlink", created or migrated to this version; a @p writer_role
 * (SELECT and INSERT only: technicians' and docking stations' logins) and a
 * @p reader_role (SELECT, and INSERT of notes on findings only: auditors'),
 * both NOLOGIN, created unless they exist; the grants. Safe to run again (after an upgrade, it
 * migrates). Run it as the database's owner. @p uri: a libpq connection URI (postgresql://...) or
 * keyword/value string (service=NAME).
 * @p report gets one line in words per thing done (may be NULL).
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (not a server, a password
 *         in @p uri, two equal role names); #PENLINK_ERR_IO (unreachable,
 *         not allowed); #PENLINK_ERR_UNSUPPORTED (a newer schema);
 *         #PENLINK_ERR_NO_MEM.
 */
PENLINK_API int penlink_archive_init_server(penlink_ctx *ctx, const char *uri,
                                            const char *writer_role, const char *reader_role,
                                            penlink_text_cb report, void *user);

/** What penlink_archive_push() did with one pen. */
typedef struct penlink_push_report {
    char serial[PENLINK_SERIAL_SIZE]; /**< the pen */
    /** #PENLINK_OK; #PENLINK_ERR_INTEGRITY when the pen's log in the source does not
     *  verify (what verified before the break was pushed: see where_seq and detail),
     *  when the destination holds other content for some of its records (conflicts),
     *  or pinned another device key for its serial (nothing pushed); a log of
     *  which no signed head verified leaves @p to unchanged, even its key unpinned */
    int status;
    uint64_t records_new;  /**< records the destination did not hold */
    uint64_t records_same; /**< records it held already, equal */
    uint64_t conflicts;    /**< records it held with other content (kept; alarm there) */
    uint64_t chunks_new;   /**< chunks the destination did not hold */
    uint64_t heads_new;    /**< signed heads it did not hold */
    uint64_t alarms_new;   /**< alarms it did not hold */
    uint64_t configs_new;  /**< configuration history entries it did not hold */
    uint64_t next_seq;     /**< one past the highest seq pushed (0: none) */
    uint64_t where_seq;    /**< a log that does not verify: the seq of its first broken link */
    char detail[PENLINK_DETAIL_SIZE]; /**< why the status is not #PENLINK_OK, in words */
    uint64_t keys_new; /**< device key replacements (penlink keys replace) it did not hold */
} penlink_push_report;

/** Called with each pen's push report; non-zero stops the push. */
typedef int (*penlink_push_report_cb)(void *user, const penlink_push_report *r);

/**
 * Pushes the pens of archive @p from (@p serial, or every pen when NULL)
 * into archive @p to: a laptop's SQLite archive into a clinic chain's
 * server after a site was offline (docs/fleet.md). For each pen, its log is
 * walked with the checks of penlink_archive_verify() (each chunk's hash
 * link and place in the chain, each signed head against the pen's pinned
 * key, each record against its chunk), and only what verified goes to @p to:
 * the chunks, the records as their chunks carry them, the signed heads, the
 * alarms and the configuration history. Committed at signed heads, like a
 * pull, under the same per-pen lock as a pull.
 *
 * Idempotent and resumable: what @p to holds already is recognised and not
 * stored twice (a push that stores nothing leaves @p to unchanged), and a
 * push stopped at any point is completed by running it again. A record that
 * @p to holds with other content is never overwritten: it raises alarm
 * "conflict" there; a log that does not verify raises alarm "unverified"
 * there, and names the place (pen, seq, what failed); a serial pinned to
 * another device key in @p to raises "key_changed" and nothing of that pen
 * is pushed.
 *
 * @p cb (may be NULL) gets one report per pen, in serial order; a non-zero
 * return stops the push (#PENLINK_ERR_CANCELLED).
 * @return #PENLINK_OK when every pen pushed cleanly; #PENLINK_ERR_INTEGRITY
 *         when one did not (the others are pushed; the first such pen is in
 *         penlink_ctx_errmsg()); #PENLINK_ERR_INVALID_ARG for one archive
 *         pushed into itself (or a NULL argument); #PENLINK_ERR_NO_MEM; or
 *         what an archive returned (#PENLINK_ERR_IO:
 *         unreachable, not allowed, gone mid-push; what was committed stays).
 */
PENLINK_API int penlink_archive_push(penlink_archive *from, penlink_archive *to, const char *serial,
                                     penlink_push_report_cb cb, void *user);

/**
 * What penlink_archive_pull() did. The caller sets @c size
 * (#PENLINK_ARCHIVE_PULL_RESULT_INIT does): fields may be added at the end,
 * and the library writes only those @c size covers.
 */
typedef struct penlink_archive_pull_result {
    size_t size;                      /**< sizeof(penlink_archive_pull_result) as the caller
                                           was built */
    char serial[PENLINK_SERIAL_SIZE]; /**< the pen */
    uint64_t from_seq;                /**< first seq asked for (one past the archive's last) */
    uint64_t next_seq;                /**< one past the last record now archived */
    uint64_t records_new;             /**< records added to the archive */
    uint64_t records_dup;             /**< re-received, identical: harmless */
    uint64_t conflicts;               /**< re-received with different content: integrity alarms */
    uint64_t gap;                     /**< records the pen no longer had (lost before any pull) */
    uint64_t overflows;               /**< log_overflow records received */
    uint64_t chunks;                  /**< chunks received */
    uint64_t acked_seq;       /**< the pen's first unacknowledged seq after the pull (when the
                                   pull fails: as the pen said at its start) */
    uint64_t retries;         /**< replies asked for again (frames lost, damaged or late) */
    uint64_t pen_next_seq;    /**< the pen's log_next_seq at the start of the pull: records from
                                   next_seq up to here were on the pen and not yet archived */
    uint64_t ack_unconfirmed; /**< when the pull failed at its acknowledgement, sent but not
                                   answered (the pen went silent or away): the pen was told
                                   it may erase every record below this seq and may have done
                                   so (all of them are archived); 0 otherwise */
} penlink_archive_pull_result;

/** A penlink_archive_pull_result initialiser: its size set. */
#define PENLINK_ARCHIVE_PULL_RESULT_INIT                                                           \
    {                                                                                              \
        .size = sizeof(penlink_archive_pull_result)                                                \
    }

/**
 * Pulls @p dev into the archive: from the archive's last seq for that pen,
 * committing (synced) as it goes, then acknowledging only what is committed.
 * Interrupted at any point, nothing is lost and the next pull resumes.
 * @p cb: only on_progress is used (may be NULL).
 * @return #PENLINK_OK, or #PENLINK_ERR_INTEGRITY when a conflict was found
 *         (everything else is still archived and reported in @p res);
 *         #PENLINK_ERR_INVALID_ARG (@p ar or @p dev NULL, @p cb or @p res
 *         without its size); #PENLINK_ERR_DEVICE when the pen refused to
 *         acknowledge the records it had just sent (they are archived and
 *         stay on the pen); or what the pull (penlink_dev_pull()) or the
 *         archive returned (#PENLINK_ERR_IO: cannot be written).
 */
PENLINK_API int penlink_archive_pull(penlink_archive *ar, penlink_dev *dev,
                                     const penlink_pull_cb *cb, penlink_archive_pull_result *res);

/**
 * Which records a scan visits: #PENLINK_ARCHIVE_FILTER_INIT (or a NULL
 * filter) selects all. The caller sets @c size: members may be added at the
 * end, and the library reads only those @c size covers.
 */
typedef struct penlink_archive_filter {
    size_t size;        /**< sizeof(penlink_archive_filter) as the caller was built */
    const char *serial; /**< one pen, or NULL for all */
    int64_t since_ms;   /**< with has_since: records at or after (pen time) */
    int64_t until_ms;   /**< with has_until: records before */
    int has_since;      /**< since_ms applies */
    int has_until;      /**< until_ms applies */
} penlink_archive_filter;

/** A penlink_archive_filter initialiser: its size set, every pen and time selected. */
#define PENLINK_ARCHIVE_FILTER_INIT                                                                \
    {                                                                                              \
        .size = sizeof(penlink_archive_filter)                                                     \
    }

/** A record with the pen it came from. */
typedef int (*penlink_archive_record_cb)(void *user, const char *serial, const penlink_record *rec);

/**
 * Visits the archived records, ordered by pen serial, then seq. The serial
 * passed is one pointer for all the records of a pen and another for the
 * next pen (valid during the callback): comparing pointers tells a new pen.
 * A row that cannot be a record (a damaged or edited archive, a seq at or
 * above 2^63 stored by an earlier penlink) is skipped and the scan goes on
 * through every other record of every pen; it then returns
 * #PENLINK_ERR_INTEGRITY naming the first such row. (The audit does not
 * read the rows: it takes the records from the pens' chunks.)
 * @return #PENLINK_OK; #PENLINK_ERR_INTEGRITY; #PENLINK_ERR_INVALID_ARG (NULL
 *         @p ar or @p cb, or @p f without its size); #PENLINK_ERR_CANCELLED
 *         (@p cb returned non-zero); #PENLINK_ERR_IO (the archive cannot be read).
 */
PENLINK_API int penlink_archive_scan(penlink_archive *ar, const penlink_archive_filter *f,
                                     penlink_archive_record_cb cb, void *user);

/** An integrity alarm or a gap, as recorded during pulls. */
typedef struct penlink_alarm {
    char serial[PENLINK_SERIAL_SIZE]; /**< the pen */
    int64_t at_ms;                    /**< host time it was raised */
    uint64_t seq;                     /**< first seq concerned */
    uint64_t count;                /**< records concerned (0: none archived, e.g. a refused pull) */
    char kind[PENLINK_LABEL_SIZE]; /**< "gap", "conflict", "key_changed", "unverified", or a newer
                                      kind */
    char detail[PENLINK_TEXT_SIZE]; /**< what happened, in words */
} penlink_alarm;

/** Called with each alarm; non-zero stops the visit. */
typedef int (*penlink_alarm_cb)(void *user, const penlink_alarm *a);

/**
 * Visits the alarms (gaps, conflicts) of the pens the filter selects.
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (NULL @p ar or @p cb, or @p f
 *         without its size); #PENLINK_ERR_CANCELLED (@p cb returned non-zero);
 *         #PENLINK_ERR_NO_MEM; #PENLINK_ERR_IO (the archive cannot be read).
 */
PENLINK_API int penlink_archive_alarms(penlink_archive *ar, const penlink_archive_filter *f,
                                       penlink_alarm_cb cb, void *user);

/** A configuration revision known for a pen (read from or written to it). */
typedef struct penlink_config_entry {
    char serial[PENLINK_SERIAL_SIZE]; /**< the pen */
    int64_t at_ms;                    /**< host time it was recorded */
    char source[PENLINK_SOURCE_SIZE]; /**< "read" or "written" */
    char user[PENLINK_NAME_SIZE];     /**< the OS user that recorded it */
    char host[PENLINK_NAME_SIZE];     /**< the computer it was recorded on */
    penlink_config config;            /**< config.revision is the revision */
    int has_old;                      /**< a change written by this host: old_config is what it
                                           replaced */
    penlink_config old_config;        /**< the revision in force before (old_config.revision) */
} penlink_config_entry;

/** Called with each configuration history entry; non-zero stops the visit. */
typedef int (*penlink_config_entry_cb)(void *user, const penlink_config_entry *e);

/**
 * Appends to the configuration history (never updated or deleted).
 * @return #PENLINK_OK (also when the archive has no pen @p serial: then
 *         nothing is stored); #PENLINK_ERR_INVALID_ARG (NULL, or an archive
 *         opened read-only); #PENLINK_ERR_IO (cannot be written, or "not
 *         allowed" on a server).
 */
PENLINK_API int penlink_archive_log_config(penlink_archive *ar, const char *serial,
                                           const char *source, const penlink_config *old_cfg,
                                           const penlink_config *new_cfg);

/**
 * Records a configuration this host wrote to a pen (source "written", with
 * the OS user and host), making the pen's row if the archive has none yet.
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (NULL, @p info without its
 *         size, or an archive opened read-only); #PENLINK_ERR_IO (cannot be
 *         written, or "not allowed" on a server).
 */
PENLINK_API int penlink_archive_log_config_write(penlink_archive *ar, const penlink_info *info,
                                                 const penlink_config *old_cfg,
                                                 const penlink_config *new_cfg);

/**
 * Visits the configuration history of @p serial (NULL: every pen) in order of entry.
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (NULL @p ar or @p cb);
 *         #PENLINK_ERR_CANCELLED (@p cb returned non-zero); #PENLINK_ERR_IO
 *         (the archive cannot be read).
 */
PENLINK_API int penlink_archive_config_history(penlink_archive *ar, const char *serial,
                                               penlink_config_entry_cb cb, void *user);

/**
 * Checks that the archive holds pen @p serial, spelled exactly so: a mistyped
 * serial must not select nothing and pass for a clean result.
 * @param ar the archive
 * @param serial the serial to look for
 * @param close (may be NULL) gets the archive's serial closest to @p serial
 *        (the same but for case, or a typo or two away), or "" when none is.
 * @return #PENLINK_OK; #PENLINK_ERR_NOT_FOUND, with the archive's pens (up to
 *         20) and the close one in penlink_ctx_errmsg();
 *         #PENLINK_ERR_INVALID_ARG (@p ar or @p serial NULL); or an error reading.
 */
PENLINK_API int penlink_archive_pen_check(penlink_archive *ar, const char *serial,
                                          char close[PENLINK_SERIAL_SIZE]);

/**
 * A note an auditor added to a finding (penlink_archive_annotate()): kept in
 * the archive for good, never changed or deleted, shown with the finding.
 */
typedef struct penlink_annotation {
    char finding[PENLINK_ID_SIZE];  /**< the finding's id, penlink_finding.id: "KIND:PEN:SEQ" */
    int64_t at_ms;                  /**< host time it was written */
    char author[PENLINK_NAME_SIZE]; /**< who wrote it, as they gave it (default: user\@host) */
    char user[PENLINK_NAME_SIZE];   /**< the OS user that wrote it */
    char host[PENLINK_NAME_SIZE];   /**< the computer it was written on */
    char text[PENLINK_NOTE_SIZE];   /**< the note */
} penlink_annotation;

/** Called with each annotation; non-zero stops the visit. */
typedef int (*penlink_annotation_cb)(void *user, const penlink_annotation *a);

/**
 * Adds an annotation to the finding @p finding ("KIND:PEN:SEQ", as
 * penlink_finding.id gives it) by @p author (NULL: the OS user\@host), with
 * the host time. Annotations are append-only: nothing changes or deletes
 * one. The finding is not looked up (an audit of another window may not
 * show it): see penlink_audit_run() for the ids.
 * @return #PENLINK_OK, #PENLINK_ERR_INVALID_ARG (empty text or id, or too
 *         long), or an error writing.
 */
PENLINK_API int penlink_archive_annotate(penlink_archive *ar, const char *finding,
                                         const char *author, const char *text);

/**
 * Visits every annotation, oldest first.
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (NULL); #PENLINK_ERR_CANCELLED
 *         (@p cb returned non-zero); #PENLINK_ERR_IO (the archive cannot be read).
 */
PENLINK_API int penlink_archive_annotations(penlink_archive *ar, penlink_annotation_cb cb,
                                            void *user);

/** The pens in the archive (serial, model, first and last seen). */
typedef struct penlink_archive_device {
    char serial[PENLINK_SERIAL_SIZE];        /**< the pen */
    char model[PENLINK_SERIAL_SIZE];         /**< its model */
    char firmware_versions[PENLINK_ID_SIZE]; /**< every firmware version seen, ", " between them */
    int64_t first_seen_ms;                   /**< host time of its first pull */
    int64_t last_seen_ms;                    /**< host time of its last pull */
    uint64_t records;                        /**< records archived */
    uint64_t next_seq;                       /**< one past its highest archived seq */
    char hardware_revision[PENLINK_SERIAL_SIZE]; /**< as the pen said when last seen */
} penlink_archive_device;

/** Called with each pen of the archive; non-zero stops the visit. */
typedef int (*penlink_archive_device_cb)(void *user, const penlink_archive_device *d);
/** Called with each serial of the archive; non-zero stops the visit. */
typedef int (*penlink_serial_cb)(void *user, const char *serial);

/**
 * Visits the pens in the archive, in serial order, each with its record count.
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (NULL); #PENLINK_ERR_CANCELLED
 *         (@p cb returned non-zero); #PENLINK_ERR_IO (the archive cannot be read).
 */
PENLINK_API int penlink_archive_devices(penlink_archive *ar, penlink_archive_device_cb cb,
                                        void *user);
/**
 * The serials of the pens in the archive, in byte order, as penlink_archive_devices()
 * lists them, without counting each pen's records (which reads them all).
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (NULL); #PENLINK_ERR_CANCELLED
 *         (@p cb returned non-zero); #PENLINK_ERR_NO_MEM; #PENLINK_ERR_IO (the
 *         archive cannot be read).
 */
PENLINK_API int penlink_archive_serials(penlink_archive *ar, penlink_serial_cb cb, void *user);

/* ---- replaced device keys (docs/technician-guide.md, docs/security.md) -- */

/**
 * A pen's device key replaced on purpose: a pen repaired at the factory
 * (RMA) comes back with its serial and its log, and a new device key. The
 * archive keeps these in an append-only table; the pulls then expect the
 * new key, and `penlink verify` checks the heads kept before the
 * replacement with the old key and those after it with the new one.
 * penlink_archive_key_replace() fills the caller's (@c size set:
 * #PENLINK_KEY_REPLACEMENT_INIT), only the members @c size covers.
 */
typedef struct penlink_key_replacement {
    size_t size; /**< sizeof(penlink_key_replacement) as the caller was built */
    char serial[PENLINK_SERIAL_SIZE];  /**< the pen */
    int64_t at_ms;                     /**< host time it was recorded */
    char user[PENLINK_NAME_SIZE];      /**< who recorded it (OS user) */
    char host[PENLINK_NAME_SIZE];      /**< on which computer */
    char reason[PENLINK_TEXT_SIZE];    /**< why, in the technician's words (unchecked text) */
    uint8_t old_key[PENLINK_KEY_SIZE]; /**< the key in force before */
    uint8_t new_key[PENLINK_KEY_SIZE]; /**< the key in force from then on */
    uint64_t from_seq;                 /**< the archive's next seq of the pen then */
    uint64_t heads_before; /**< signed heads the archive held then: they verify with old_key */
} penlink_key_replacement;

/** A penlink_key_replacement initialiser: its size set, every other member 0. */
#define PENLINK_KEY_REPLACEMENT_INIT                                                               \
    {                                                                                              \
        .size = sizeof(penlink_key_replacement)                                                    \
    }

/** Longest reason of a key replacement, bytes. */
#define PENLINK_KEY_REASON_MAX 255

/**
 * The device key the archive expects of @p serial now: the pinned key, or
 * the new key of its last replacement. *@p have = 0 when none is pinned
 * (a pen that does not sign its log).
 * @return #PENLINK_OK; #PENLINK_ERR_NOT_FOUND (no such pen in the archive);
 *         #PENLINK_ERR_INVALID_ARG (a NULL argument).
 */
PENLINK_API int penlink_archive_pen_key(penlink_archive *ar, const char *serial,
                                        uint8_t key[PENLINK_KEY_SIZE], int *have);

/**
 * Records that the pen @p info describes (its serial, the device key it
 * presents now) was given a new device key: who (the OS user), where (the
 * host), when, @p reason (1..#PENLINK_KEY_REASON_MAX bytes), the key in
 * force before and the new one. Never silent and never undone: a later
 * replacement is another row. *@p out (may be NULL) gets the row.
 * @return #PENLINK_OK; #PENLINK_ERR_NOT_FOUND (the archive has no such pen);
 *         #PENLINK_ERR_INVALID_ARG (an @p out without its size, no reason,
 *         the pen presents no key or
 *         the key already in force, or the archive pinned none);
 *         #PENLINK_ERR_INTEGRITY (the new key is, or was, another pen's, or
 *         was this pen's before: a clone, or a replaced key coming back; or
 *         the pen's log ends before the archive's last record of it: a reset
 *         log, or another pen); archive errors.
 */
PENLINK_API int penlink_archive_key_replace(penlink_archive *ar, const penlink_info *info,
                                            const char *reason, penlink_key_replacement *out);

/** Called with each key replacement; non-zero stops the visit. */
typedef int (*penlink_key_replacement_cb)(void *user, const penlink_key_replacement *r);

/**
 * Visits the key replacements of @p serial (NULL: every pen), in the order recorded.
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (NULL @p ar or @p cb);
 *         #PENLINK_ERR_CANCELLED (@p cb returned non-zero); #PENLINK_ERR_IO
 *         (the archive cannot be read).
 */
PENLINK_API int penlink_archive_key_replacements(penlink_archive *ar, const char *serial,
                                                 penlink_key_replacement_cb cb, void *user);

/* ---- verification (docs/security.md) ------------------------------------ */

/** Verification state of one pen's archived log. */
typedef enum penlink_verify_state {
    PENLINK_VERIFY_OK = 0,     /**< every chunk chains, every head verifies, every record matches */
    PENLINK_VERIFY_BROKEN = 1, /**< something was altered: see where and detail */
    PENLINK_VERIFY_UNSIGNED = 2, /**< the pen does not sign its log: nothing to check */
} penlink_verify_state;

/** The result for one pen. */
typedef struct penlink_verify_report {
    char serial[PENLINK_SERIAL_SIZE]; /**< the pen */
    penlink_verify_state state;       /**< the verdict */
    uint64_t chunks;                  /**< chunks checked */
    uint64_t records;                 /**< records checked */
    uint64_t heads;                   /**< signed heads checked */
    uint64_t signed_through;          /**< records below this seq are under a verified head */
    uint64_t where_seq;               /**< BROKEN: the seq of the first broken link */
    char detail[PENLINK_TEXT_SIZE];   /**< BROKEN: what is wrong, in words */
    char notes[PENLINK_TEXT_SIZE];    /**< OK: what is worth knowing (chain anchors, forks) */
} penlink_verify_report;

/** Called with each pen's verification report; non-zero stops the verification. */
typedef int (*penlink_verify_report_cb)(void *user, const penlink_verify_report *r);

/**
 * Re-checks the archive offline, pen by pen (@p serial, or every pen when
 * NULL): each chunk's bytes against its hash-chain link, each link against
 * the chunk before it, each stored head's signature against the pen's
 * pinned key, and each record row against the chunk that carries it. The
 * first broken link of each pen is named. Record rows that cannot be
 * records (a seq at or above 2^63, a body that is not a record) make their
 * pen BROKEN, whether it signs its log or not, and never stop the others.
 * On an archive opened for writing, where it can be written
 * (penlink_archive_writable()), the result is also stored in it
 * (append-only), which the audit shows; on one opened read-only nothing is
 * stored (penlink_archive_verification_save() can store it elsewhere).
 * @return #PENLINK_OK (see each report's state), #PENLINK_ERR_NOT_FOUND when
 *         the archive has no pen @p serial (penlink_archive_pen_check());
 *         #PENLINK_ERR_INVALID_ARG (@p ar NULL); #PENLINK_ERR_NO_MEM; or an
 *         error reading.
 */
PENLINK_API int penlink_archive_verify(penlink_archive *ar, const char *serial,
                                       penlink_verify_report_cb cb, void *user);

/**
 * Stores @p r, a report penlink_archive_verify() made (of this archive, or
 * of the same archive opened read-only), in the archive's verification log
 * (append-only). @return #PENLINK_OK; #PENLINK_ERR_NOT_FOUND (no such pen);
 * #PENLINK_ERR_INVALID_ARG (opened read-only); #PENLINK_ERR_IO (also: a
 * server role or standby that may not write, "not allowed").
 */
PENLINK_API int penlink_archive_verification_save(penlink_archive *ar,
                                                  const penlink_verify_report *r);

/**
 * A verification of a pen's log: the last one stored (penlink_archive_verification_get(),
 * *@p have = 0 when it was never verified), or one the audit computed itself
 * (penlink_audit_cb.on_verification: @p computed = 1, @p at_ms 0, @p have = 1 unless
 * the pen does not sign its log). penlink_archive_verification_get() fills
 * the caller's (@c size set: #PENLINK_VERIFICATION_INIT), only the members
 * @c size covers.
 */
typedef struct penlink_verification {
    size_t size;                      /**< sizeof(penlink_verification) as the caller was built */
    char serial[PENLINK_SERIAL_SIZE]; /**< the pen */
    int64_t at_ms;                    /**< host time it was stored; 0 when computed */
    char result[PENLINK_LABEL_SIZE];  /**< "ok", "broken", "unsigned" */
    uint64_t through_seq;             /**< ok: one past the last seq checked; broken: the
                                           first broken seq */
    uint64_t records;                 /**< records checked */
    uint64_t chunks;                  /**< chunks checked */
    char detail[PENLINK_TEXT_SIZE];   /**< what is wrong, or worth knowing, in words */
    int have;                         /**< 0: no verification stored (the other fields but
                                           serial, signed_through and pinned are 0) */
    uint64_t signed_through;          /**< stored: from the heads the pulls verified; computed: the
                                           records under a verified head */
    int pinned;                       /**< the archive holds the pen's device key */
    int computed;                     /**< 1: checked just now by the audit, read-only (nothing of a
                                           stored verdict is used) */
} penlink_verification;

/** A penlink_verification initialiser: its size set, every other member 0. */
#define PENLINK_VERIFICATION_INIT                                                                  \
    {                                                                                              \
        .size = sizeof(penlink_verification)                                                       \
    }

/**
 * The last verification of pen @p serial stored in the archive
 * (penlink_archive_verify(), penlink_archive_verification_save()) into
 * *@p out; out->have = 0 when the pen was never verified.
 * @return #PENLINK_OK; #PENLINK_ERR_INVALID_ARG (a NULL argument, an @p out
 *         without its size); #PENLINK_ERR_NOT_FOUND (no such pen in the
 *         archive); #PENLINK_ERR_IO (the archive cannot be read).
 */
PENLINK_API int penlink_archive_verification_get(penlink_archive *ar, const char *serial,
                                                 penlink_verification *out);

/* ---- the audit -------------------------------------------------------- */

/**
 * The audit reads the archive alone (no pen needed): each selected pen's
 * records from its chunks, in one pass that checks their hash chain and
 * signed heads as penlink_archive_verify() does (the pen's own words), plus
 * the alarms and the configuration history, so it works on any archive
 * backend. It reads no record row: an edited row changes no finding, and
 * comparing the rows with the chunks is penlink_archive_verify()'s job. Its
 * memory grows with the number of distinct cartridges, not with the number
 * of records.
 *
 * The filter's serial selects the pens; its time window (pen time) selects
 * what is reported: treatments that start in it, usage of those treatments,
 * and findings whose record lies in it (a reuse: when any of its treatments
 * does). Every record of the selected pens is still read, so a cartridge
 * used before the window and again inside it is a reuse, and the
 * configuration in force is known at the window's start.
 */

/** One treatment: from a treatment_start to its treatment_end. */
typedef struct penlink_treatment {
    const char *serial;        /**< the pen (valid during the callback) */
    uint64_t start_seq;        /**< its treatment_start record */
    uint64_t end_seq;          /**< the record that ended it */
    int64_t start_ms;          /**< pen time it started */
    int64_t end_ms;            /**< pen time it ended */
    uint64_t duration_ms;      /**< the pen's own figure when it logged the end */
    int ended;                 /**< 0: no treatment_end (power off, new start, log end) */
    uint32_t depth_min_um;     /**< shallowest depth used, micrometres */
    uint32_t depth_max_um;     /**< deepest depth used, micrometres */
    uint32_t depth_mean_um;    /**< time-weighted: each depth for as long as it was in force */
    uint32_t speed_min_sps;    /**< slowest speed used, strokes per second */
    uint32_t speed_max_sps;    /**< fastest speed used, strokes per second */
    uint64_t strokes;          /**< from the treatment_end record (0 without one) */
    uint64_t cartridge_serial; /**< the cartridge the treatment_start names */
    int has_cartridge;         /**< an accepted cartridge was in the pen */
    uint32_t cartridge_uses;   /**< the pen's use count of that cartridge (1 = fresh) */
    uint32_t config_revision;  /**< configuration in force at the start, 0 if unknown */
} penlink_treatment;

/** What a finding is about. Append-only. */
typedef enum penlink_finding_kind {
    PENLINK_FIND_REUSE = 1,            /**< a cartridge served more than one treatment */
    PENLINK_FIND_NO_CARTRIDGE = 2,     /**< a treatment started without an accepted cartridge */
    PENLINK_FIND_OUT_OF_LIMITS = 3,    /**< depth or duration outside the configuration */
    PENLINK_FIND_LIMITS_UNKNOWN = 4,   /**< treatments under a revision whose values are unknown */
    PENLINK_FIND_REFUSED = 5,          /**< the pen refused a used cartridge (it did its job) */
    PENLINK_FIND_GAP = 6,              /**< records the pen no longer had at a pull (alarm) */
    PENLINK_FIND_CONFLICT = 7,         /**< a record re-received with other content (alarm) */
    PENLINK_FIND_MISSING = 8,          /**< seqs missing inside the archive, no alarm for them */
    PENLINK_FIND_OVERFLOW = 9,         /**< a log_overflow record: the pen dropped records */
    PENLINK_FIND_CLOCK_BACKWARDS = 10, /**< time went back with no clock_set to explain it */
    PENLINK_FIND_CLOCK_JUMP = 11,      /**< a clock_set moved the clock by more than an hour */
    PENLINK_FIND_KEY_CHANGED = 12,     /**< a pen presented another device key (alarm) */
    PENLINK_FIND_UNVERIFIED = 13,      /**< a pull's chain or signature failed (alarm) */
    PENLINK_FIND_CONFIG_REFUSED = 14,  /**< the pen refused a configuration's signature */
    PENLINK_FIND_NO_RECORDS = 15,      /**< nothing to audit: no record of the selected pens
                                            in the window (or in the archive) */
    PENLINK_FIND_ALARM = 16,           /**< an integrity alarm of a kind this version does not
                                            know: penlink_finding.name is the alarm's kind */
    PENLINK_FIND_LOG_BROKEN = 17,      /**< the pen's archived log does not verify (the audit
                                            runs the checks of penlink_archive_verify() itself) */
    PENLINK_FIND_DAMAGED = 18,         /**< no longer made (the audit reads no record row: its
                                            records are the chunks'; penlink_archive_verify()
                                            names rows that cannot be records); kept for
                                            callers and older reports */
    PENLINK_FIND_CONFIG_CONFLICT = 19  /**< the archive's configuration history holds two
                                            different value sets for one revision (an edited
                                            history; config_revision: the first such revision,
                                            count: how many); limits are checked against the
                                            strictest of them */
} penlink_finding_kind;

/** Room for finding kinds in penlink_audit_summary.findings (kinds to come included). */
#define PENLINK_FIND_KINDS 32

/** "reuse", "no_cartridge", ..., or NULL for a kind this version does not know. */
PENLINK_API const char *penlink_finding_kind_name(uint32_t kind);

/** One treatment or record cited by a finding. */
typedef struct penlink_evidence {
    const char *serial; /**< the pen */
    uint64_t seq;       /**< the treatment_start (or the record) */
    int64_t time_ms;    /**< its pen time */
} penlink_evidence;

/**
 * A finding of the cartridge or integrity report. An integrity alarm (gap,
 * conflict, key_changed, unverified, or a newer kind) is one finding however
 * often it was raised, with the host times of its first and last raise; it
 * is reported when one of its raises, or a record it concerns, lies in the
 * window.
 */
typedef struct penlink_finding {
    uint32_t kind;                    /**< #penlink_finding_kind */
    const char *name;                 /**< the kind's name; for #PENLINK_FIND_ALARM the
                                           alarm's own ("signing_dropped") */
    const char *report;               /**< "cartridges" or "integrity" */
    int compliance;                   /**< 1: a compliance failure (reuse, no cartridge, out of
                                           limits, gap, conflict, missing, overflow) */
    const char *serial;               /**< the pen (a reuse: the pen of the first treatment) */
    uint64_t seq;                     /**< the record concerned (first seq of a gap) */
    int64_t time_ms;                  /**< its pen time (a gap: of the first record after it);
                                           0 for an alarm that concerns no archived record */
    uint64_t count;                   /**< records missing or dropped; treatments of a reuse or of
                                           an unknown revision */
    uint64_t cartridge_serial;        /**< REUSE, REFUSED, NO_CARTRIDGE, OUT_OF_LIMITS */
    uint32_t cartridge_uses;          /**< the pen's highest use count of that cartridge */
    uint32_t config_revision;         /**< OUT_OF_LIMITS, LIMITS_UNKNOWN */
    int64_t value;                    /**< CLOCK_*: ms; OUT_OF_LIMITS: the offending depth (µm) or
                                           duration (ms); CONFIG_REFUSED: the pen's error code */
    const penlink_evidence *evidence; /**< REUSE: every treatment, in pen and seq order */
    size_t n_evidence;                /**< entries of evidence */
    char detail[PENLINK_LONG_TEXT_SIZE]; /**< one sentence for people */
    int64_t raised_ms;        /**< alarms: host time of the first raise (0 for other findings) */
    int64_t raised_last_ms;   /**< alarms: host time of the last raise */
    uint64_t repeats;         /**< alarms: how often it was raised (0 for other findings) */
    char id[PENLINK_ID_SIZE]; /**< "KIND:PEN:SEQ" (name, serial, seq): names it for annotations */
    const penlink_annotation *annotations; /**< its annotations, oldest first */
    size_t n_annotations;                  /**< entries of annotations */
} penlink_finding;

/** How usage rows are grouped. */
typedef enum penlink_period {
    PENLINK_PERIOD_DAY = 0,  /**< days, "2026-01-31" (UTC, or local: penlink_audit_cb) */
    PENLINK_PERIOD_WEEK = 1, /**< ISO weeks from Monday, "2026-W05" */
    PENLINK_PERIOD_MONTH = 2 /**< months, "2026-01" */
} penlink_period;

/** Usage of one pen in one period (treatments counted where they start). */
typedef struct penlink_usage {
    const char *serial;              /**< the pen (valid during the callback) */
    char period[PENLINK_LABEL_SIZE]; /**< label, see #penlink_period */
    int64_t period_start_ms;         /**< its first instant, ms since the epoch */
    uint64_t treatments;             /**< treatments that started in the period */
    uint64_t treatment_ms;           /**< their summed durations */
    uint64_t cartridges;             /**< cartridges the pen accepted */
} penlink_usage;

/** What an audit concludes. */
typedef enum penlink_audit_verdict {
    PENLINK_VERDICT_PASS = 0,   /**< records were examined and no compliance finding was made */
    PENLINK_VERDICT_FAIL = 1,   /**< at least one compliance finding (nothing examined is one) */
    PENLINK_VERDICT_NOT_RUN = 2 /**< penlink_audit_run() returned an error: nothing is shown */
} penlink_audit_verdict;

/**
 * Totals and verdict of an audit run: every finding the audit made counts,
 * whichever of them a caller shows, so a report of one section still carries
 * the verdict of all. penlink_audit_run() fills the caller's (@c size set:
 * #PENLINK_AUDIT_SUMMARY_INIT), only the members @c size covers.
 */
typedef struct penlink_audit_summary {
    size_t size;                /**< sizeof(penlink_audit_summary) as the caller was built */
    uint64_t records;           /**< records read: every record of the selected pens */
    uint64_t pens;              /**< pens selected (the archive's, or the one asked) */
    uint64_t treatments;        /**< treatments in the window */
    uint64_t cartridges;        /**< distinct cartridge serials used */
    uint64_t reuses;            /**< #PENLINK_FIND_REUSE findings */
    uint64_t refusals;          /**< #PENLINK_FIND_REFUSED findings */
    uint64_t no_cartridge;      /**< #PENLINK_FIND_NO_CARTRIDGE findings */
    uint64_t out_of_limits;     /**< #PENLINK_FIND_OUT_OF_LIMITS findings */
    uint64_t limits_unknown;    /**< #PENLINK_FIND_LIMITS_UNKNOWN findings */
    uint64_t integrity;         /**< integrity findings (all kinds) */
    uint64_t compliance;        /**< findings with compliance = 1 */
    uint64_t records_in_window; /**< records whose pen time lies in the window: what the
                                     audit examined (0 is a #PENLINK_FIND_NO_RECORDS finding) */
    uint64_t findings[PENLINK_FIND_KINDS]; /**< findings per #penlink_finding_kind */
    /** The selected pens' logs the audit verified itself (penlink_audit_cb.on_verification)
     *  and found intact. */
    uint64_t logs_verified;
    uint64_t logs_broken;          /**< found broken (each a #PENLINK_FIND_LOG_BROKEN finding) */
    uint64_t logs_not_verified;    /**< always 0 now (kept for callers) */
    uint64_t logs_unsigned;        /**< of pens that do not sign their log */
    penlink_audit_verdict verdict; /**< #PENLINK_VERDICT_FAIL iff compliance > 0;
                                        #PENLINK_VERDICT_NOT_RUN whenever the run returned
                                        an error (the other figures are then partial) */
} penlink_audit_summary;

/** A penlink_audit_summary initialiser: its size set, every other member 0. */
#define PENLINK_AUDIT_SUMMARY_INIT                                                                 \
    {                                                                                              \
        .size = sizeof(penlink_audit_summary)                                                      \
    }

/** Called with each treatment of an audit. */
typedef int (*penlink_treatment_cb)(void *user, const penlink_treatment *t);
/** Called with each finding of an audit. */
typedef int (*penlink_finding_cb)(void *user, const penlink_finding *f);
/** Called with each usage row of an audit. */
typedef int (*penlink_usage_cb)(void *user, const penlink_usage *u);
/** Called with each selected pen's verification at the end of an audit. */
typedef int (*penlink_verification_cb)(void *user, const penlink_verification *v);

/**
 * Callbacks of an audit; any may be NULL. Pointers passed in are valid only
 * during the call. A non-zero return stops the audit (#PENLINK_ERR_CANCELLED).
 * Treatments come in pen and seq order; findings as they are found (reuses
 * once every pen was read, then broken logs and no_records); usage rows after
 * each pen; the verification of each selected pen at the end, in serial order.
 */
typedef struct penlink_audit_cb {
    size_t size;                       /**< sizeof(penlink_audit_cb) as the caller was built
                                            (#PENLINK_AUDIT_CB_INIT) */
    penlink_treatment_cb on_treatment; /**< each treatment */
    penlink_finding_cb on_finding;     /**< each finding */
    penlink_usage_cb on_usage;         /**< each usage row */
    void *user;                        /**< passed to each callback */
    penlink_period usage_by;           /**< grouping of the usage rows */
    int local_time;                    /**< 1: periods in the process's local time zone (TZ, see
                                            tzset()) instead of UTC */
    penlink_verification_cb on_verification; /**< each selected pen's log, verified */
} penlink_audit_cb;

/** A penlink_audit_cb initialiser: its size set, no callback, days in UTC. */
#define PENLINK_AUDIT_CB_INIT                                                                      \
    {                                                                                              \
        .size = sizeof(penlink_audit_cb)                                                           \
    }

/**
 * Audits the archive. @p f (may be NULL: everything) selects the pens and
 * the reporting window. @p sum (may be NULL) gets the totals.
 * An audit that examines no record (an empty archive, a pen without records,
 * a window with none) reports a #PENLINK_FIND_NO_RECORDS finding: nothing
 * examined is never a pass. Whatever it returns, *@p sum is written: on an
 * error its verdict is #PENLINK_VERDICT_NOT_RUN, never a pass.
 * @return #PENLINK_OK, #PENLINK_ERR_NOT_FOUND (no pen f->serial in the
 *         archive: see penlink_archive_pen_check()), #PENLINK_ERR_NO_MEM,
 *         #PENLINK_ERR_CANCELLED, #PENLINK_ERR_INVALID_ARG (@p ar NULL, @p f,
 *         @p cb or @p sum without its size), or what the archive returned (detail in
 *         penlink_ctx_errmsg()).
 */
PENLINK_API int penlink_audit_run(penlink_archive *ar, const penlink_archive_filter *f,
                                  const penlink_audit_cb *cb, penlink_audit_summary *sum);

#ifdef __cplusplus
} /* extern "C" */

/*
 * C++: the initialisers above are C (designated, or positional with every
 * member): C++ before C++20 has no designated initialisers, and g++ warns
 * about the members they leave out (-Wmissing-field-initializers). In C++
 * each is a value-initialised struct (every member 0) whose size is set,
 * the same value. A sized struct added above gets its line here too.
 */
template <typename T> inline T penlink_sized_init_()
{
    T v = T();
    v.size = sizeof(T);
    return v;
}
#undef PENLINK_DECODER_STATS_INIT
#define PENLINK_DECODER_STATS_INIT (penlink_sized_init_<penlink_decoder_stats>())
#undef PENLINK_FILE_HEADER_INIT
#define PENLINK_FILE_HEADER_INIT (penlink_sized_init_<penlink_file_header>())
#undef PENLINK_INFO_INIT
#define PENLINK_INFO_INIT (penlink_sized_init_<penlink_info>())
#undef PENLINK_CONFIG_INIT
#define PENLINK_CONFIG_INIT (penlink_sized_init_<penlink_config>())
#undef PENLINK_PULL_CB_INIT
#define PENLINK_PULL_CB_INIT (penlink_sized_init_<penlink_pull_cb>())
#undef PENLINK_PULL_RESULT_INIT
#define PENLINK_PULL_RESULT_INIT (penlink_sized_init_<penlink_pull_result>())
#undef PENLINK_ARCHIVE_PULL_RESULT_INIT
#define PENLINK_ARCHIVE_PULL_RESULT_INIT (penlink_sized_init_<penlink_archive_pull_result>())
#undef PENLINK_ARCHIVE_FILTER_INIT
#define PENLINK_ARCHIVE_FILTER_INIT (penlink_sized_init_<penlink_archive_filter>())
#undef PENLINK_AUDIT_CB_INIT
#define PENLINK_AUDIT_CB_INIT (penlink_sized_init_<penlink_audit_cb>())
#undef PENLINK_LIMITS_INIT
#define PENLINK_LIMITS_INIT (penlink_sized_init_<penlink_limits>())
#undef PENLINK_KEY_INIT
#define PENLINK_KEY_INIT (penlink_sized_init_<penlink_key>())
#undef PENLINK_KEY_REPLACEMENT_INIT
#define PENLINK_KEY_REPLACEMENT_INIT (penlink_sized_init_<penlink_key_replacement>())
#undef PENLINK_VERIFICATION_INIT
#define PENLINK_VERIFICATION_INIT (penlink_sized_init_<penlink_verification>())
#undef PENLINK_AUDIT_SUMMARY_INIT
#define PENLINK_AUDIT_SUMMARY_INIT (penlink_sized_init_<penlink_audit_summary>())
#endif /* __cplusplus */
#endif
