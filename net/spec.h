/*
 * spec.h - the text that describes a network, one layer per line:
 *
 *     # a comment runs to the end of the line
 *     [LABEL:] KIND [KEY=VALUE]...
 *
 * A layer reads the layer on the line before it (the first one reads the
 * network's input) unless it says `from=LABEL`; `add` joins its input with
 * a second one, `skip=LABEL`. An unlabelled layer is named layers.K, K its
 * position in the list (0 first), and a layer's tensors are NAME.weight,
 * NAME.bias, NAME.gamma and so on. The kinds and their keys:
 *
 *     dense   units=N|classes  [bias=yes|no]
 *     conv    channels=N [size=3|1] [stride=1|2] [bias=yes|no]
 *             (same padding: the output is ceil(input / stride) on a side)
 *     maxpool                  2x2, stride 2
 *     avgpool                  global average over the pixels
 *     relu, sigmoid
 *     bn                       per channel after a conv, per unit after a dense
 *     add     skip=LABEL       the sum of its input and LABEL's output
 *     softmax                  softmax cross-entropy: the last line, once
 *
 * Without bias=, a dense or conv layer has a bias unless its output goes
 * to a bn alone (BN's shift makes it redundant).
 *
 * Parsed into an nn_spec: layers with their inputs resolved to indices.
 * Rewrites act on the nn_spec: BN placement (none, after the activation),
 * the fused forms that the trainer runs, and folding for inference.
 */
#ifndef NN_SPEC_H
#define NN_SPEC_H

#include <stddef.h>

#define NN_MAX_LAYERS   160
#define NN_MAX_TENSORS  256
#define NN_NAME_MAX     32
#define NN_MAX_SPEC_LEN 16384 /* bytes of description text */
#define NN_MAX_UNITS    65536

typedef enum {
    NN_KIND_DENSE,
    NN_KIND_CONV,
    NN_KIND_MAXPOOL,
    NN_KIND_AVGPOOL,
    NN_KIND_RELU,
    NN_KIND_SIGMOID,
    NN_KIND_BN,
    NN_KIND_ADD,
    NN_KIND_SOFTMAX,
    NN_KIND_COUNT
} nn_kind_id;

typedef struct {
    nn_kind_id kind;
    char name[NN_NAME_MAX]; /* the label, or layers.K */
    int labelled;
    int line;   /* in the text it was parsed from (0: made by a rewrite) */
    int n_in;   /* 1, or 2 for add and a BN with a fused add */
    int in[2];  /* earlier layers' indices; -1 is the network's input */
    int units;  /* dense units, conv channels; 0 = the number of classes */
    int size;   /* conv: 3 or 1 */
    int stride; /* conv: 1 or 2 */
    int bias;   /* dense, conv: 1, 0, or -1: by the rule above */
    int relu;   /* bn: a fused ReLU (rewrite only) */
} nn_spec_layer;

typedef struct {
    int n;
    nn_spec_layer layer[NN_MAX_LAYERS];
} nn_spec;

typedef enum { NN_BN_KEEP, NN_BN_NONE, NN_BN_AFTER } nn_bn_place;

/* The name of a kind in descriptions. */
const char *nn_kind_name(nn_kind_id kind);

/* Parses len bytes of description. Returns 0, or -1 with a message
 * "LINE:COLUMN: what was expected" in err (what names the text, e.g. a
 * file name, and is put first). */
int nn_spec_parse(const char *text, size_t len, const char *what, nn_spec *spec, char *err,
                  size_t errlen);

/* Writes the description back as text that parses to the same nn_spec
 * (layers labelled where another refers to them). Returns the length, or
 * -1 when it does not fit in cap bytes. */
int nn_spec_format(const nn_spec *spec, char *out, size_t cap);

/* BN placement: NN_BN_NONE removes every bn (the layers before them then
 * get a bias); NN_BN_AFTER moves each bn from before its ReLU (or sigmoid)
 * to after it, and a bn on a residual block's main path, before the add
 * that leads to the ReLU, to after that ReLU (a projection's bn, on the
 * skip path, stays). Layers are renamed by
 * their new positions unless labelled. Returns 0, or -1 with a message. */
int nn_spec_place_bn(nn_spec *spec, nn_bn_place place, char *err, size_t errlen);

/* Removes layer i (of one input): its readers read its input instead, and
 * the layers after it move down one. */
void nn_spec_remove_layer(nn_spec *spec, int i);

/* The fused forms: a bn whose output goes to a relu alone becomes a bn with
 * a fused ReLU; a bn whose output goes to an add alone, that add's to a
 * relu alone, becomes a bn with a fused add (the add's other input) and
 * ReLU. The layers it absorbs disappear; names are kept. */
void nn_spec_fuse(nn_spec *spec);

/* The description of a built-in model, or of a description file (a name
 * with a '/' or a '.'). Returns 0, or -1 with a message. */
int nn_spec_for_model(const char *model, nn_spec *spec, char *err, size_t errlen);

/* The built-in models (the files models/NAME.net). */
typedef struct {
    const char *name;
    const char *summary;
    const char *text;
} nn_builtin_model;
extern const nn_builtin_model nn_builtin_models[];
extern const int nn_builtin_model_count;
const nn_builtin_model *nn_find_builtin_model(const char *name);

#endif
