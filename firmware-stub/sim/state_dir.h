/**
 * @file state_dir.h
 * penlink-sim's state directory (host only): whole files written so that a
 * kill or a crash at any moment leaves either the old or the new file, and
 * the lock that keeps a second simulator off a directory in use.
 */
#ifndef PENLINK_SIM_STATE_DIR_H
#define PENLINK_SIM_STATE_DIR_H

#include <stddef.h>
#include <sys/types.h>

/** Name of the lock file inside a state directory. */
#define SIM_LOCK_FILE "sim.lock"

/**
 * Replaces @p path with @p len bytes of @p data, atomically: a temporary file
 * in the same directory is written and fsync'ed, renamed over @p path, and
 * the directory is fsync'ed. A new file gets @p mode.
 * @return 0, or -1 with errno set (@p path unchanged).
 */
int sd_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/** fsyncs the directory that holds @p path (after a rename or a create). 0 or -1. */
int sd_sync_parent(const char *path);

/**
 * Takes the exclusive lock of state directory @p dir (flock on
 * dir/SIM_LOCK_FILE, which then holds the owner's pid) for as long as the
 * returned descriptor stays open. The lock goes with the process, however
 * it ends.
 * @return the descriptor; -2 when another process holds the lock (*@p holder
 *         its pid, or 0 when unknown); -1 on another error (errno set).
 */
int sd_lock(const char *dir, long *holder);

#endif
