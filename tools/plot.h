/* Learning-curve plots as SVG, and the small file helpers the tool needs. */
#ifndef BNORM_TOOLS_PLOT_H
#define BNORM_TOOLS_PLOT_H

#include <stddef.h>

typedef struct {
    const char *name;
    int n;           /* points: x = 1..n */
    const double *y; /* in [0, 1]; NaN points are skipped */
    int diverged;
} plot_series;

/* Writes an SVG line chart atomically. Returns 0, or -1 with a message. */
int plot_svg(const char *path, const char *title, const char *xlabel, const char *ylabel,
             const plot_series *series, int count, char *err, size_t errlen);

/* Creates a directory and its parents (like mkdir -p). */
int mkdir_p(const char *path, char *err, size_t errlen);

#endif
