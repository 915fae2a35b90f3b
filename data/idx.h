/* Reading MNIST-format IDX files (plain or gzip) and the Fashion-MNIST set. */
#ifndef BNORM_DATA_IDX_H
#define BNORM_DATA_IDX_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t count;    /* samples */
    int rows, cols;  /* 28 x 28 */
    uint8_t *pixels; /* [count][rows][cols] */
    uint8_t *labels; /* [count], each < 10 */
} idx_set;

/* Loads an image file and a label file. Returns 0, or -1 with a message in
 * err naming the file and the problem (wrong magic, dimensions that disagree
 * with the data, truncation, labels out of range, counts that differ).
 * Nothing is kept on failure. */
int idx_load(const char *images_path, const char *labels_path, idx_set *set, char *err,
             size_t errlen);
void idx_free(idx_set *set);

/* idx_load on the (decompressed) bytes of the two files; the names are used
 * in messages. */
int idx_parse(const uint8_t *images, size_t images_len, const uint8_t *labels, size_t labels_len,
              const char *images_name, const char *labels_name, idx_set *set, char *err,
              size_t errlen);

/* Loads train-* and t10k-* from a directory, trying the .gz names first. */
int idx_load_dir(const char *dir, int test, idx_set *set, char *err, size_t errlen);

#define IDX_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"

#endif
