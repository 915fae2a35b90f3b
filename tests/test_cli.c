/* The bnorm command end to end on a tiny generated dataset (IDX, gzip):
 * every subcommand's exit code, --help, bad options and bad files, the files
 * it writes (model, CSV, plot) and that it leaves no partial file behind. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "image.h"

static const char *bnorm;
static char dir[256], out_path[300], err_path[300];
static char out_text[65536], err_text[65536], last_args[2048];

static void slurp(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
}

/* Runs bnorm with the given arguments; returns its exit status and leaves
 * its stdout and stderr in out_text and err_text. */
static int run(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_args, sizeof last_args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s'", bnorm, last_args, out_path, err_path);
    int st = system(cmd);
    slurp(out_path, out_text, sizeof out_text);
    slurp(err_path, err_text, sizeof err_text);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define EXPECT(status, stream, needle, ...)                                                        \
    do {                                                                                           \
        int got_ = run(__VA_ARGS__);                                                               \
        CHECK(got_ == (status), "bnorm %s: exit %d, expected %d; stderr: %s", last_args, got_,     \
              (status), err_text);                                                                 \
        CHECK(strstr(stream, needle) != NULL, "bnorm %s: no '%s' in: %s", last_args, needle,       \
              stream);                                                                             \
    } while (0)

static void put32(unsigned char *p, unsigned v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* count side x side images of 10 classes in dir/sub: class k is a bright
 * bar at row 2k + 3 with noise (28x28), so that a network learns it in an
 * epoch or two; other sides get noise only. */
static void make_set_in(const char *sub, const char *stem, unsigned count, unsigned seed,
                        unsigned side) {
    char path[512];
    size_t px = (size_t)side * side, n = 16 + (size_t)count * px;
    unsigned char *img = calloc(n, 1), *lab = calloc(8 + count, 1);
    put32(img, 0x803), put32(img + 4, count), put32(img + 8, side), put32(img + 12, side);
    put32(lab, 0x801), put32(lab + 4, count);
    for (unsigned i = 0; i < count; i++) {
        unsigned k = (i * 7 + seed) % 10;
        lab[8 + i] = (unsigned char)k;
        unsigned char *p = img + 16 + (size_t)i * px;
        for (size_t j = 0; j < px; j++) {
            seed = seed * 1103515245u + 12345u;
            p[j] = (unsigned char)((seed >> 16) % 40);
        }
        for (int x = 4; side == 28 && x < 24; x++)
            p[(2 * k + 3) * 28 + x] = 250, p[(2 * k + 4) * 28 + x] = 200;
    }
    snprintf(path, sizeof path, "%s%s", dir, sub);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s%s/%s-images-idx3-ubyte.gz", dir, sub, stem);
    gzFile f = gzopen(path, "wb");
    gzwrite(f, img, (unsigned)n);
    gzclose(f);
    snprintf(path, sizeof path, "%s%s/%s-labels-idx1-ubyte.gz", dir, sub, stem);
    f = gzopen(path, "wb");
    gzwrite(f, lab, 8 + count);
    gzclose(f);
    free(img), free(lab);
}

static void make_set(const char *stem, unsigned count, unsigned seed) {
    make_set_in("", stem, count, seed, 28);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

/* Runs a shell command line built from fmt; returns its exit status. */
static int shell(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int exists(const char *fmt, const char *arg) {
    char path[512];
    struct stat sb;
    snprintf(path, sizeof path, fmt, arg);
    return stat(path, &sb) == 0 && sb.st_size > 0;
}

static int count_lines(const char *path) {
    slurp(path, out_text, sizeof out_text);
    int n = 0;
    for (char *p = out_text; *p; p++)
        n += *p == '\n';
    return n;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH/TO/bnorm\n", argv[0]);
        return 2;
    }
    bnorm = argv[1];
    snprintf(dir, sizeof dir, "/tmp/bnorm-cli-%ld", (long)getpid());
    mkdir(dir, 0700);
    snprintf(out_path, sizeof out_path, "%s/stdout", dir);
    snprintf(err_path, sizeof err_path, "%s/stderr", dir);
    make_set("train", 600, 1);
    make_set("t10k", 100, 2);

    /* Help and usage errors: 0 for --help, 2 for misuse, text on the right stream. */
    EXPECT(0, out_text, "usage: bnorm <command>", "--help");
    EXPECT(2, err_text, "usage: bnorm <command>", "%s", "");
    EXPECT(2, err_text, "unknown command 'frobnicate'", "frobnicate");
    EXPECT(0, out_text, "usage: bnorm train", "train --help");
    EXPECT(0, out_text, "usage: bnorm eval", "eval --help");
    EXPECT(0, out_text, "usage: bnorm predict", "predict --help");
    EXPECT(0, out_text, "usage: bnorm compare", "compare --help");
    EXPECT(2, err_text, "invalid value 'abc' for --epochs", "train --epochs abc");
    EXPECT(2, err_text, "invalid value '0' for --epochs", "train --epochs 0");
    EXPECT(2, err_text, "invalid value '1' for --batch", "train --batch 1");
    EXPECT(2, err_text, "unknown model 'rnn' (built-in: cnn, deep-cnn", "train --model rnn");
    EXPECT(2, err_text, "--optimizer must be sgd or adam", "train --optimizer lbfgs");
    EXPECT(2, err_text, "unknown option --frob", "train --frob 1");
    EXPECT(2, err_text, "--lr needs a value", "train --lr");
    EXPECT(2, err_text, "exclude each other", "train --no-bn --bn-after-activation");
    EXPECT(2, err_text, "unexpected argument", "train extra");
    EXPECT(2, err_text, "usage: bnorm eval", "eval");

    /* Bad data and bad files: exit 1 with a message that names them. */
    EXPECT(1, err_text, "/nonexistent-dir", "train --data /nonexistent-dir --epochs 1");
    EXPECT(1, err_text, "missing.safetensors", "eval %s/missing.safetensors --data %s", dir, dir);

    /* Training, saved model and CSV log; the model directory holds nothing else. */
    EXPECT(0, out_text, "epoch  2",
           "train --data %s --epochs 2 --batch 32 --threads 2 --save %s/m.st --log %s/log.csv", dir,
           dir, dir);
    CHECK(exists("%s/m.st", dir), "no model file");
    CHECK(count_lines(strcat(strcpy(err_text, dir), "/log.csv")) == 3, "log: %s", out_text);
    EXPECT(0, out_text, "agree on every image", "eval %s/m.st --data %s", dir, dir);
    EXPECT(0, out_text, "confusion matrix", "eval %s/m.st --data %s --threads 1", dir, dir);
    EXPECT(0, out_text, "class", "predict %s/m.st --index 3 --data %s", dir, dir);
    EXPECT(1, err_text, "beyond the 100 test images", "predict %s/m.st --index 100 --data %s", dir,
           dir);

    /* Images from files: a PGM of the right size, one of the wrong size, a non-image. */
    char path[512];
    snprintf(path, sizeof path, "%s/bar.pgm", dir);
    FILE *f = fopen(path, "wb");
    fprintf(f, "P5\n28 28\n255\n");
    for (int j = 0; j < 784; j++)
        fputc(j / 28 == 9 || j / 28 == 10 ? 240 : 10, f);
    fclose(f);
    EXPECT(0, out_text, "bar.pgm", "predict %s/m.st %s", dir, path);
    snprintf(path, sizeof path, "%s/small.pgm", dir);
    f = fopen(path, "wb");
    fprintf(f, "P5\n14 14\n255\n");
    for (int j = 0; j < 196; j++)
        fputc(0, f);
    fclose(f);
    EXPECT(1, err_text, "small.pgm", "predict %s/m.st %s", dir, path);
    EXPECT(1, err_text, "log.csv", "predict %s/m.st %s/log.csv", dir, dir);

    /* A damaged model: the first 100 bytes of a good one. */
    snprintf(path, sizeof path, "%s/cut.st", dir);
    slurp(strcat(strcpy(out_text, dir), "/m.st"), err_text, 101);
    f = fopen(path, "wb");
    fwrite(err_text, 1, 100, f);
    fclose(f);
    EXPECT(1, err_text, "cut.st", "eval %s --data %s", path, dir);

    /* Saving into a directory that does not exist fails cleanly. */
    EXPECT(1, err_text, "nowhere", "train --data %s --epochs 1 --save %s/nowhere/m.st", dir, dir);

    /* compare: CSV with every run's epochs and an SVG plot. */
    EXPECT(0, out_text, "what batch norm bought", "compare --data %s --epochs 2 --out %s/cmp", dir,
           dir);
    CHECK(exists("%s/cmp/compare.svg", dir) && exists("%s/cmp/compare.png", dir), "no plot");
    /* Two models and three learning rates: twelve runs, a figure per model, and per-step
     * records of each dense/conv layer. */
    EXPECT(0, out_text, "cnn no-BN lr=0.3",
           "compare --data %s --epochs 1 --model mlp,cnn --lrs 0.01,0.1,0.3 --out %s/cmp2", dir,
           dir);
    CHECK(exists("%s/cmp2/compare-mlp.png", dir) && exists("%s/cmp2/compare-cnn.svg", dir),
          "no figure per model");
    CHECK(count_lines(strcat(strcpy(err_text, dir), "/cmp2/compare.csv")) == 13,
          "compare CSV of 12 runs");
    EXPECT(2, err_text, "invalid learning rate 'x'", "compare --lrs 0.1,x");
    EXPECT(2, err_text, "--preset must be depth", "compare --preset shallow");
    CHECK(count_lines(strcat(strcpy(err_text, dir), "/cmp/compare.csv")) >= 5, "compare CSV: %s",
          out_text);

    /* Inputs that crashed or misled the command: each gets exit 1 and a
     * message naming the file and the problem. */
    make_set_in("/tiny", "train", 50, 3, 1);
    make_set_in("/tiny", "t10k", 10, 4, 1);
    EXPECT(1, err_text, "too small", "train --model cnn --data %s/tiny --epochs 1", dir);
    make_set_in("/d14", "train", 50, 3, 14);
    make_set_in("/d14", "t10k", 10, 4, 14);
    EXPECT(1, err_text, "takes 28x28 images", "eval %s/m.st --data %s/d14", dir, dir);
    EXPECT(1, err_text, "takes 28x28 images", "predict %s/m.st --index 9 --data %s/d14", dir, dir);
    make_set_in("/mixed", "train", 50, 3, 28);
    make_set_in("/mixed", "t10k", 10, 4, 14);
    EXPECT(1, err_text, "training images are 28x28 but the test images 14x14",
           "train --data %s/mixed --epochs 1", dir);
    EXPECT(1, err_text, "is a directory", "eval %s --data %s", dir, dir);
    EXPECT(1, err_text, "is a directory", "predict %s/m.st %s", dir, dir);
    EXPECT(1, err_text, "is a directory", "train --data %s --epochs 1 --train-limit 64 --save %s",
           dir, dir);
    EXPECT(1, err_text, "not a directory", "compare --data %s --epochs 1 --out %s/m.st", dir, dir);
    /* A log on a full device (a private copy of /dev/full, made as root, so
     * that a broken writer cannot replace the system's). */
    snprintf(path, sizeof path, "%s/full", dir);
    if (mknod(path, S_IFCHR | 0666, makedev(1, 7)) == 0) {
        EXPECT(1, err_text, "No space left on device",
               "train --data %s --epochs 1 --train-limit 64 --log %s --save %s/full.st", dir, path,
               dir);
        CHECK(!exists("%s/full.st", dir), "a failed log was followed by a save");
        struct stat sb;
        CHECK(stat(path, &sb) == 0 && S_ISCHR(sb.st_mode), "the device was replaced by a file");
        remove(path);
    }
    /* Netpbm comments are valid; negative samples are not. */
    snprintf(path, sizeof path, "%s/comment.pgm", dir);
    f = fopen(path, "wb");
    fprintf(f, "P2\n# a comment line\n28 28 # trailing comment\n255\n");
    for (int j = 0; j < 784; j++)
        fprintf(f, "%d%c", j / 28 == 9 ? 240 : 10, j % 28 == 27 ? '\n' : ' ');
    fclose(f);
    EXPECT(0, out_text, "comment.pgm", "predict %s/m.st %s", dir, path);
    snprintf(path, sizeof path, "%s/negative.pgm", dir);
    write_text(path, "P2 28 28 255 -5");
    EXPECT(1, err_text, "negative.pgm", "predict %s/m.st %s", dir, path);
    /* Option errors state the range. */
    EXPECT(2, err_text, "expected an integer from 1 to 1000", "train --epochs 0");
    EXPECT(2, err_text, "expected an integer from 0 to 256", "train --threads 100000");
    EXPECT(2, err_text, "expected a number from", "train --lr -1");

    /* Networks as data: the built-in models, a description file, a bad one
     * (its line and column), folding for inference. */
    EXPECT(0, out_text, "resnet", "models");
    CHECK(strstr(out_text, "269834") != NULL, "models: the mlp's parameter count: %s", out_text);
    EXPECT(0, out_text, "usage: bnorm export", "export --help");
    EXPECT(2, err_text, "usage: bnorm export", "export %s/m.st", dir);
    snprintf(path, sizeof path, "%s/tiny.net", dir);
    write_text(path, "# a small residual network\nconv channels=4\nbn\nskip: relu\n"
                     "conv channels=4\nbn\nadd skip=skip\nrelu\nmaxpool\n"
                     "dense units=classes\nsoftmax\n");
    EXPECT(0, out_text, "epoch  1", "train --model %s --data %s --epochs 1 --save %s/tiny.st", path,
           dir, dir);
    EXPECT(0, out_text, "agree on every image", "eval %s/tiny.st --data %s", dir, dir);
    EXPECT(0, out_text, "folded 2 of 2 batch norm", "export --fold %s/tiny.st %s/tiny-folded.st",
           dir, dir);
    EXPECT(0, out_text, "0 batch norm layers", "eval %s/tiny-folded.st --data %s", dir, dir);
    EXPECT(0, out_text, "folded 2 of 2 batch norm", "export --fold %s/m.st %s/m-folded.st", dir,
           dir);
    EXPECT(0, out_text, "class", "predict %s/m-folded.st --index 3 --data %s", dir, dir);
    EXPECT(0, out_text, "epoch  1",
           "train --model resnet --data %s --epochs 1 --no-fuse --bn-after-activation", dir);
    snprintf(path, sizeof path, "%s/bad.net", dir);
    write_text(path, "conv channels=4\nbn\nrelu\nadd skip=nowhere\nsoftmax\n");
    EXPECT(1, err_text, "bad.net:4:10: no layer named 'nowhere'", "train --model %s --data %s",
           path, dir);
    EXPECT(1, err_text, "missing.net", "train --model %s/missing.net --data %s", dir, dir);

    /* The BN paper's experiment, short: the CSV has every record of both runs
     * (steps 0, 10, 20, 30), the PNG decodes at the size of three panels. */
    EXPECT(0, out_text, "figure:", "paper --data %s --steps 30 --every 10 --out %s/paper", dir,
           dir);
    CHECK(count_lines(strcat(strcpy(err_text, dir), "/paper/paper.csv")) == 9, "paper.csv rows");
    {
        static float px[400 * 1680];
        char perr[512];
        snprintf(path, sizeof path, "%s/paper/paper.png", dir);
        CHECK(image_read_gray(path, 400, 1680, px, perr, sizeof perr) == 0, "paper.png: %s", perr);
        double ink = 0;
        for (size_t k = 0; k < sizeof px / sizeof px[0]; k++)
            ink += px[k] < 128;
        CHECK(ink > 5000 && ink < 0.2 * (double)(sizeof px / sizeof px[0]),
              "paper.png: %.0f dark pixels", ink);
        CHECK(exists("%s/paper/paper.svg", dir), "no paper.svg");
    }
    EXPECT(2, err_text, "invalid value '0' for --steps", "paper --steps 0");

    /* Two runs logging to one path at once both succeed (their temporaries
     * once collided), three times over. */
    for (int round = 0; round < 3; round++)
        CHECK(shell("'%s' train --data %s --epochs 1 --train-limit 200 --log %s/same.csv "
                    ">/dev/null 2>&1 & a=$!; '%s' train --data %s --epochs 1 --train-limit 200 "
                    "--log %s/same.csv >/dev/null 2>&1; b=$?; wait $a; exit $(($? | b))",
                    bnorm, dir, dir, bnorm, dir, dir) == 0,
              "round %d: one of two runs logging to the same file failed", round);
    CHECK(count_lines(strcat(strcpy(err_text, dir), "/same.csv")) == 2, "same.csv: %s", out_text);

    /* No temporary files left anywhere. */
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "ls -a %s %s/cmp | grep -c -e '\\.tmp' -e 'bnorm-tmp' -e '~' > %s/leftover", dir, dir,
             dir);
    if (system(cmd) == -1) CHECK(0, "ls failed");
    slurp(strcat(strcpy(path, dir), "/leftover"), out_text, sizeof out_text);
    CHECK(atoi(out_text) == 0, "temporary files left behind");

    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) == -1) CHECK(0, "cleanup failed");
    return check_finish();
}
