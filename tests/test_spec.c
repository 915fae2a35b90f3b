/* Network descriptions: every parse error with its line, column and what
 * was expected; the built-in models written back and parsed again; the BN
 * placement rewrites; shape errors when a description meets its input. */
#include <string.h>

#include "check.h"
#include "nn.h"

static nn_spec spec;

static void expect_error(const char *text, const char *where, const char *what) {
    char err[512] = "";
    int rc = nn_spec_parse(text, strlen(text), "t.net", &spec, err, sizeof err);
    CHECK(rc == -1 && strstr(err, where) && strstr(err, what), "'%s': got '%s', expected '%s' '%s'",
          text, err, where, what);
}

static void check_errors(void) {
    expect_error("", "t.net:1:1", "at least one layer");
    expect_error("# only a comment\n", "t.net:2:1", "at least one layer");
    expect_error("dense units=10\n", "t.net:2:1", "last layer to be softmax");
    expect_error("dense units=10\nsoftmax\nrelu\n", "t.net:3:1", "softmax must be the last");
    expect_error("dens units=10\nsoftmax\n", "t.net:1:1", "expected a layer kind");
    expect_error("  dense\nsoftmax\n", "t.net:1:8", "dense needs units=");
    expect_error("conv size=1\nsoftmax\n", "t.net:1:12", "conv needs channels=");
    expect_error("dense units=0\nsoftmax\n", "t.net:1:13", "a number from 1 to 65536");
    expect_error("dense units=1x\nsoftmax\n", "t.net:1:13", "found '1x'");
    expect_error("dense units=99999999999\nsoftmax\n", "t.net:1:13", "a number from 1");
    expect_error("dense units=10 stride=2\nsoftmax\n", "t.net:1:16", "dense takes no key 'stride'");
    expect_error("dense 10\nsoftmax\n", "t.net:1:7", "expected KEY=VALUE");
    expect_error("conv channels=4 size=5\nsoftmax\n", "t.net:1:22", "size 1 or 3");
    expect_error("conv channels=4 stride=3\nsoftmax\n", "t.net:1:24", "stride 1 or 2");
    expect_error("conv channels=4 bias=maybe\nsoftmax\n", "t.net:1:22", "bias=yes or bias=no");
    expect_error("relu from=nowhere\nsoftmax\n", "t.net:1:11", "no layer named 'nowhere'");
    expect_error("a: relu\nrelu\nadd\nsoftmax\n", "t.net:3:4", "add needs skip=");
    expect_error("a: relu\nadd skip=b\nb: relu\nsoftmax\n", "t.net:2:10", "no layer named 'b'");
    expect_error("a: relu\nadd skip=a\nsoftmax\n", "t.net:2:11", "two different layers");
    expect_error("a: relu\na: relu\nsoftmax\n", "t.net:2:1", "'a' is taken");
    expect_error("layers.1: relu\nrelu\nsoftmax\n", "t.net:2:1", "'layers.1' is taken");
    expect_error("a b: relu\nsoftmax\n", "t.net:1:1", "expected a layer kind");
    expect_error("a$: relu\nsoftmax\n", "t.net:1:2", "a label is letters");
    expect_error(": relu\nsoftmax\n", "t.net:1:1", "a label before ':'");
    expect_error("input: relu\nsoftmax\n", "t.net:1:1", "names the network's input");
    expect_error("x:\nsoftmax\n", "t.net:1:3", "a layer kind after the label");
    expect_error("relu\nsigmoid from=input\nsoftmax\n", "t.net:1:1", "never used");
    expect_error("relu \xc3\xa9\nsoftmax\n", "t.net:1:6", "not printable ASCII");
    char many[160 * 6 + 16] = "";
    for (int i = 0; i < 161; i++)
        strcat(many, "relu\n");
    expect_error(many, "t.net:161:1", "too many layers");
    char longline[600];
    memset(longline, 'a', sizeof longline);
    memcpy(longline + sizeof longline - 9, "\nsoftmax", 9);
    expect_error(longline, "t.net:1:", "a line of at most");
}

static int same_spec(const nn_spec *a, const nn_spec *b) {
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++) {
        const nn_spec_layer *x = &a->layer[i], *y = &b->layer[i];
        if (x->kind != y->kind || strcmp(x->name, y->name) || x->n_in != y->n_in ||
            x->in[0] != y->in[0] || (x->n_in == 2 && x->in[1] != y->in[1]) ||
            x->units != y->units || x->size != y->size || x->stride != y->stride ||
            x->bias != y->bias)
            return 0;
    }
    return 1;
}

static int count(const nn_spec *s, nn_kind_id kind) {
    int n = 0;
    for (int i = 0; i < s->n; i++)
        n += s->layer[i].kind == kind;
    return n;
}

