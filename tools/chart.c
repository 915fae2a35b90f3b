/* Line charts as SVG and PNG from one layout (chart.h). */
#include "chart.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"

static const unsigned char PALETTE[][3] = {
    {0x1f, 0x77, 0xb4}, {0xd6, 0x27, 0x28}, {0x2c, 0xa0, 0x2c}, {0xff, 0x7f, 0x0e},
    {0x94, 0x67, 0xbd}, {0x8c, 0x56, 0x4b}, {0x17, 0xbe, 0xcf}, {0x7f, 0x7f, 0x7f}};
#define N_COLORS ((int)(sizeof PALETTE / sizeof PALETTE[0]))
static const unsigned char BLACK[3] = {0, 0, 0}, GRID[3] = {0xdd, 0xdd, 0xdd};

enum { PANEL_W = 560, PANEL_H = 400, MARGIN_L = 78, MARGIN_R = 20, MARGIN_T = 44, MARGIN_B = 54 };

/* What a layout draws with: SVG text or a raster canvas. */
typedef struct backend backend;
struct backend {
    void (*line)(backend *b, double x1, double y1, double x2, double y2, const unsigned char *rgb,
                 int width, int dashed);
    /* anchor: 0 left, 1 centre, 2 right; vertical: rotated a quarter turn left. */
    void (*text)(backend *b, double x, double y, const char *s, int anchor, int big, int vertical);
    FILE *f;           /* SVG */
    unsigned char *px; /* PNG: RGB rows */
    int w, h;
};

/* ---- SVG ---- */

static void svg_line(backend *b, double x1, double y1, double x2, double y2, const unsigned char *c,
                     int width, int dashed) {
    fprintf(b->f,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#%02x%02x%02x\" "
            "stroke-width=\"%d\"%s/>\n",
            x1, y1, x2, y2, c[0], c[1], c[2], width, dashed ? " stroke-dasharray=\"6 4\"" : "");
}

static void svg_text(backend *b, double x, double y, const char *s, int anchor, int big,
                     int vertical) {
    static const char *anchors[] = {"start", "middle", "end"};
    fprintf(b->f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%d\"", x, y + 5,
            anchors[anchor], big ? 16 : 13);
    if (vertical) fprintf(b->f, " transform=\"rotate(-90 %.1f %.1f)\"", x, y + 5);
    fputc('>', b->f);
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", b->f);
        else if (*s == '>')
            fputs("&gt;", b->f);
        else if (*s == '&')
            fputs("&amp;", b->f);
        else
            fputc(*s, b->f);
    }
    fputs("</text>\n", b->f);
}

/* ---- raster ---- */

static void plot(backend *b, int x, int y, const unsigned char *c) {
    if (x < 0 || y < 0 || x >= b->w || y >= b->h) return;
    memcpy(b->px + ((size_t)y * b->w + x) * 3, c, 3);
}

static void raster_line(backend *b, double x1, double y1, double x2, double y2,
                        const unsigned char *c, int width, int dashed) {
    double dx = x2 - x1, dy = y2 - y1, len = sqrt(dx * dx + dy * dy);
    int steps = (int)ceil(len * 2) + 1;
    for (int i = 0; i <= steps; i++) {
        double t = (double)i / steps, along = t * len;
        if (dashed && fmod(along, 10.0) >= 6.0) continue;
        int x = (int)lround(x1 + t * dx), y = (int)lround(y1 + t * dy);
        for (int u = -(width - 1) / 2; u <= width / 2; u++)
            for (int v = -(width - 1) / 2; v <= width / 2; v++)
                plot(b, x + u, y + v, c);
    }
}

static void raster_text(backend *b, double x, double y, const char *s, int anchor, int big,
                        int vertical) {
    int scale = big ? 2 : 1, adv = 6 * scale, n = (int)strlen(s);
    double start = -anchor * (n * adv - scale) / 2.0;
    for (int i = 0; i < n; i++) {
        const unsigned char *g = chart_glyph(s[i]);
        if (!g) continue;
        for (int r = 0; r < 7; r++)
            for (int col = 0; col < 5; col++) {
                if (!(g[r] >> (4 - col) & 1)) continue;
                for (int u = 0; u < scale; u++)
                    for (int v = 0; v < scale; v++) {
                        double along = start + i * adv + col * scale + u;
                        double across = (r - 3.5) * scale + v;
                        if (vertical)
                            plot(b, (int)lround(x + across), (int)lround(y - along), BLACK);
                        else
                            plot(b, (int)lround(x + along), (int)lround(y + across), BLACK);
                    }
            }
    }
}

/* ---- layout ---- */

static int usable(const chart_panel *p, double y) { return isfinite(y) && (!p->log_y || y > 0); }

static double xval(const chart_series *s, int i) { return s->x ? s->x[i] : i + 1; }

