/* Writing an output file so that a reader sees the old file or the whole new
 * one, never half of it, whatever happens to the writer.
 *
 * A regular file (or a path that does not exist yet) is written to a
 * temporary file beside it, named ".NAME.bnorm-tmp.PID.SERIAL", which is
 * flushed to disk and renamed over NAME; the directory is then synced so
 * that the rename itself survives a crash. The temporary's name is unique
 * per process and per call, so two writers of the same path never share
 * one: the last rename wins. A writer killed before its rename leaves its
 * temporary behind; the next atomic_file_open of the same path removes
 * every such temporary whose process is gone.
 *
 * A FIFO or character device (a pipe, /dev/stdout, /dev/null) cannot be
 * replaced by a rename: it is written in place, and write errors (such as
 * /dev/full's "No space left on device") are reported by the commit. A
 * directory or any other kind of file is refused. */
#ifndef BNORM_DATA_ATOMIC_FILE_H
#define BNORM_DATA_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

#define ATOMIC_FILE_PATH_MAX 4096

typedef struct {
    FILE *f;                             /* write here between open and commit */
    char path[ATOMIC_FILE_PATH_MAX];     /* the final name */
    char tmp[ATOMIC_FILE_PATH_MAX + 64]; /* the temporary's name; empty when in place */
} atomic_file;

/* Opens path for writing. Returns 0, or -1 with a message in err that names
 * path and what is wrong (a directory, a missing or unwritable directory). */
int atomic_file_open(atomic_file *af, const char *path, char *err, size_t errlen);

/* Flushes, syncs and renames into place. Returns 0, or -1 with a message
 * (and the temporary removed, the old file untouched). af is closed either
 * way. */
int atomic_file_commit(atomic_file *af, char *err, size_t errlen);

/* Closes and removes the temporary; the old file stays. A no-op on a closed
 * or zeroed atomic_file. */
void atomic_file_abort(atomic_file *af);

/* Whether name (a directory entry, no directory part) is a temporary that
 * atomic_file_open would make for the file named base. */
int atomic_file_is_temporary(const char *name, const char *base);

#endif
