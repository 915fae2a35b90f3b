/* Data-parallel training over MPI (run under mpirun on 1, 2 and 3
 * processes): one step of K processes on their shares of a global batch of
 * 7 (3 processes: shares of 2, 2 and 3) against one process on the whole
 * batch, computed here by every process: the logits of its share, each BN
 * layer's saved and running statistics, every gradient after the sum over
 * the processes, and the parameters after the step, within 1e-6 of each
 * tensor's largest magnitude (4e-6 for the gradients, sums over the whole
 * batch in float32 in the one process, and for BN's gamma and beta after
 * the step), with the gradients summed in one bucket and in
 * buckets of 100 floats. Then the same with BN on each share alone (--local-bn), whose statistics
 * must differ from the global batch's when shares differ. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "mpi_comm.h"
#include "nn.h"
#include "oracle.h"
#include "train.h"

#define B    7
#define SIDE 8

/* A residual block (BN+add+ReLU fused in the processes' network), BN+ReLU,
 * and BN per unit before a sigmoid. */
static const char *net_text =
    "conv channels=4\nbn\na: relu\nconv channels=4\nbn\nadd skip=a\nrelu\nmaxpool\n"
    "conv channels=6 stride=2\nbn\nrelu\ndense units=12\nbn\nsigmoid\ndense units=classes\n"
    "softmax\n";

static double max_abs(const float *v, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(v[i]));
    return m;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* Fusion takes layers out of the list: layers are matched by name. */
static const nn_layer *layer_named(const nn_net *net, const char *name) {
    for (int i = 0; i < net->n_layers; i++)
        if (!strcmp(net->layers[i].spec.name, name)) return &net->layers[i];
    return NULL;
}

