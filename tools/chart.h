/* Line charts in panels, written as SVG (for a browser) and PNG (for
 * anything else), from one layout: the panels, axes, ticks and legends are
 * laid out once and drawn by either backend. */
#ifndef BNORM_TOOLS_CHART_H
#define BNORM_TOOLS_CHART_H

#include <stddef.h>

typedef struct {
    const char *name; /* in the legend; NULL: not listed */
    int n;            /* points */
    const double *x;  /* NULL: 1..n */
    const double *y;  /* non-finite points (and, on a log axis, those <= 0) break the line */
    int color;        /* palette index */
    int dashed;
} chart_series;

typedef struct {
    const char *title, *xlabel, *ylabel;
    int log_y;     /* logarithmic y axis */
    int percent_y; /* y in [0, 1] labelled as percent */
    const chart_series *series;
    int count;
} chart_panel;

/* Writes BASE.svg and BASE.png (each atomically): the panels in rows of
 * `columns`. Returns 0, or -1 with a message. */
int chart_write(const char *base, const chart_panel *panels, int n, int columns, char *err,
                size_t errlen);

/* The 5x7 glyph of c (font5x7.c), or NULL. */
const unsigned char *chart_glyph(char c);

#endif
