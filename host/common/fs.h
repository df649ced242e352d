/**
 * @file fs.h
 * File-system helpers shared by the library's writers of files (the
 * archive, key files) and the CLI (host/common is compiled into both).
 */
#ifndef PENLINK_COMMON_FS_H
#define PENLINK_COMMON_FS_H

#include <stddef.h>
#include <sys/types.h>

/**
 * mkdir -p of the directory part of @p path (everything before its last
 * '/'), each missing directory made with @p mode. Directories that exist
 * are left as they are. Returns 0, or -1 with errno set and the directory
 * that could not be made in @p failed (@p cap bytes; a path too long for the
 * helper's buffer is ENAMETOOLONG). A file where a directory should be is
 * ENOTDIR.
 */
int pc_mkdir_parents(const char *path, mode_t mode, char *failed, size_t cap);

#endif
