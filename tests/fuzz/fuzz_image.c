/* libFuzzer target: the PGM/PNG decoder. The first byte picks the expected
 * size (1..16 on each side), so that inputs of the right size are reached. */
#include <stdint.h>
#include <string.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int h = 1 + (data[0] & 15), w = 1 + (data[0] >> 4);
    float px[256];
    char err[512];
    if (image_decode_gray(data + 1, size - 1, "fuzz", h, w, px, err, sizeof err) == 0)
        for (int i = 0; i < h * w; i++)
            if (!(px[i] >= 0.0f && px[i] <= 255.0f)) __builtin_trap();
    return 0;
}
