/* A model file from an independent writer (tests/fixtures/
 * make_safetensors_fixture.py, numpy only): bnorm loads it, takes the
 * metadata, and its test-mode forward pass gives the logits that the script
 * computed in float64 from the same tensors. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "checkpoint.h"
#include "nn.h"
#include "safetensors.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.safetensors LOGITS.txt\n", argv[0]);
        return 2;
    }
    nn_net net;
    ckpt_info info;
    char err[1024];
    for (int threads = 1; threads <= 2; threads++) {
        if (ckpt_load(argv[1], &net, &info, 8, threads, err, sizeof err)) {
            CHECK(0, "load: %s", err);
            return check_finish();
        }
        CHECK(strcmp(info.model, "cnn") == 0 && info.pixel_mean == 0.125f &&
                  info.pixel_std == 2.5f && net.in_h == 4 && net.in_w == 4 && net.in_c == 1 &&
                  net.classes == 10,
              "metadata: model %s mean %g std %g input %dx%dx%d classes %d", info.model,
              info.pixel_mean, info.pixel_std, net.in_h, net.in_w, net.in_c, net.classes);
        FILE *f = fopen(argv[2], "r");
        CHECK(f != NULL, "cannot open %s", argv[2]);
        if (!f) return check_finish();
        char line[4096];
        CHECK(fgets(line, sizeof line, f) != NULL, "empty %s", argv[2]);
        float x[16], batch[5 * 16];
        double want[5][10];
        int cases = 0;
        for (; cases < 5; cases++) {
            int ok = 1;
            for (int k = 0; k < 16; k++)
                ok &= fscanf(f, "%f", &x[k]) == 1;
            for (int k = 0; k < 10; k++)
                ok &= fscanf(f, "%lf", &want[cases][k]) == 1;
            if (!ok) break;
            memcpy(batch + cases * 16, x, sizeof x);
            const float *z = nn_forward(&net, x, 1, 0);
            double worst = 0.0;
            for (int k = 0; k < 10; k++)
                worst = fmax(worst, fabs(z[k] - want[cases][k]) / (1.0 + fabs(want[cases][k])));
            CHECK(worst < 1e-5, "threads %d, input %d alone: logits off by %.3g", threads, cases,
                  worst);
        }
        fclose(f);
        CHECK(cases == 5, "%s: read %d cases, expected 5", argv[2], cases);
        const float *z = nn_forward(&net, batch, cases, 0);
        for (int c = 0; c < cases; c++) {
            double worst = 0.0;
            for (int k = 0; k < 10; k++)
                worst = fmax(worst, fabs(z[c * 10 + k] - want[c][k]) / (1.0 + fabs(want[c][k])));
            CHECK(worst < 1e-5, "threads %d, input %d in a batch: logits off by %.3g", threads, c,
                  worst);
        }
        nn_free(&net);
    }
    return check_finish();
}
