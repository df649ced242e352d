/**
 * @file grow.h
 * Growing arrays, for the library and the CLI (host/common is compiled into
 * both).
 */
#ifndef PENLINK_COMMON_GROW_H
#define PENLINK_COMMON_GROW_H

#include <stddef.h>

/**
 * Grows *@p pp, an array of @p size-byte items with room for *@p cap, to
 * hold at least @p need (doubling from 16, so that appending one at a time
 * costs amortised O(1)). Returns 0, or -1 with the array untouched when
 * memory runs out or @p need items of @p size bytes cannot be counted.
 */
int pc_grow(void *pp, size_t *cap, size_t need, size_t size);

#endif
