/* Traces: a transport that records what another moves, into pcapng (trace.c). */
#ifndef PENLINK_TRACE_H
#define PENLINK_TRACE_H

#include "transport.h"

typedef struct trace_file trace_file;

/** Creates (truncates) @p path and writes its section header. */
int trace_file_open(penlink_ctx *ctx, const char *path, trace_file **out);
/** Drops the caller's hold on the file (NULL is fine); the last one closes it. */
void trace_file_close(trace_file *tf);

/**
 * Wraps @p inner (now owned by *@p out) so that everything it moves is
 * recorded in @p tf as a new interface of the capture.
 */
/* NULL, or the sentence saying that a packet could not be written (the
 * trace stopped there; the operations that moved its bytes went on). */
const char *trace_file_error(const trace_file *tf);

int transport_trace_wrap(penlink_ctx *ctx, trace_file *tf, transport *inner, transport **out);

#endif
