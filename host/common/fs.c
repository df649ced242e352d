/* File-system helpers (fs.h). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fs.h"

/* mkdir(2) of @p dir, content with a directory that is already there. */
static int make_one(const char *dir, mode_t mode)
{
    if (mkdir(dir, mode) == 0)
        return 0;
    int err = errno;
    struct stat sb;
    if (err == EEXIST && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode))
        return 0;
    errno = err == EEXIST ? ENOTDIR : err;
    return -1;
}

int pc_mkdir_parents(const char *path, mode_t mode, char *failed, size_t cap)
{
    char dir[PATH_MAX];
    if (cap)
        failed[0] = '\0';
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) {
        snprintf(failed, cap, "%s", path);
        errno = ENAMETOOLONG;
        return -1;
    }
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0; /* no directory part, or the root */
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = make_one(dir, mode);
        *p = '/';
        if (rc != 0) {
            *p = '\0';
            snprintf(failed, cap, "%s", dir);
            return -1;
        }
    }
    if (make_one(dir, mode) != 0) {
        snprintf(failed, cap, "%s", dir);
        return -1;
    }
    return 0;
}
