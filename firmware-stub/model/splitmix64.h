/*
 * The simulator's one pseudo-random generator, SplitMix64 (Steele, Lea and
 * Flood, 2014): seeded runs of the usage model, the flash's power-cut damage
 * and the firmware tests all draw from it, so a seed names the same run
 * everywhere.
 */
#ifndef PENLINK_SPLITMIX64_H
#define PENLINK_SPLITMIX64_H

#include <stdint.h>

/* The next number from state *@p s (any value, advanced). */
static inline uint64_t splitmix64_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#endif
