/**
 * @file pl/limits.h
 * Bounds of what the wire carries that both sides apply: the pen when it
 * answers, the host when it reads and stores the answer (its public header
 * has its own copies, checked against these where the library is built).
 * The configuration's rules are pl/config_rules.h's.
 */
#ifndef PL_LIMITS_H
#define PL_LIMITS_H

/** Longest serial, in bytes (DeviceInfo.serial, HelloReply.serial). */
#define PL_SERIAL_MAX 32u
/** Longest model, hardware and firmware strings, in bytes. */
#define PL_IDENT_MAX 32u
/** Most config-signing keys a pen announces (DeviceInfo.config_keys). */
#define PL_CONFIG_KEYS_MAX 4u
/** Identify: how long a pen signals when not told, and at the most, in seconds. */
#define PL_IDENTIFY_DEFAULT_S 10u
#define PL_IDENTIFY_MAX_S 60u

#endif
