/* File-system helpers shared by the engine: folders made on demand, and the identity of a path
 * (what two spellings of one file have in common). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

int tsr__mkdir_p(const char *dir, unsigned mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, (mode_t)mode) && errno != EEXIST)
                return -1;
            *p = '/';
        }
    if (mkdir(tmp, (mode_t)mode) && errno != EEXIST)
        return -1;
    struct stat st;
    if (stat(tmp, &st) || !S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

void tsr__dir_of(const char *path, char *dir, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, len, ".");
    else if (slash == path)
        snprintf(dir, len, "/");
    else
        snprintf(dir, len, "%.*s", (int)(slash - path), path);
}

int tsr__path_key(const char *path, char *key, size_t len)
{
    char *real = realpath(path, NULL);
    if (real) { /* an existing file: links and ".." resolved */
        snprintf(key, len, "%s", real);
        free(real);
        return 0;
    }
    /* A file still to be written: its folder resolved, if that exists, and its name. */
    char dir[PATH_MAX];
    tsr__dir_of(path, dir, sizeof dir);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!(real = realpath(dir, NULL)))
        return -1;
    snprintf(key, len, "%s/%s", strcmp(real, "/") ? real : "", base);
    free(real);
    return 0;
}
