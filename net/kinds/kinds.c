/* The layer kinds, by the id a description gives them (spec.h). */
#include "kind.h"

extern const nn_kind nn_kind_dense, nn_kind_conv, nn_kind_maxpool, nn_kind_avgpool, nn_kind_relu,
    nn_kind_sigmoid, nn_kind_bn, nn_kind_add, nn_kind_softmax;

const nn_kind *const nn_kinds[NN_KIND_COUNT] = {
    [NN_KIND_DENSE] = &nn_kind_dense,     [NN_KIND_CONV] = &nn_kind_conv,
    [NN_KIND_MAXPOOL] = &nn_kind_maxpool, [NN_KIND_AVGPOOL] = &nn_kind_avgpool,
    [NN_KIND_RELU] = &nn_kind_relu,       [NN_KIND_SIGMOID] = &nn_kind_sigmoid,
    [NN_KIND_BN] = &nn_kind_bn,           [NN_KIND_ADD] = &nn_kind_add,
    [NN_KIND_SOFTMAX] = &nn_kind_softmax,
};
