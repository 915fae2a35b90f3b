/* Writes the fuzzers' seed corpora: valid inputs of each kind, made by the
 * project's own writers, into DIR/{idx,st_header,safetensors,image}/. */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "nn.h"

static const char *root;

static int put(const char *sub, const char *name, const void *bytes, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, sub);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/%s/%s", root, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "make_seeds: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

static void be32(unsigned char *p, unsigned v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static int idx_seed(void) {
    unsigned char buf[4 + 16 + 3 * 4 * 5 + 8 + 3];
    size_t ilen = 16 + 3 * 4 * 5;
    buf[0] = (unsigned char)ilen, buf[1] = buf[2] = buf[3] = 0;
    unsigned char *img = buf + 4, *lab = img + ilen;
    be32(img, 0x803), be32(img + 4, 3), be32(img + 8, 4), be32(img + 12, 5);
    for (size_t i = 16; i < ilen; i++)
        img[i] = (unsigned char)(i * 37);
    be32(lab, 0x801), be32(lab + 4, 3);
    lab[8] = 0, lab[9] = 7, lab[10] = 9;
    return put("idx", "valid", buf, sizeof buf);
}

/* A model file per architecture and BN placement, and its JSON header. */
static int model_seeds(void) {
    const char *archs[] = {"cnn", "mlp"};
    const int sides[] = {4, 2};
    for (int a = 0; a < 2; a++)
        for (int bn = 0; bn < 3; bn++) {
            static nn_net net;
            char err[512], path[4096], name[64];
            if (nn_build_model(&net, archs[a], (nn_bn_place)bn, sides[a], sides[a], 1, 10, 2, 1,
                               err, sizeof err)) {
                fprintf(stderr, "make_seeds: %s\n", err);
                return -1;
            }
            nn_init_params(&net, 1);
            ckpt_info info = {"", 0.25f, 0.5f};
            snprintf(info.model, sizeof info.model, "%s", archs[a]);
            snprintf(name, sizeof name, "%s-%d", archs[a], bn);
            snprintf(path, sizeof path, "%s/safetensors", root);
            mkdir(path, 0777);
            snprintf(path, sizeof path, "%s/safetensors/%s", root, name);
            int rc = ckpt_save(path, &net, &info, err, sizeof err);
            nn_free(&net);
            if (rc) {
                fprintf(stderr, "make_seeds: %s\n", err);
                return -1;
            }
            FILE *f = fopen(path, "rb");
            unsigned char le[8];
            if (!f || fread(le, 1, 8, f) != 8) return -1;
            size_t hlen = 0;
            for (int b = 0; b < 8; b++)
                hlen |= (size_t)le[b] << (8 * b);
            char *hdr = malloc(hlen);
            rc = hdr && fread(hdr, 1, hlen, f) == hlen ? put("st_header", name, hdr, hlen) : -1;
            free(hdr);
            fclose(f);
            if (rc) return -1;
        }
    const char *extra = "{\"__metadata__\":{\"k\":\"v\\u0041\\n\"},\"t\":{\"dtype\":\"F16\","
                        "\"shape\":[],\"data_offsets\":[0,2]}}";
    return put("st_header", "escapes", extra, strlen(extra));
}

/* Images: the first byte is the fuzz target's size selector (h-1 | (w-1) << 4). */
static int image_seeds(void) {
    const int h = 3, w = 5;
    char text[512];
    unsigned char sel = (unsigned char)((h - 1) | (w - 1) << 4);
    int n = snprintf(text, sizeof text, "%cP2\n# comment\n%d %d\n255\n", sel, w, h);
    for (int i = 0; i < h * w; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "%d ", i * 17);
    if (put("image", "plain.pgm", text, (size_t)n)) return -1;
    unsigned char bin[64];
    n = snprintf((char *)bin, sizeof bin, "%cP5 %d %d 255\n", sel, w, h);
    for (int i = 0; i < h * w; i++)
        bin[n++] = (unsigned char)(i * 17);
    if (put("image", "binary.pgm", bin, (size_t)n)) return -1;
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w, img.height = (png_uint_32)h;
    img.format = PNG_FORMAT_RGB;
    unsigned char rgb[3 * 15];
    for (int i = 0; i < 3 * h * w; i++)
        rgb[i] = (unsigned char)(i * 5);
    unsigned char png[4096];
    png_alloc_size_t size = sizeof png - 1;
    if (!png_image_write_to_memory(&img, png + 1, &size, 0, rgb, 0, NULL)) {
        fprintf(stderr, "make_seeds: PNG: %s\n", img.message);
        return -1;
    }
    png[0] = sel;
    return put("image", "rgb.png", png, size + 1);
}

/* The built-in network descriptions. */
static int spec_seeds(void) {
    for (int i = 0; i < nn_builtin_model_count; i++)
        if (put("spec", nn_builtin_models[i].name, nn_builtin_models[i].text,
                strlen(nn_builtin_models[i].text)))
            return -1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    root = argv[1];
    mkdir(root, 0777);
    return idx_seed() || model_seeds() || image_seeds() || spec_seeds() ? 1 : 0;
}
