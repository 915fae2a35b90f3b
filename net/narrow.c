/* Direct 3x3 convolutions to 16 channels (narrow.h). */
#include "narrow.h"

#include "simd.h"

/* The tiles at 16 lanes and at 8 (narrow_tiles.h). */
#define BN_W 16
#include "narrow_tiles.h"
#undef BN_W
#define BN_W 8
#include "narrow_tiles.h"
#undef BN_W

BN_DISPATCH static void narrow_row(int ow, int c, int oc, const float *pad, size_t pad_row,
                                   const float *w, float *out) {
    if (BN_WIDE_VECTORS())
        narrow_row_16(ow, c, oc, pad, pad_row, w, out);
    else
        narrow_row_8(ow, c, oc, pad, pad_row, w, out);
}

void nn_narrow_row(int ow, int c, int oc, const float *pad, size_t pad_row, const float *w,
                   float *out) {
    if (ow > 0 && c > 0 && oc > 0 && oc % VL == 0) narrow_row(ow, c, oc, pad, pad_row, w, out);
}

BN_DISPATCH static void narrow_weight_gradient(int oh, int ow, int c, int oc, const float *pad,
                                               size_t pad_row, const float *g, float beta,
                                               float *dw) {
    if (BN_WIDE_VECTORS())
        narrow_weight_gradient_16(oh, ow, c, oc, pad, pad_row, g, beta, dw);
    else
        narrow_weight_gradient_8(oh, ow, c, oc, pad, pad_row, g, beta, dw);
}

void nn_narrow_weight_gradient(int oh, int ow, int c, int oc, const float *pad, size_t pad_row,
                               const float *g, float beta, float *dw) {
    if (oh > 0 && ow > 0 && c > 0 && oc > 0 && oc % VL == 0)
        narrow_weight_gradient(oh, ow, c, oc, pad, pad_row, g, beta, dw);
}