int main(int argc, char **argv) {
    static nn_comm comm;
    char err[512];
    if (mpi_comm_start(&argc, &argv, &comm, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    static nn_spec spec;
    CHECK(nn_spec_parse(net_text, strlen(net_text), "t", &spec, err, sizeof err) == 0, "%s", err);
    static float x[B * SIDE * SIDE];
    uint8_t y[B];
    test_rng rng = {77};
    for (int i = 0; i < B * SIDE * SIDE; i++)
        x[i] = (float)(rng_normal(&rng) + 0.5);
    for (int i = 0; i < B; i++)
        y[i] = (uint8_t)(i * 3 % 10);
    int lo = B * comm.rank / comm.size, hi = B * (comm.rank + 1) / comm.size, n = hi - lo;
    nn_optim opt = {NN_SGD, 0.1f, 0.9f, 0.9f, 0.999f, 1e-8f, 1e-3f};
    /* Buckets: the default (one), and of 100 floats (several, and tensors
     * larger than a bucket on their own). */
    for (int sync = 1; sync >= -1; sync--) {
        size_t bucket = sync == -1 ? 100 : 0;
        static nn_net one, many;
        CHECK(nn_build(&one, &spec, SIDE, SIDE, 1, 10, 0, B, 1, err, sizeof err) == 0, "%s", err);
        /* The processes run the fused BN+ReLU (the split-phase calls' fused forms). */
        CHECK(nn_build(&many, &spec, SIDE, SIDE, 1, 10, 1, B, 2, err, sizeof err) == 0, "%s", err);
        nn_init_params(&one, 3);
        nn_init_params(&many, 3);
        many.comm = &comm, many.sync_bn = sync != 0, many.loss_batch = B;
        const float *z1 = nn_forward(&one, x, B, 1);
        nn_loss(&one, y, B, NULL);
        nn_backward(&one, x, B);
        const float *zk = nn_forward(&many, x + lo * SIDE * SIDE, n, 1);
        nn_loss(&many, y + lo, n, NULL);
        CHECK(nn_backward(&many, x + lo * SIDE * SIDE, n) == 0 &&
                  nn_sum_gradients(&many, bucket) == 0,
              "rank %d: backward or sum failed", comm.rank);
        const char *what = sync == 1 ? "SyncBN" : sync == 0 ? "local BN" : "SyncBN, small buckets";
        if (sync != 0) {
            double top = max_abs(z1, B * 10);
            CHECK(zk && max_diff(z1 + lo * 10, zk, (size_t)n * 10) <= 1e-6 * top,
                  "%s rank %d of %d: logits off by %.3g (largest %.3g)", what, comm.rank, comm.size,
                  max_diff(z1 + lo * 10, zk, (size_t)n * 10), top);
            for (int i = 0; i < one.n_layers; i++) {
                const nn_layer *a = &one.layers[i], *b = layer_named(&many, a->spec.name);
                if (!a->gamma) continue;
                CHECK(b && b->gamma, "no BN layer %s in the fused network", a->spec.name);
                if (!b || !b->gamma) continue;
                size_t C = (size_t)a->out.c;
                CHECK(max_diff(a->stats, b->stats, 2 * C) <= 1e-6 * max_abs(a->stats, 2 * C),
                      "%s rank %d: %s saved statistics off by %.3g", what, comm.rank, a->spec.name,
                      max_diff(a->stats, b->stats, 2 * C));
                CHECK(max_diff(a->run_var->value, b->run_var->value, C) <=
                              1e-6 * max_abs(a->run_var->value, C) &&
                          max_diff(a->run_mean->value, b->run_mean->value, C) <=
                              1e-6 * max_abs(a->run_mean->value, C) + 1e-12,
                      "%s rank %d: %s running statistics differ (the global count)", what,
                      comm.rank, a->spec.name);
            }
            for (int t = 0; t < one.n_tensors; t++) {
                const nn_tensor *a = &one.tensors[t], *b = &many.tensors[t];
                if (!a->trainable) continue;
                /* Every gradient is a float32 sum over the batch in the one process
                 * (BN's dgamma and dbeta; a convolution's weights, B*H*W products
                 * summed in register tiles whose order follows the number of rows,
                 * so a share's partial sums round differently): 4e-6, libbnorm's
                 * bound for dgamma. A share left out or counted twice is off by
                 * tens of percent. */
                const double tol = 4e-6;
                double off = max_diff(a->grad, b->grad, a->size), top = max_abs(a->grad, a->size);
                CHECK(off <= tol * top, "%s rank %d of %d: gradient of %s off by %.3g of %.3g",
                      what, comm.rank, comm.size, a->name, off, top);
            }
            nn_step(&one, &opt);
            nn_step(&many, &opt);
            for (int t = 0; t < one.n_tensors; t++) {
                const nn_tensor *a = &one.tensors[t], *b = &many.tensors[t];
                double off = max_diff(a->value, b->value, a->size),
                       top = max_abs(a->value, a->size);
                double tol = strstr(a->name, "gamma") || strstr(a->name, "beta") ? 4e-6 : 1e-6;
                CHECK(off <= tol * top, "%s rank %d: %s after the step off by %.3g", what,
                      comm.rank, a->name, off);
            }
        } else if (comm.size > 1) {
            /* Shares normalized apart: the first BN's saved mean is the share's. */
            const nn_layer *a = &one.layers[1], *b = layer_named(&many, a->spec.name);
            CHECK(max_diff(a->stats, b->stats, (size_t)a->out.c) > 1e-4,
                  "local BN rank %d: the share's statistics equal the global batch's", comm.rank);
            /* Gradients are still summed: the same on every process. */
            double g = many.tensors[0].grad[0], lo_g = g, hi_g = g;
            comm.allreduce(comm.ctx, &g, 1);
            double all[2] = {-lo_g, hi_g};
            comm.allreduce(comm.ctx, all, 2);
            CHECK(fabs(g / comm.size - hi_g) <= 1e-6 * fabs(hi_g) + 1e-12,
                  "local BN rank %d: processes hold different gradients", comm.rank);
        }
        nn_free(&one), nn_free(&many);
    }
    int failed = check_failed;
    int ok = mpi_comm_all_ok(&comm, failed == 0);
    if (comm.rank == 0) check_finish();
    mpi_comm_stop();
    return ok ? 0 : 1;
}
