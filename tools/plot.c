#define _POSIX_C_SOURCE 200809L
#include "plot.h"

#include "atomic_file.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *COLORS[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};

int plot_svg(const char *path, const char *title, const char *xlabel, const char *ylabel,
             const plot_series *series, int count, char *err, size_t errlen) {
    const double W = 760, H = 460, L = 70, R = 220, T = 40, B = 50;
    int xmax = 1;
    double ymin = 1.0, ymax = 0.0;
    for (int s = 0; s < count; s++) {
        if (series[s].n > xmax) xmax = series[s].n;
        for (int i = 0; i < series[s].n; i++)
            if (isfinite(series[s].y[i])) {
                ymin = fmin(ymin, series[s].y[i]);
                ymax = fmax(ymax, series[s].y[i]);
            }
    }
    if (ymin > ymax) ymin = 0.0, ymax = 1.0;
    ymin = floor(ymin * 20.0) / 20.0, ymax = ceil(ymax * 20.0) / 20.0;
    if (ymax - ymin < 0.05) ymax = ymin + 0.05;
    atomic_file af;
    if (atomic_file_open(&af, path, err, errlen)) return -1;
    FILE *f = af.f;
#define PX(x) (L + ((x)-1) * (W - L - R) / (xmax > 1 ? xmax - 1 : 1))
#define PY(y) (H - B - ((y)-ymin) * (H - T - B) / (ymax - ymin))
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" "
            "fill=\"white\"/>\n",
            W, H);
    fprintf(f, "<text x=\"%g\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">%s</text>\n",
            (W - R + L) / 2, title);
    for (int k = 0; k <= 5; k++) {
        double y = ymin + (ymax - ymin) * k / 5.0;
        fprintf(f, "<line x1=\"%g\" x2=\"%g\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L,
                W - R, PY(y), PY(y));
        fprintf(f, "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\">%.1f%%</text>\n", L - 6,
                PY(y) + 4, 100.0 * y);
    }
    for (int x = 1; x <= xmax; x++)
        fprintf(f, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%d</text>\n", PX(x),
                H - B + 18, x);
    fprintf(f, "<line x1=\"%g\" x2=\"%g\" y1=\"%g\" y2=\"%g\" stroke=\"black\"/>\n", L, W - R,
            H - B, H - B);
    fprintf(f, "<line x1=\"%g\" x2=\"%g\" y1=\"%g\" y2=\"%g\" stroke=\"black\"/>\n", L, L, T,
            H - B);
    fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%s</text>\n", (W - R + L) / 2,
            H - 12, xlabel);
    fprintf(f,
            "<text x=\"16\" y=\"%g\" text-anchor=\"middle\" transform=\"rotate(-90 16 "
            "%g)\">%s</text>\n",
            (H - B + T) / 2, (H - B + T) / 2, ylabel);
    for (int s = 0; s < count; s++) {
        const char *c = COLORS[s % 6];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", c);
        for (int i = 0; i < series[s].n; i++)
            if (isfinite(series[s].y[i])) fprintf(f, "%.1f,%.1f ", PX(i + 1), PY(series[s].y[i]));
        fprintf(f, "\"/>\n");
        for (int i = 0; i < series[s].n; i++)
            if (isfinite(series[s].y[i]))
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", PX(i + 1),
                        PY(series[s].y[i]), c);
        double ly = T + 20 + 22 * s;
        fprintf(
            f, "<line x1=\"%g\" x2=\"%g\" y1=\"%g\" y2=\"%g\" stroke=\"%s\" stroke-width=\"3\"/>\n",
            W - R + 15, W - R + 40, ly, ly, c);
        fprintf(f, "<text x=\"%g\" y=\"%g\">%s%s</text>\n", W - R + 46, ly + 4, series[s].name,
                series[s].diverged ? " (diverged)" : "");
    }
    fprintf(f, "</svg>\n");
#undef PX
#undef PY
    return atomic_file_commit(&af, err, errlen);
}

int mkdir_p(const char *path, char *err, size_t errlen) {
    char buf[4096];
    if (strlen(path) >= sizeof buf) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                snprintf(err, errlen, "%s: cannot create directory (%s)", buf, strerror(errno));
                return -1;
            }
            *p = c;
            struct stat sb;
            if (stat(buf, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
                snprintf(err, errlen, "%s: exists and is not a directory", buf);
                return -1;
            }
            if (!c) break;
        }
    }
    return 0;
}