static void check_models(void) {
    static nn_spec again;
    static char text[NN_MAX_SPEC_LEN];
    char err[512];
    for (int m = 0; m < nn_builtin_model_count; m++) {
        const nn_builtin_model *b = &nn_builtin_models[m];
        for (int place = NN_BN_KEEP; place <= NN_BN_AFTER; place++) {
            CHECK(nn_spec_for_model(b->name, &spec, err, sizeof err) == 0, "%s: %s", b->name, err);
            int bn = count(&spec, NN_KIND_BN), relu = count(&spec, NN_KIND_RELU);
            CHECK(nn_spec_place_bn(&spec, (nn_bn_place)place, err, sizeof err) == 0, "%s", err);
            int len = nn_spec_format(&spec, text, sizeof text);
            CHECK(len > 0 &&
                      nn_spec_parse(text, (size_t)len, b->name, &again, err, sizeof err) == 0,
                  "%s placement %d written back: %s\n%s", b->name, place, err, text);
            CHECK(same_spec(&spec, &again), "%s placement %d: the text parses to another network",
                  b->name, place);
            CHECK(count(&spec, NN_KIND_BN) == (place == NN_BN_NONE ? 0 : bn) &&
                      count(&spec, NN_KIND_RELU) == relu && bn > 0,
                  "%s placement %d: %d BN, %d ReLU", b->name, place, count(&spec, NN_KIND_BN),
                  count(&spec, NN_KIND_RELU));
            /* After the activation: every BN reads a ReLU or sigmoid, but
             * the projections' BN on a residual block's skip path. */
            for (int i = 0; place == NN_BN_AFTER && i < spec.n; i++)
                if (spec.layer[i].kind == NN_KIND_BN)
                    CHECK(spec.layer[spec.layer[i].in[0]].kind == NN_KIND_RELU ||
                              spec.layer[spec.layer[i].in[0]].kind == NN_KIND_SIGMOID ||
                              (spec.layer[i + 1].kind == NN_KIND_CONV &&
                               spec.layer[spec.layer[i].in[0]].kind == NN_KIND_CONV &&
                               spec.layer[spec.layer[i].in[0]].size == 1),
                          "%s: bn %s reads a %s", b->name, spec.layer[i].name,
                          nn_kind_name(spec.layer[spec.layer[i].in[0]].kind));
            nn_net net;
            CHECK(nn_describe(&net, &spec, 28, 28, 1, 10, 1, err, sizeof err) == 0, "%s: %s",
                  b->name, err);
            /* A plain stack ping-pongs between two gradient buffers. */
            CHECK(!strcmp(b->name, "resnet") || net.n_grad_buffers == 2, "%s: %d gradient buffers",
                  b->name, net.n_grad_buffers);
        }
    }
    /* The residual network: six fused BN+add+ReLU and every projection's BN
     * left alone; the convolutions before BN have no bias, without BN they do. */
    CHECK(nn_spec_for_model("resnet", &spec, err, sizeof err) == 0, "%s", err);
    nn_net net;
    CHECK(nn_describe(&net, &spec, 28, 28, 1, 10, 1, err, sizeof err) == 0, "%s", err);
    int fused_add = 0, fused_relu = 0, biased = 0;
    for (int i = 0; i < net.n_layers; i++) {
        fused_add += net.layers[i].spec.n_in == 2 && net.layers[i].spec.kind == NN_KIND_BN;
        fused_relu += net.layers[i].spec.relu;
        biased += net.layers[i].bias != NULL;
    }
    CHECK(fused_add == 6 && fused_relu == 13 && biased == 1,
          "resnet: %d BN+add+ReLU, %d with ReLU, %d biases", fused_add, fused_relu, biased);
    CHECK(net.n_grad_buffers == 3,
          "resnet: %d gradient buffers, expected 3 (the skip's gradient, "
          "the main path's, a temporary for the second reader)",
          net.n_grad_buffers);
    CHECK(net.layers[net.n_layers - 3].out.h == 1 && net.layers[net.n_layers - 4].out.h == 7,
          "resnet: 28 -> 14 -> 7 -> global pool");
    CHECK(nn_spec_place_bn(&spec, NN_BN_NONE, err, sizeof err) == 0, "%s", err);
    CHECK(nn_describe(&net, &spec, 28, 28, 1, 10, 1, err, sizeof err) == 0, "%s", err);
    biased = 0;
    for (int i = 0; i < net.n_layers; i++)
        biased += net.layers[i].bias != NULL;
    CHECK(biased == 16, "resnet without BN: %d layers with bias, expected 15 conv + 1 dense",
          biased);
}

static void expect_shape_error(const char *text, int side, const char *what) {
    char err[512] = "";
    nn_net net;
    CHECK(nn_spec_parse(text, strlen(text), "t", &spec, err, sizeof err) == 0, "%s", err);
    CHECK(nn_describe(&net, &spec, side, side, 1, 10, 1, err, sizeof err) == -1 &&
              strstr(err, what),
          "'%s': got '%s', expected '%s'", text, err, what);
}

static void check_shapes(void) {
    expect_shape_error("a: conv channels=4\nconv channels=4 stride=2\nadd skip=a\n"
                       "dense units=classes\nsoftmax\n",
                       8, "add joins 4x4x4 with 8x8x4");
    expect_shape_error("dense units=5\nsoftmax\n", 8, "softmax reads 5 values per sample");
    expect_shape_error("maxpool\nmaxpool\ndense units=classes\nsoftmax\n", 3, "too small");
}

int main(void) {
    check_errors();
    check_models();
    check_shapes();
    return check_finish();
}
