/* The safetensors file format: an 8-byte little-endian header length, a
 * JSON header (per tensor: dtype, shape, data_offsets; string pairs under
 * "__metadata__"), then the raw little-endian tensor data. This module knows
 * the format only; net/checkpoint.h maps a network onto it.
 *
 * Limits, checked before anything is allocated for them: a header of at
 * most ST_MAX_HEADER bytes, a file of at most ST_MAX_FILE bytes, at most
 * ST_MAX_TENSORS tensors of rank up to ST_MAX_RANK, names up to
 * ST_NAME_MAX - 1 bytes, and ST_MAX_META metadata pairs of values up to
 * ST_META_VALUE - 1 bytes. */
#ifndef BNORM_DATA_SAFETENSORS_H
#define BNORM_DATA_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_HEADER  (1u << 20)
#define ST_MAX_FILE    ((uint64_t)1 << 32)
#define ST_MAX_TENSORS 256
#define ST_MAX_RANK    8
#define ST_NAME_MAX    128
#define ST_MAX_META    32
#define ST_META_VALUE  16384 /* bytes of a metadata value, NUL included */

typedef struct {
    char name[ST_NAME_MAX];
    char dtype[16]; /* "F32", "F16", "I64", ... as written */
    int rank;
    uint64_t shape[ST_MAX_RANK];
    uint64_t begin, end; /* byte offsets into the data section */
} st_entry;

typedef struct {
    char key[64];
    char value[ST_META_VALUE];
} st_meta;

typedef struct {
    int n_entries;
    st_entry entries[ST_MAX_TENSORS];
    int n_meta;
    st_meta meta[ST_MAX_META];
} st_header;

/* Parses a JSON header of len bytes (not NUL-terminated). Checks the JSON
 * and each entry's fields (dtype, shape and two offsets, each once, no
 * other field; names unique), not the offsets against any data. Returns 0,
 * or -1 with a message that gives the byte where the header went wrong. */
int st_header_parse(const char *json, size_t len, st_header *h, char *err, size_t errlen);

/* Parses a whole file held in memory: the length prefix, the header, and
 * every tensor's offsets against the data (inside it, in order, no overlap,
 * exactly the bytes its dtype and shape need; an unknown dtype is refused).
 * *data receives where the data section starts within buf. */
int st_parse(const uint8_t *buf, size_t len, st_header *h, const uint8_t **data, char *err,
             size_t errlen);

const st_entry *st_find(const st_header *h, const char *name);
/* The metadata value for key, or NULL. */
const char *st_meta_get(const st_header *h, const char *key);

/* A float32 tensor to write. */
typedef struct {
    const char *name;
    int rank;
    const int64_t *shape;
    const float *data;
    size_t count; /* product of shape */
} st_tensor;

/* Writes the tensors (F32) and metadata atomically (atomic_file.h), the
 * data 8-byte aligned. Returns 0, or -1 with a message naming path. */
int st_write(const char *path, const st_meta *meta, int n_meta, const st_tensor *tensors, int n,
             char *err, size_t errlen);

#endif
