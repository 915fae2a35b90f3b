/* Reading a whole input file into memory, its size checked before the
 * buffer is allocated. */
#ifndef BNORM_DATA_READ_FILE_H
#define BNORM_DATA_READ_FILE_H

#include <stddef.h>
#include <stdint.h>

/* Reads path whole into *bytes (free() it), *len bytes. A regular file
 * larger than limit is refused before anything is allocated; a pipe or
 * device is read up to limit + 1 bytes and refused beyond limit. Returns 0,
 * or -1 with a message naming path (cannot open, is a directory, too
 * large, read failed, out of memory); what names the kind of file in the
 * "too large" message ("model file", "image"). */
int read_whole_file(const char *path, size_t limit, const char *what, uint8_t **bytes, size_t *len,
                    char *err, size_t errlen);

#endif
