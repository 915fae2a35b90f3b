#include "atomic_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_TAG ".bnorm-tmp."

/* dir receives the directory part of path ("." when there is none), and
 * the return value points at the base name inside path. */
static const char *split_path(const char *path, char *dir, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, cap, ".");
        return path;
    }
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    snprintf(dir, cap, "%.*s", (int)(n < cap ? n : cap - 1), path);
    return slash + 1;
}

/* Parses the digits at *p up to `stop`; returns -1 when there are none or
 * something else. */
static long long parse_digits(const char **p, char stop) {
    const char *s = *p;
    long long v = 0;
    if (*s < '0' || *s > '9') return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > 100000000000LL) return -1;
        v = v * 10 + (*s - '0');
    }
    if (*s != stop) return -1;
    *p = s + (stop ? 1 : 0);
    return v;
}

static long long temporary_pid(const char *name, const char *base) {
    size_t bl = strlen(base), tl = strlen(TMP_TAG);
    if (name[0] != '.' || strncmp(name + 1, base, bl) != 0 || strncmp(name + 1 + bl, TMP_TAG, tl))
        return -1;
    const char *p = name + 1 + bl + tl;
    long long pid = parse_digits(&p, '.');
    if (pid <= 0 || parse_digits(&p, '\0') < 0) return -1;
    return pid;
}

int atomic_file_is_temporary(const char *name, const char *base) {
    return temporary_pid(name, base) > 0;
}

/* Removes the temporaries of base left in dir by processes that no longer
 * exist (killed before their rename). Failures are ignored: a stale file
 * that cannot be removed harms nothing but space. */
static void remove_stale(const char *dir, const char *base) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long long pid = temporary_pid(e->d_name, base);
        if (pid <= 0 || pid == (long long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
        (void)unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

int atomic_file_open(atomic_file *af, const char *path, char *err, size_t errlen) {
    static atomic_uint serial;
    memset(af, 0, sizeof *af);
    if (!*path || strlen(path) >= sizeof af->path) {
        snprintf(err, errlen, "'%s': not a usable file name", path);
        return -1;
    }
    snprintf(af->path, sizeof af->path, "%s", path);
    char dir[ATOMIC_FILE_PATH_MAX];
    const char *base = split_path(path, dir, sizeof dir);
    struct stat st;
    int exists = stat(path, &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: is a directory", path);
        return -1;
    }
    if (exists && (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))) {
        if (!(af->f = fopen(path, "w"))) {
            snprintf(err, errlen, "%s: cannot write (%s)", path, strerror(errno));
            return -1;
        }
        return 0; /* in place: see the header */
    }
    if (exists && !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file, a FIFO or a character device", path);
        return -1;
    }
    if (!*base) {
        snprintf(err, errlen, "%s: names a directory, not a file", path);
        return -1;
    }
    struct stat ds;
    if (stat(dir, &ds) != 0 || !S_ISDIR(ds.st_mode)) {
        snprintf(err, errlen, "%s: directory %s does not exist", path, dir);
        return -1;
    }
    remove_stale(dir, base);
    int fd = -1;
    for (int attempt = 0; fd < 0 && attempt < 100; attempt++) {
        snprintf(af->tmp, sizeof af->tmp, "%s%s.%s" TMP_TAG "%ld.%u", dir,
                 strcmp(dir, "/") ? "/" : "", base, (long)getpid(), atomic_fetch_add(&serial, 1u));
        fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot create a file in %s (%s)", path, dir, strerror(errno));
        af->tmp[0] = 0;
        return -1;
    }
    /* A replaced file keeps its permissions. */
    if (exists) (void)fchmod(fd, st.st_mode & 07777);
    if (!(af->f = fdopen(fd, "wb"))) {
        snprintf(err, errlen, "%s: cannot write (%s)", path, strerror(errno));
        close(fd);
        unlink(af->tmp);
        af->tmp[0] = 0;
        return -1;
    }
    return 0;
}

int atomic_file_commit(atomic_file *af, char *err, size_t errlen) {
    if (!af->f) {
        snprintf(err, errlen, "%s: not open", af->path);
        return -1;
    }
    int in_place = !af->tmp[0];
    int ok = !ferror(af->f) && fflush(af->f) == 0, saved = errno;
    /* Devices and pipes have nothing to sync (fsync fails with EINVAL). */
    if (ok && !in_place && fsync(fileno(af->f)) != 0) ok = 0, saved = errno;
    if (fclose(af->f) != 0 && ok) ok = 0, saved = errno;
    af->f = NULL;
    if (ok && !in_place && rename(af->tmp, af->path) != 0) ok = 0, saved = errno;
    if (!ok) {
        snprintf(err, errlen, "%s: write failed (%s)", af->path,
                 saved ? strerror(saved) : "I/O error");
        if (!in_place) unlink(af->tmp);
        af->tmp[0] = 0;
        return -1;
    }
    if (!in_place) {
        char dir[ATOMIC_FILE_PATH_MAX];
        split_path(af->path, dir, sizeof dir);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd); /* some file systems refuse; the rename stands either way */
            close(dfd);
        }
    }
    af->tmp[0] = 0;
    return 0;
}

void atomic_file_abort(atomic_file *af) {
    if (af->f) fclose(af->f);
    af->f = NULL;
    if (af->tmp[0]) unlink(af->tmp);
    af->tmp[0] = 0;
}
