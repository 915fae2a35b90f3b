/* How the caller's workspace is carved (internal.h, bn_workspace). */
#include <stdint.h>

#include "internal.h"

#define ALIGN 64

static size_t align_up(size_t a) { return (a + ALIGN - 1) / ALIGN * ALIGN; }

/* The sizes were checked for overflow when the view was made. */
size_t bn_workspace_bytes(const bn_view *v) {
    size_t f = v->features;
    size_t parts = v->ch.chunks * f;
    return ALIGN + 5 * align_up(f * sizeof(float)) + 3 * align_up(f * sizeof(double)) +
           3 * align_up(parts * sizeof(double));
}

bn_workspace bn_workspace_carve(const bn_view *v, void *base) {
    size_t f = v->features;
    size_t parts = v->ch.chunks * f;
    char *p = (char *)base;
    p += (ALIGN - (uintptr_t)p % ALIGN) % ALIGN;
    bn_workspace ws;
    ws.mean = (float *)p, p += align_up(f * sizeof(float));
    ws.mean_lo = (float *)p, p += align_up(f * sizeof(float));
    ws.scale = (float *)p, p += align_up(f * sizeof(float));
    ws.shift = (float *)p, p += align_up(f * sizeof(float));
    ws.shift_folded = (float *)p, p += align_up(f * sizeof(float));
    ws.batch_mean = (double *)p, p += align_up(f * sizeof(double));
    ws.batch_var = (double *)p, p += align_up(f * sizeof(double));
    ws.sum_xc = (double *)p, p += align_up(f * sizeof(double));
    ws.part0 = (double *)p, p += align_up(parts * sizeof(double));
    ws.part1 = (double *)p, p += align_up(parts * sizeof(double));
    ws.part2 = (double *)p;
    return ws;
}
