/* The protocol test vectors of docs/protocol.md, built from the code. */
#ifndef PENLINK_VECTORS_H
#define PENLINK_VECTORS_H

#include <stddef.h>
#include <stdint.h>

#include "pl/record.h"

#define VEC_MAX 4096

typedef struct vector {
    const char *name;
    size_t (*build)(uint8_t *out); /* returns bytes written (<= VEC_MAX) */
} vector;

extern const vector vectors[];
extern const size_t n_vectors;

/* The three records of the chunk vectors. */
void vec_chunk_records(pl_record r[3]);

#endif
