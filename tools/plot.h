/* The small file helpers the tool needs (its charts are chart.h's). */
#ifndef BNORM_TOOLS_PLOT_H
#define BNORM_TOOLS_PLOT_H

#include <stddef.h>

/* Creates a directory and its parents (like mkdir -p). */
int mkdir_p(const char *path, char *err, size_t errlen);

#endif
