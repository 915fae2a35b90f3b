#include "read_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int read_whole_file(const char *path, size_t limit, const char *what, uint8_t **bytes, size_t *len,
                    char *err, size_t errlen) {
    *bytes = NULL, *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open (%s)", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "%s: is a directory", path);
        fclose(f);
        return -1;
    }
    int regular = S_ISREG(sb.st_mode);
    if (regular && (uint64_t)sb.st_size > (uint64_t)limit) {
        snprintf(err, errlen, "%s: larger than %zu bytes, not a %s this tool reads", path, limit,
                 what);
        fclose(f);
        return -1;
    }
    /* A pipe or device has no size: read up to the limit and see. */
    size_t cap = (regular ? (size_t)sb.st_size : limit) + 1;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory reading %zu bytes", path, cap - 1);
        fclose(f);
        return -1;
    }
    size_t got = fread(buf, 1, cap, f);
    int failed = ferror(f);
    fclose(f);
    if (failed || got > limit) {
        if (failed)
            snprintf(err, errlen, "%s: read failed", path);
        else
            snprintf(err, errlen, "%s: larger than %zu bytes, not a %s this tool reads", path,
                     limit, what);
        free(buf);
        return -1;
    }
    *bytes = buf, *len = got;
    return 0;
}
