/* Reading one grayscale image: binary (P5) or plain (P2) PGM with 8-bit
 * samples, or PNG of any colour type (converted to gray by libpng). */
#ifndef BNORM_DATA_IMAGE_H
#define BNORM_DATA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define IMAGE_MAX_FILE ((size_t)64 << 20)

/* Decodes an image that must be exactly h x w into px[h*w] as values 0..255
 * (PGM samples are scaled from 0..maxval). Returns 0, or -1 with a message
 * that starts with name and says what is wrong; px is untouched then. */
int image_decode_gray(const uint8_t *buf, size_t len, const char *name, int h, int w, float *px,
                      char *err, size_t errlen);

/* image_decode_gray on a file of at most IMAGE_MAX_FILE bytes. */
int image_read_gray(const char *path, int h, int w, float *px, char *err, size_t errlen);

#endif
