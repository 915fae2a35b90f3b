/* data/atomic_file.c: a reader sees the old file or the whole new one; a
 * writer killed at any point leaves only a temporary that the next write of
 * the same path removes; FIFOs and devices are written in place, not
 * replaced; two writers of one path never share a temporary. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "atomic_file.h"
#include "check.h"
#include "checkpoint.h"
#include "safetensors.h"

static char dir[256];

/* Entries of dir other than . and .. whose name contains needle. */
static int count_entries(const char *needle) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strstr(e->d_name, needle)) n++;
    if (d) closedir(d);
    return n;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* A file of `bytes` bytes, each (i * 31 + seed) & 0xff, written through the helper in 4 KiB steps.
 */
static int write_pattern(const char *path, size_t bytes, int seed, char *err, size_t errlen) {
    atomic_file af;
    if (atomic_file_open(&af, path, err, errlen)) return -1;
    unsigned char buf[4096];
    for (size_t done = 0; done < bytes;) {
        size_t n = bytes - done < sizeof buf ? bytes - done : sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (unsigned char)((done + i) * 31 + (size_t)seed);
        if (fwrite(buf, 1, n, af.f) != n) {
            atomic_file_abort(&af);
            return -1;
        }
        done += n;
    }
    return atomic_file_commit(&af, err, errlen);
}

/* 1 when path holds exactly the pattern of (bytes, seed). */
static int holds_pattern(const char *path, size_t bytes, int seed) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t i = 0;
    int c, same = 1;
    while ((c = fgetc(f)) != EOF) {
        same &= i < bytes && c == (int)(unsigned char)(i * 31 + (size_t)seed);
        i++;
    }
    fclose(f);
    return same && i == bytes;
}

/* A save killed at several points: the old file or the complete new one is
 * there, and the next save removes what the killed one left. */
static void killed_writes(void) {
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/model.bin", dir);
    const size_t old_size = 1000, new_size = 24u << 20;
    CHECK(write_pattern(path, old_size, 1, err, sizeof err) == 0, "first write: %s", err);
    const long delays_us[] = {0, 50, 200, 1000, 3000, 10000, 30000, 100000};
    int saw_old = 0, saw_new = 0;
    for (size_t k = 0; k < sizeof delays_us / sizeof delays_us[0]; k++) {
        CHECK(write_pattern(path, old_size, 1, err, sizeof err) == 0, "reset: %s", err);
        pid_t pid = fork();
        if (pid == 0) _exit(write_pattern(path, new_size, 2, err, sizeof err) ? 1 : 0);
        sleep_us(delays_us[k]);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        int is_old = holds_pattern(path, old_size, 1), is_new = holds_pattern(path, new_size, 2);
        CHECK(is_old || is_new, "killed after %ld us: the file is neither the old nor the new one",
              delays_us[k]);
        saw_old += is_old, saw_new += is_new;
        /* At most the killed writer's temporary is left, and it is recognisable. */
        CHECK(count_entries("") - 1 == count_entries(".model.bin.bnorm-tmp."),
              "killed after %ld us: something other than a temporary was left", delays_us[k]);
        CHECK(count_entries(".model.bin.bnorm-tmp.") <= 1, "more than one temporary left");
    }
    CHECK(saw_old > 0, "no kill landed before the rename: the test proves nothing");
    /* The next write of the path removes the dead writers' temporaries. */
    CHECK(write_pattern(path, old_size, 3, err, sizeof err) == 0, "after kills: %s", err);
    CHECK(count_entries("bnorm-tmp") == 0, "stale temporaries were not removed");
    CHECK(holds_pattern(path, old_size, 3), "the write after the kills is wrong");
    (void)saw_new;
    remove(path);
}

