/* IDX loading (plain and gzip; every malformation gives an error naming the
 * file and the problem) and the safetensors round trip and its checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "checkpoint.h"
#include "idx.h"
#include "image.h"
#include "nn.h"
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
    CHECK(nn_build_model(&a, "cnn", NN_BN_KEEP, 8, 8, 1, 10, 4, 1, err, sizeof err) == 0, "%s",
          err);
    nn_init_params(&a, 3);
    for (int i = 0; i < a.n_tensors; i++)
        for (size_t k = 0; k < a.tensors[i].size; k++)
            a.tensors[i].value[k] += 0.001f * (float)k;
    ckpt_info info = {"cnn", 0.25f, 0.5f}, got;
    CHECK(ckpt_save(path, &a, &info, err, sizeof err) == 0, "save: %s", err);
    CHECK(ckpt_load(path, &b, &got, 4, 1, err, sizeof err) == 0, "load: %s", err);
    int same = b.n_tensors == a.n_tensors;
    for (int i = 0; same && i < a.n_tensors; i++)
        same = memcmp(a.tensors[i].value, b.tensors[i].value, a.tensors[i].size * 4) == 0;
    CHECK(same, "round trip changed a tensor");
    CHECK(got.pixel_mean == 0.25f && got.pixel_std == 0.5f && strcmp(got.model, "cnn") == 0,
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

/* A model file whose description names a network that is not what its
 * tensors are: every check comes before the network is allocated. */
static int save_described(const char *path, const char *arch, const char *side, int n_tensors) {
    st_meta meta[8] = {{"format", "bnorm"}, {"arch", ""},         {"bn", "before_relu"},
                       {"in_h", ""},        {"in_w", ""},         {"in_c", "1"},
                       {"classes", "10"},   {"pixel_mean", "0.5"}};
    st_meta all[9];
    memcpy(all, meta, sizeof meta);
    snprintf(all[1].value, sizeof all[1].value, "%s", arch);
    snprintf(all[3].value, sizeof all[3].value, "%s", side);
    snprintf(all[4].value, sizeof all[4].value, "%s", side);
    all[8] = (st_meta){"pixel_std", "0.25"};
    float v[4] = {1, 2, 3, 4};
    int64_t shape[1] = {4};
    st_tensor t[2] = {{"layers.0.weight", 1, shape, v, 4}, {"layers.1.gamma", 1, shape, v, 4}};
    char err[512];
    return st_write(path, all, 9, t, n_tensors, err, sizeof err);
}

static void test_hostile_models(void) {
    char path[512], err[1024] = "";
    nn_net net;
    ckpt_info info;
    snprintf(path, sizeof path, "%s/crafted.safetensors", dir);

    /* A CNN for 1x1 inputs: its pooling leaves nothing (was SIGFPE). */
    CHECK(save_described(path, "cnn", "1", 2) == 0, "write");
    CHECK(ckpt_load(path, &net, &info, 500, 1, err, sizeof err) == -1 && strstr(err, "too small") &&
              strstr(err, "crafted.safetensors"),
          "1x1 cnn: '%s'", err);
    CHECK(nn_build_model(&net, "cnn", NN_BN_KEEP, 3, 3, 1, 10, 4, 1, err, sizeof err) == -1 &&
              strstr(err, "too small"),
          "3x3 cnn: '%s'", err);
    CHECK(nn_build_model(&net, "cnn", NN_BN_KEEP, 4, 4, 1, 10, 4, 1, err, sizeof err) == 0,
          "4x4 cnn: %s", err);
    nn_free(&net);

    /* A small file that describes a 1024x1024 network: refused on its
     * tensors, without building the network (which took 4.2 GB). */
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    CHECK(save_described(path, "mlp", "1024", 2) == 0, "write");
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    CHECK(size < 2048, "crafted file is %ld bytes", size);
    CHECK(ckpt_load(path, &net, &info, 500, 2, err, sizeof err) == -1 && strstr(err, "wrong shape"),
          "1024x1024 mlp: '%s'", err);
    CHECK(save_described(path, "cnn", "1024", 2) == 0, "write");
    CHECK(ckpt_load(path, &net, &info, 500, 2, err, sizeof err) == -1 && strstr(err, "wrong shape"),
          "1024x1024 cnn: '%s'", err);
    getrusage(RUSAGE_SELF, &after);
    CHECK(after.ru_maxrss - before.ru_maxrss < 64 * 1024, "refusing a crafted model took %ld KiB",
          after.ru_maxrss - before.ru_maxrss);
    CHECK(save_described(path, "mlp", "4096", 2) == 0, "write");
    CHECK(ckpt_load(path, &net, &info, 500, 2, err, sizeof err) == -1 && strstr(err, "in_h"),
          "side above the limit: '%s'", err);

    /* A description whose buffers would exceed NN_MAX_NET_BYTES. */
    CHECK(nn_build_model(&net, "cnn", NN_BN_KEEP, 1024, 1024, 64, 10, 500, 1, err, sizeof err) ==
                  -1 &&
              strstr(err, "over the limit"),
          "huge cnn: '%s'", err);
}