/* A tick step of 1, 2 or 5 times a power of ten, about span / 5. */
static double nice_step(double span) {
    double raw = span / 5.0, mag = pow(10.0, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

static void format_tick(char *buf, size_t len, double v, double step, int percent) {
    if (percent) v *= 100.0, step *= 100.0;
    if (fabs(v) < step * 1e-6) v = 0.0; /* not -0 */
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(v) >= 1e5 && !percent)
        snprintf(buf, len, "%.0fk", v / 1000.0);
    else
        snprintf(buf, len, "%.*f%s", decimals, v, percent ? "%" : "");
}

static void draw_panel(backend *b, const chart_panel *p, double ox, double oy) {
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int s = 0; s < p->count; s++)
        for (int i = 0; i < p->series[s].n; i++) {
            double y = p->series[s].y[i];
            if (!usable(p, y)) continue;
            double x = xval(&p->series[s], i);
            xmin = fmin(xmin, x), xmax = fmax(xmax, x);
            y = p->log_y ? log10(y) : y;
            ymin = fmin(ymin, y), ymax = fmax(ymax, y);
        }
    if (!(xmin < xmax)) xmin = isfinite(xmin) ? xmin - 1 : 0, xmax = xmin + 2;
    if (!(ymin < ymax)) ymin = isfinite(ymin) ? ymin - 0.5 : 0, ymax = ymin + 1;
    double ystep = p->log_y ? 1.0 : nice_step(ymax - ymin);
    if (p->log_y && ymax - ymin < 1.0) ymin = floor(ymin), ymax = ceil(ymax);
    ymin = floor(ymin / ystep) * ystep, ymax = ceil(ymax / ystep) * ystep;
    double L = ox + MARGIN_L, R = ox + PANEL_W - MARGIN_R, T = oy + MARGIN_T,
           B = oy + PANEL_H - MARGIN_B;
#define PX(x) (L + ((x)-xmin) * (R - L) / (xmax - xmin))
#define PY(y) (B - ((y)-ymin) * (B - T) / (ymax - ymin))
    char buf[64];
    for (double y = ymin; y <= ymax + ystep * 1e-6; y += ystep) {
        b->line(b, L, PY(y), R, PY(y), GRID, 1, 0);
        if (p->log_y)
            snprintf(buf, sizeof buf, "%g", pow(10.0, y));
        else
            format_tick(buf, sizeof buf, y, ystep, p->percent_y);
        b->text(b, L - 6, PY(y), buf, 2, 0, 0);
    }
    double xstep = nice_step(xmax - xmin);
    for (double x = ceil(xmin / xstep) * xstep; x <= xmax + xstep * 1e-6; x += xstep) {
        b->line(b, PX(x), B, PX(x), B + 4, BLACK, 1, 0);
        format_tick(buf, sizeof buf, x, xstep, 0);
        b->text(b, PX(x), B + 14, buf, 1, 0, 0);
    }
    b->line(b, L, B, R, B, BLACK, 1, 0);
    b->line(b, L, T, L, B, BLACK, 1, 0);
    b->text(b, (L + R) / 2, oy + 20, p->title, 1, 1, 0);
    b->text(b, (L + R) / 2, B + 34, p->xlabel, 1, 0, 0);
    b->text(b, ox + 14, (T + B) / 2, p->ylabel, 1, 0, 1);
    int legend = 0;
    for (int s = 0; s < p->count; s++) {
        const chart_series *cs = &p->series[s];
        const unsigned char *c = PALETTE[cs->color % N_COLORS];
        int have = 0;
        double px = 0, py = 0;
        for (int i = 0; i < cs->n; i++) {
            if (!usable(p, cs->y[i])) {
                have = 0;
                continue;
            }
            double x = PX(xval(cs, i)), y = PY(p->log_y ? log10(cs->y[i]) : cs->y[i]);
            if (have) b->line(b, px, py, x, y, c, 2, cs->dashed);
            px = x, py = y, have = 1;
        }
        if (!cs->name) continue;
        double ly = T + 12 + 18 * legend++;
        b->line(b, R - 190, ly, R - 165, ly, c, 3, cs->dashed);
        b->text(b, R - 158, ly, cs->name, 0, 0, 0);
    }
#undef PX
#undef PY
}

static void layout(backend *b, const chart_panel *panels, int n, int columns) {
    for (int i = 0; i < n; i++)
        draw_panel(b, &panels[i], (double)(i % columns) * PANEL_W, (double)(i / columns) * PANEL_H);
}

static int write_png(const char *path, const unsigned char *px, int w, int h, char *err,
                     size_t errlen) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w, img.height = (png_uint_32)h;
    img.format = PNG_FORMAT_RGB;
    png_alloc_size_t size = 0;
    if (!png_image_write_to_memory(&img, NULL, &size, 0, px, 0, NULL)) {
        snprintf(err, errlen, "%s: %s", path, img.message);
        return -1;
    }
    void *mem = malloc(size);
    if (!mem || !png_image_write_to_memory(&img, mem, &size, 0, px, 0, NULL)) {
        snprintf(err, errlen, "%s: %s", path, mem ? img.message : "out of memory");
        free(mem);
        return -1;
    }
    atomic_file af;
    int rc = atomic_file_open(&af, path, err, errlen);
    if (!rc) {
        fwrite(mem, 1, size, af.f);
        rc = atomic_file_commit(&af, err, errlen);
    }
    free(mem);
    return rc;
}

int chart_write(const char *base, const chart_panel *panels, int n, int columns, char *err,
                size_t errlen) {
    if (columns < 1) columns = 1;
    int rows = (n + columns - 1) / columns, w = PANEL_W * (n < columns ? n : columns),
        h = PANEL_H * rows;
    char path[4096];
    snprintf(path, sizeof path, "%s.svg", base);
    atomic_file af;
    if (atomic_file_open(&af, path, err, errlen)) return -1;
    fprintf(af.f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "font-family=\"sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" "
            "fill=\"white\"/>\n",
            w, h);
    backend svg = {svg_line, svg_text, af.f, NULL, w, h};
    layout(&svg, panels, n, columns);
    fprintf(af.f, "</svg>\n");
    if (atomic_file_commit(&af, err, errlen)) return -1;
    backend png = {raster_line, raster_text, NULL, malloc((size_t)w * h * 3), w, h};
    if (!png.px) {
        snprintf(err, errlen, "%s.png: out of memory", base);
        return -1;
    }
    memset(png.px, 0xff, (size_t)w * h * 3);
    layout(&png, panels, n, columns);
    snprintf(path, sizeof path, "%s.png", base);
    int rc = write_png(path, png.px, w, h, err, errlen);
    free(png.px);
    return rc;
}