/* A temporary of a process that is alive is left alone. */
static void live_temporary_kept(void) {
    char path[512], tmp[600], err[512];
    snprintf(path, sizeof path, "%s/live.csv", dir);
    snprintf(tmp, sizeof tmp, "%s/.live.csv.bnorm-tmp.%ld.7", dir, (long)getppid());
    FILE *f = fopen(tmp, "w");
    if (f) fclose(f);
    CHECK(write_pattern(path, 10, 1, err, sizeof err) == 0, "%s", err);
    CHECK(access(tmp, F_OK) == 0, "a live process's temporary was removed");
    remove(tmp), remove(path);
    CHECK(atomic_file_is_temporary(".a.csv.bnorm-tmp.12.0", "a.csv"), "name not recognised");
    CHECK(!atomic_file_is_temporary(".a.csv.bnorm-tmp.12.0", "b.csv"), "other base taken");
    CHECK(!atomic_file_is_temporary(".a.csv.bnorm-tmp.x.0", "a.csv"), "bad pid taken");
    CHECK(!atomic_file_is_temporary("a.csv.bnorm-tmp.12.0", "a.csv"), "no dot taken");
}

/* Non-regular targets: /dev/full reports its error, a FIFO stays a FIFO,
 * a directory is refused by name. */
static void special_targets(void) {
    char err[512] = "";
    atomic_file af;
    /* A private copy of /dev/full (as root), so that a broken writer can
     * only replace that one. */
    char full[512];
    snprintf(full, sizeof full, "%s/full", dir);
    if (mknod(full, S_IFCHR | 0666, makedev(1, 7)) == 0) {
        CHECK(atomic_file_open(&af, full, err, sizeof err) == 0, "open full: %s", err);
        for (int i = 0; i < 20000; i++)
            fputs("0123456789", af.f);
        CHECK(atomic_file_commit(&af, err, sizeof err) == -1, "full: write reported ok");
        CHECK(strstr(err, "No space left") && strstr(err, full), "full: '%s'", err);
        struct stat sb;
        CHECK(stat(full, &sb) == 0 && S_ISCHR(sb.st_mode), "the device was replaced");
        remove(full);
    } else {
        printf("not root: the full-device case is skipped\n");
    }
    char fifo[512];
    snprintf(fifo, sizeof fifo, "%s/pipe", dir);
    CHECK(mkfifo(fifo, 0600) == 0, "mkfifo: %s", strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        FILE *r = fopen(fifo, "r");
        char line[64] = "";
        int ok = r && fgets(line, sizeof line, r) && !strcmp(line, "through the pipe\n");
        _exit(ok ? 0 : 1);
    }
    CHECK(atomic_file_open(&af, fifo, err, sizeof err) == 0, "open FIFO: %s", err);
    fputs("through the pipe\n", af.f);
    CHECK(atomic_file_commit(&af, err, sizeof err) == 0, "FIFO commit: %s", err);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the reader did not get the line");
    struct stat sb;
    CHECK(stat(fifo, &sb) == 0 && S_ISFIFO(sb.st_mode), "the FIFO was replaced by a file");
    remove(fifo);
    CHECK(atomic_file_open(&af, dir, err, sizeof err) == -1 && strstr(err, "is a directory"),
          "directory: '%s'", err);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no/such/dir/x.csv", dir);
    CHECK(atomic_file_open(&af, missing, err, sizeof err) == -1 && strstr(err, "does not exist") &&
              strstr(err, "x.csv"),
          "missing directory: '%s'", err);
}

/* Two writers of one path at once: both succeed, and the file is one of
 * theirs, whole. */
static void concurrent_writers(void) {
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/same.csv", dir);
    for (int round = 0; round < 5; round++) {
        pid_t a = fork();
        if (a == 0) _exit(write_pattern(path, 300000, 4, err, sizeof err) ? 1 : 0);
        int mine = write_pattern(path, 200000, 5, err, sizeof err);
        int status;
        waitpid(a, &status, 0);
        CHECK(mine == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "round %d: a writer failed: %s", round, err);
        CHECK(holds_pattern(path, 300000, 4) || holds_pattern(path, 200000, 5),
              "round %d: the file is neither writer's", round);
    }
    CHECK(count_entries("bnorm-tmp") == 0, "temporaries left by writers that finished");
    remove(path);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/bnorm-atomic-%ld", (long)getpid());
    if (mkdir(dir, 0700) != 0) return 2;
    killed_writes();
    live_temporary_kept();
    special_targets();
    concurrent_writers();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 2;
    return check_finish();
}
