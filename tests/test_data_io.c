/* IDX loading (plain and gzip; every malformation gives an error naming the
 * file and the problem) and the safetensors round trip and its checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "idx.h"
#include "nn.h"
#include "checkpoint.h"
#include "safetensors.h"

static char dir[256];

static void put32(unsigned char *p, unsigned v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static void write_file(const char *path, const unsigned char *b, size_t n, int gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        gzwrite(f, b, (unsigned)n);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(b, 1, n, f);
        fclose(f);
    }
}

/* Writes an image file of `count` 3x2 images and a label file; the knobs
 * break one thing at a time. */
static void make_set(const char *ip, const char *lp, int gz, unsigned img_magic, unsigned count,
                     unsigned label_count, int cut_bytes, int bad_label) {
    unsigned char ib[16 + 60], lb[8 + 10];
    put32(ib, img_magic), put32(ib + 4, count), put32(ib + 8, 3), put32(ib + 12, 2);
    for (int i = 0; i < 60; i++)
        ib[16 + i] = (unsigned char)(i * 7);
    put32(lb, 0x801), put32(lb + 4, label_count);
    for (int i = 0; i < 10; i++)
        lb[8 + i] = (unsigned char)(i % 10);
    if (bad_label) lb[8 + 4] = 10;
    write_file(ip, ib, 16 + 6 * (size_t)count - (size_t)cut_bytes, gz);
    write_file(lp, lb, 8 + (size_t)label_count, gz);
}

static void expect_error(const char *what, const char *ip, const char *lp, const char *needle,
                         const char *file) {
    idx_set s;
    char err[1024] = "";
    int rc = idx_load(ip, lp, &s, err, sizeof err);
    CHECK(rc == -1, "%s: must fail", what);
    CHECK(strstr(err, needle) != NULL, "%s: message '%s' lacks '%s'", what, err, needle);
    CHECK(strstr(err, file) != NULL, "%s: message '%s' does not name %s", what, err, file);
    CHECK(s.pixels == NULL && s.labels == NULL && s.count == 0, "%s: partial load kept", what);
}

static void test_idx(void) {
    char ip[512], lp[512];
    for (int gz = 0; gz < 2; gz++) {
        snprintf(ip, sizeof ip, "%s/img%s", dir, gz ? ".gz" : "");
        snprintf(lp, sizeof lp, "%s/lab%s", dir, gz ? ".gz" : "");
        make_set(ip, lp, gz, 0x803, 10, 10, 0, 0);
        idx_set s;
        char err[1024];
        CHECK(idx_load(ip, lp, &s, err, sizeof err) == 0, "valid set: %s", err);
        CHECK(s.count == 10 && s.rows == 3 && s.cols == 2 && s.pixels[7] == 49 && s.labels[9] == 9,
              "valid set read wrongly");
        idx_free(&s);
        make_set(ip, lp, gz, 0x801, 10, 10, 0, 0);
        expect_error("wrong magic", ip, lp, "magic", ip);
        make_set(ip, lp, gz, 0x803, 10, 10, 5, 0);
        expect_error("truncated images", ip, lp, "truncated", ip);
        make_set(ip, lp, gz, 0x803, 9, 9, -6, 0);
        expect_error("trailing data", ip, lp, "trailing", ip);
        make_set(ip, lp, gz, 0x803, 10, 10, 0, 1);
        expect_error("label out of range", ip, lp, "out of range", lp);
        make_set(ip, lp, gz, 0x803, 10, 9, 0, 0);
        expect_error("count mismatch", ip, lp, "9 labels", lp);
        expect_error("missing file", ip, "/nonexistent/labels", "cannot open", "/nonexistent");
    }
    /* A gzip stream cut short. */
    make_set(ip, lp, 1, 0x803, 10, 10, 0, 0);
    FILE *f = fopen(ip, "rb");
    unsigned char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    write_file(ip, buf, n / 2, 0);
    expect_error("truncated gzip", ip, lp, "", ip);
}

static void test_safetensors(void) {
    nn_net a, b;
    char err[1024], path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(nn_build(&a, "cnn", NN_BN_BEFORE_RELU, 8, 8, 1, 10, 4, 1, err, sizeof err) == 0, "%s",
          err);
    nn_init_params(&a, 3);
    for (int i = 0; i < a.n_tensors; i++)
        for (size_t k = 0; k < a.tensors[i].size; k++)
            a.tensors[i].value[k] += 0.001f * (float)k;
    ckpt_info info = {"cnn", NN_BN_BEFORE_RELU, 0.25f, 0.5f}, got;
    CHECK(ckpt_save(path, &a, &info, err, sizeof err) == 0, "save: %s", err);
    CHECK(ckpt_load(path, &b, &got, 4, 1, err, sizeof err) == 0, "load: %s", err);
    int same = b.n_tensors == a.n_tensors;
    for (int i = 0; same && i < a.n_tensors; i++)
        same = memcmp(a.tensors[i].value, b.tensors[i].value, a.tensors[i].size * 4) == 0;
    CHECK(same, "round trip changed a tensor");
    CHECK(got.pixel_mean == 0.25f && got.pixel_std == 0.5f && got.bn == NN_BN_BEFORE_RELU &&
              strcmp(got.arch, "cnn") == 0,
          "round trip changed the metadata");
    nn_free(&b);

    /* Damaged copies must be refused with a reason. */
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *bytes = malloc((size_t)size);
    CHECK(fread(bytes, 1, (size_t)size, f) == (size_t)size, "read back");
    fclose(f);
    char bad[512];
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    struct {
        const char *what, *from, *to, *needle;
        long cut;
    } cases[] = {
        {"truncated data", NULL, NULL, "data_offsets", 100},
        {"truncated header", NULL, NULL, "header length", size - 40},
        {"wrong dtype", "\"F32\"", "\"F16\"", "dtype", 0},
        {"wrong shape", "[3,3,1,32]", "[3,3,1,31]", "shape", 0},
        {"renamed tensor", "layers.0.weight", "layers.0.wEight", "missing", 0},
        {"bad JSON", "{\"dtype\"", "[\"dtype\"", "JSON", 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char *copy = malloc((size_t)size);
        memcpy(copy, bytes, (size_t)size);
        long n = size - cases[c].cut;
        if (cases[c].from) {
            char *at = memmem(copy + 8, (size_t)size - 8, cases[c].from, strlen(cases[c].from));
            CHECK(at != NULL, "%s: pattern not found", cases[c].what);
            if (at) memcpy(at, cases[c].to, strlen(cases[c].from));
        }
        write_file(bad, (unsigned char *)copy, (size_t)n, 0);
        int rc = ckpt_load(bad, &b, &got, 4, 1, err, sizeof err);
        CHECK(rc == -1, "%s: accepted", cases[c].what);
        if (rc == 0) nn_free(&b);
        CHECK(strstr(err, cases[c].needle) != NULL, "%s: message '%s' lacks '%s'", cases[c].what,
              err, cases[c].needle);
        free(copy);
    }
    free(bytes);
    nn_free(&a);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/bnorm-test-%ld", (long)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    if (system(cmd) != 0) return 2;
    test_idx();
    test_safetensors();
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 2;
    return check_finish();
}
