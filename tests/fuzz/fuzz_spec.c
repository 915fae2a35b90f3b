/* libFuzzer target: the network description parser, and what is done with
 * a description that parses: written back, it parses to the same text; the
 * placement rewrites and the fused form keep it well formed; described for
 * 28x28 inputs, it is either refused with a message or has a loss layer. */
#include <stdint.h>
#include <string.h>

#include "nn.h"

static nn_spec spec, again;
static nn_net net;
static char text[NN_MAX_SPEC_LEN + 1], text2[NN_MAX_SPEC_LEN + 1];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[512];
    if (nn_spec_parse((const char *)data, size, "fuzz", &spec, err, sizeof err)) {
        if (!memchr(err, 0, sizeof err) || strncmp(err, "fuzz:", 5)) __builtin_trap();
        return 0;
    }
    int len = nn_spec_format(&spec, text, sizeof text);
    if (len < 0) return 0; /* labels and keys made it longer than a description may be */
    if (nn_spec_parse(text, (size_t)len, "again", &again, err, sizeof err)) __builtin_trap();
    if (nn_spec_format(&again, text2, sizeof text2) != len || memcmp(text, text2, (size_t)len))
        __builtin_trap();
    for (int place = NN_BN_KEEP; place <= NN_BN_AFTER; place++) {
        again = spec;
        if (nn_spec_place_bn(&again, (nn_bn_place)place, err, sizeof err)) continue;
        for (int fuse = 0; fuse <= 1; fuse++) {
            if (nn_describe(&net, &again, 28, 28, 1, 10, fuse, err, sizeof err) == 0) {
                if (net.n_layers < 1 || net.layers[net.n_layers - 1].spec.kind != NN_KIND_SOFTMAX)
                    __builtin_trap();
            } else if (!memchr(err, 0, sizeof err)) {
                __builtin_trap();
            }
        }
    }
    return 0;
}