/* PGM and PNG decoding from memory: Netpbm comments, plain and binary
 * samples, and every malformation refused with the name. */
static void test_images(void) {
    float px[6], before[6] = {-1, -1, -1, -1, -1, -1};
    char err[512];
    const char *good[] = {
        "P2\n# made by hand\n3 2\n# maxval next\n255\n0 51 102\n153 204 255\n",
        "P2 3 2 255 0 51 102 153 204 255",
        "P2\n3 2\n5\n0 1 2\n3 4 5\n",
        "P5 3#comment right after a token\n2\n255\n\x00\x33\x66\x99\xcc\xff",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        memcpy(px, before, sizeof px);
        size_t len = strlen(good[i]) + (i == 3 ? 1 : 0); /* the P5 sample 0 is a NUL */
        if (i == 3) len = strlen("P5 3#comment right after a token\n2\n255\n") + 6;
        int rc =
            image_decode_gray((const uint8_t *)good[i], len, "good.pgm", 2, 3, px, err, sizeof err);
        CHECK(rc == 0, "good image %zu refused: %s", i, err);
        int right = 1;
        for (int k = 0; k < 6; k++)
            right &= px[k] == 51.0f * (float)k;
        CHECK(rc != 0 || right, "good image %zu decoded wrong", i);
    }
    struct {
        const char *text, *needle;
    } bad[] = {
        {"P2\n3 2\n255\n0 51 -102\n153 204 255\n", "negative"},
        {"P2\n3 2\n255\n0 51 102\n153 204\n", "missing"},
        {"P2\n3 2\n100\n0 51 102\n153 204 255\n", "above maxval"},
        {"P5\n3 2\n255\n\x01\x02", "truncated"},
        {"P2\n3 3\n255\n0 0 0 0 0 0 0 0 0\n", "expected 3x2"},
        {"P2\n3 2\n65535\n0 1 2 3 4 5\n", "16-bit"},
        {"P2\n-3 2\n255\n", "bad PGM header"},
        {"GIF89a", "not a PNG or PGM"},
        {"\x89PNG\r\n\x1a\n\x00\x00", "bad PNG"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(px, before, sizeof px);
        int rc =
            image_decode_gray((const uint8_t *)bad[i].text, strlen(bad[i].text) + (i == 8 ? 2 : 0),
                              "bad.pgm", 2, 3, px, err, sizeof err);
        CHECK(rc == -1 && strstr(err, bad[i].needle) && strstr(err, "bad.pgm"),
              "bad image %zu: rc %d, '%s' lacks '%s'", i, rc, err, bad[i].needle);
        CHECK(!memcmp(px, before, sizeof px), "bad image %zu: output written", i);
    }
    CHECK(image_read_gray(dir, 2, 3, px, err, sizeof err) == -1 && strstr(err, "is a directory"),
          "directory as an image: '%s'", err);
    nn_net net;
    ckpt_info info;
    CHECK(ckpt_load(dir, &net, &info, 4, 1, err, sizeof err) == -1 && strstr(err, "is a directory"),
          "directory as a model: '%s'", err);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/bnorm-test-%ld", (long)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    if (system(cmd) != 0) return 2;
    test_idx();
    test_safetensors();
    test_hostile_models();
    test_images();
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 2;
    return check_finish();
}
