/* libFuzzer target: the IDX reader on an image file and a label file.
 * Input: a 4-byte little-endian length of the image part, the image file's
 * bytes, then the label file's bytes. */
#include <stdint.h>
#include <string.h>

#include "idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    size_t split =
        (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 | (size_t)data[3] << 24;
    data += 4, size -= 4;
    if (split > size) split = size;
    idx_set set;
    char err[512];
    if (idx_parse(data, split, data + split, size - split, "images", "labels", &set, err,
                  sizeof err) == 0) {
        /* What a caller relies on: the sizes and the labels' range. */
        size_t px = set.count * (size_t)set.rows * (size_t)set.cols;
        if (px + 16 != split || set.count + 8 != size - split) __builtin_trap();
        for (size_t i = 0; i < set.count; i++)
            if (set.labels[i] > 9) __builtin_trap();
        idx_free(&set);
    } else if (!memchr(err, 0, sizeof err) || !strstr(err, "s")) {
        __builtin_trap();
    }
    return 0;
}
