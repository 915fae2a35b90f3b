/* libFuzzer target: the safetensors JSON header parser alone. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static st_header h;
    char err[512];
    if (st_header_parse((const char *)data, size, &h, err, sizeof err) == 0) {
        /* Every name and value is a terminated string; names are unique. */
        for (int i = 0; i < h.n_entries; i++) {
            if (!memchr(h.entries[i].name, 0, sizeof h.entries[i].name)) __builtin_trap();
            if (h.entries[i].rank > ST_MAX_RANK) __builtin_trap();
            if (st_find(&h, h.entries[i].name) != &h.entries[i]) __builtin_trap();
        }
        for (int i = 0; i < h.n_meta; i++)
            if (st_meta_get(&h, h.meta[i].key) != h.meta[i].value) __builtin_trap();
    }
    return 0;
}
