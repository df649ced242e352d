/* Sentences for pl_status codes, shared by the pen and the host. */
#include "pl/status.h"

const char *pl_status_str(int st)
{
    switch (st) {
    case PL_OK: return "success";
    case PL_NEED_MORE: return "more input needed";
    case PL_ERR_INVALID_ARG: return "invalid argument";
    case PL_ERR_NO_SPACE: return "output buffer too small";
    case PL_ERR_FRAME_MAGIC: return "not a frame start (bad magic)";
    case PL_ERR_FRAME_VERSION: return "unsupported framing version";
    case PL_ERR_FRAME_HEADER: return "frame header check mismatch";
    case PL_ERR_FRAME_TOO_LARGE: return "frame payload length above the maximum";
    case PL_ERR_FRAME_CRC: return "frame payload CRC mismatch";
    case PL_ERR_MESSAGE: return "payload is not a valid message";
    case PL_ERR_CHUNK_ZLIB: return "chunk data is not a valid zlib stream";
    case PL_ERR_CHUNK_TOO_LARGE: return "chunk uncompressed size above the limit";
    case PL_ERR_CHUNK_SIZE: return "chunk uncompressed size differs from the declared size";
    case PL_ERR_CHUNK_COUNT: return "chunk record count differs from the declared count";
    case PL_ERR_CHUNK_FORMAT: return "malformed record batch";
    case PL_ERR_CHUNK_RANGE: return "record value out of range for its field";
    case PL_ERR_CHUNK_SEQ: return "chunk sequence numbers inconsistent";
    case PL_ERR_ZLIB: return "zlib failure";
    case PL_ERR_CAPTURE: return "malformed capture file";
    case PL_ERR_CAPTURE_TOO_LARGE: return "capture block larger than the reader's limit";
    case PL_ERR_FRAME_SKIPPED:
        return "frame inside a refused frame skipped unchecked (resynchronisation budget spent)";
    default: return "unknown status";
    }
}
