#define _POSIX_C_SOURCE 200809L
#include "plot.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int mkdir_p(const char *path, char *err, size_t errlen) {
    char buf[4096];
    if (strlen(path) >= sizeof buf) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                snprintf(err, errlen, "%s: cannot create directory (%s)", buf, strerror(errno));
                return -1;
            }
            *p = c;
            struct stat sb;
            if (stat(buf, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
                snprintf(err, errlen, "%s: exists and is not a directory", buf);
                return -1;
            }
            if (!c) break;
        }
    }
    return 0;
}
