/* Folding test-mode batch norm into the layer before it (bnorm.h,
 * "FOLDING FOR INFERENCE"). */
#include <math.h>
#include <stdint.h>

#include "bnorm.h"
#include "internal.h"

static bnorm_status check_fold(int64_t features, const float *mean, const float *var, float eps) {
    if (!mean || !var) return BNORM_ERR_NULL_POINTER;
    if (features <= 0) return BNORM_ERR_INVALID_DIMENSION;
    if ((uint64_t)features > SIZE_MAX / sizeof(double)) return BNORM_ERR_DIMENSION_OVERFLOW;
    if (!(eps > 0.0f) || isinf(eps)) return BNORM_ERR_INVALID_EPS;
    return BNORM_OK;
}

/* The test-mode scale of feature f, in double. */
static double fold_scale(const float *gamma, const float *var, float eps, size_t f) {
    return (gamma ? (double)gamma[f] : 1.0) / sqrt((double)var[f] + (double)eps);
}

bnorm_status bnorm_fold_scale_shift(int64_t features, const float *gamma, const float *beta,
                                    const float *mean, const float *var, float eps, float *scale,
                                    float *shift) {
    bnorm_status st = check_fold(features, mean, var, eps);
    if (st != BNORM_OK) return st;
    if (!scale || !shift) return BNORM_ERR_NULL_POINTER;
    for (size_t f = 0; f < (size_t)features; f++) {
        double a = fold_scale(gamma, var, eps, f);
        scale[f] = (float)a;
        shift[f] = (float)((beta ? (double)beta[f] : 0.0) - (double)mean[f] * a);
    }
    return BNORM_OK;
}

bnorm_status bnorm_fold_into_layer(int64_t out_channels, int64_t fan_in, bnorm_weight_order order,
                                   const float *weight, const float *bias, const float *gamma,
                                   const float *beta, const float *mean, const float *var,
                                   float eps, float *weight_out, float *bias_out) {
    bnorm_status st = check_fold(out_channels, mean, var, eps);
    if (st != BNORM_OK) return st;
    if (!weight || !weight_out || !bias_out) return BNORM_ERR_NULL_POINTER;
    if (fan_in <= 0) return BNORM_ERR_INVALID_DIMENSION;
    if ((uint64_t)fan_in > SIZE_MAX / sizeof(float) / (uint64_t)out_channels)
        return BNORM_ERR_DIMENSION_OVERFLOW;
    if (order != BNORM_WEIGHTS_OUT_FIRST && order != BNORM_WEIGHTS_OUT_LAST)
        return BNORM_ERR_INVALID_LAYOUT;
    const size_t C = (size_t)out_channels, K = (size_t)fan_in;
    /* Biases first: bias_out may be bias, and the weights do not need them. */
    for (size_t o = 0; o < C; o++) {
        double a = fold_scale(gamma, var, eps, o);
        double b = bias ? (double)bias[o] : 0.0;
        bias_out[o] = (float)((b - (double)mean[o]) * a + (beta ? (double)beta[o] : 0.0));
    }
    if (order == BNORM_WEIGHTS_OUT_FIRST) {
        for (size_t o = 0; o < C; o++) {
            double a = fold_scale(gamma, var, eps, o);
            for (size_t k = 0; k < K; k++)
                weight_out[o * K + k] = (float)((double)weight[o * K + k] * a);
        }
    } else {
        for (size_t o = 0; o < C; o++) {
            double a = fold_scale(gamma, var, eps, o);
            for (size_t k = 0; k < K; k++)
                weight_out[k * C + o] = (float)((double)weight[k * C + o] * a);
        }
    }
    return BNORM_OK;
}
