/* bn: batch normalization through libbnorm, per channel after a
 * convolution (NHWC) and per unit after a dense layer (NC); with a fused
 * ReLU, and a fused residual add (its second input), where the description
 * has that pattern (nn_spec_fuse). */
#include <stdio.h>
#include <stdlib.h>

#include "kind.h"

static int setup(nn_net *net, nn_layer *l, const nn_dims *in2, char *err, size_t errlen) {
    if (l->spec.n_in == 2 && (in2->h != l->in.h || in2->w != l->in.w || in2->c != l->in.c)) {
        snprintf(err, errlen, "bn with a fused add joins %dx%dx%d with %dx%dx%d", l->in.h, l->in.w,
                 l->in.c, in2->h, in2->w, in2->c);
        return -1;
    }
    l->out = l->in;
    int64_t c = l->out.c;
    l->gamma = nn_add_tensor(net, l, "gamma", 1, &c, 1);
    l->beta = nn_add_tensor(net, l, "beta", 1, &c, 1);
    l->run_mean = nn_add_tensor(net, l, "running_mean", 1, &c, 0);
    l->run_var = nn_add_tensor(net, l, "running_var", 1, &c, 0);
    return 0;
}

static bnorm_shape shape(const nn_layer *l, int n) {
    if (l->out.h == 1 && l->out.w == 1) return bnorm_shape_nc(n, l->out.c);
    return bnorm_shape_nhwc(n, l->out.h, l->out.w, l->out.c);
}

static bnorm_params params(const nn_net *net, const nn_layer *l, int n) {
    bnorm_params p = bnorm_params_default(); /* decay 0.9 = PyTorch momentum 0.1 */
    /* A dense layer's batch (64 x 256 floats) is done before a thread team
     * would have started; a conv layer's (64 x 28 x 28 x 32) is worth
     * splitting, and on all the threads, not one per 128 Ki values as the
     * library would start for a tensor that may be cold: the network's
     * activations are in cache and its threads are awake (64 x 7 x 7 x 64,
     * the residual CNN's last stage, on 2 threads instead of 1: its
     * training step 2.5% faster). */
    p.threads = (size_t)n * l->out_size >= 65536 ? net->threads : 1;
    if (p.threads > 1) p.flags |= BNORM_EXACT_THREADS;
    return p;
}

static bnorm_fusion fusion(const nn_layer *l) {
    bnorm_fusion f = {0, BNORM_DTYPE_F32};
    if (l->spec.relu) f.ops |= BNORM_FUSE_RELU;
    if (l->spec.n_in == 2) f.ops |= BNORM_FUSE_ADD;
    return f;
}

static void plan(const nn_net *net, const nn_layer *l, nn_plan *need) {
    bnorm_shape s = shape(l, net->max_batch);
    bnorm_params p = params(net, l, net->max_batch);
    /* The saved mean and invstd, then (SyncBN) the global moments record, in double. */
    need->stat_floats = 2 * (size_t)l->out.c + 2 * BNORM_MOMENTS_DOUBLES((size_t)l->out.c);
    if (l->spec.relu && bnorm_fused_mask_size(&s, &need->aux_bytes) != BNORM_OK)
        need->aux_bytes = SIZE_MAX;
    if (bnorm_workspace_size(&s, &p, &need->work_bytes) != BNORM_OK) need->work_bytes = SIZE_MAX;
}

static void init(nn_layer *l, nn_rng *rng) {
    (void)rng;
    for (int c = 0; c < l->out.c; c++)
        l->gamma->value[c] = 1.0f, l->run_var->value[c] = 1.0f;
    l->bn_steps = 0;
}

/* The global moments record, kept from the forward for the backward. */
static double *global_record(const nn_layer *l) {
    return (double *)(void *)(l->stats + 2 * l->out.c);
}

/* SyncBN forward: the share's moments, gathered from every process and
 * merged in rank order, normalize the share. */
static int forward_synced(const nn_pass *p, const bnorm_shape *s, const bnorm_params *prm,
                          const bnorm_fusion *f) {
    nn_layer *l = p->l;
    nn_net *net = p->net;
    const nn_comm *comm = net->comm;
    int64_t C = l->out.c;
    int per = BNORM_MOMENTS_DOUBLES((int)C);
    double *global = global_record(l),
           *all = nn_comm_buffer(net, (size_t)per * comm->size * sizeof(double));
    int rc = -1;
    if (!all) return -1;
    bnorm_running_stats run = {l->run_mean->value, l->run_var->value, l->bn_steps};
    if (bnorm_local_moments(s, prm, p->in[0], global, net->work, net->work_bytes) == BNORM_OK &&
        comm->allgather(comm->ctx, global, per, all) == 0 &&
        bnorm_merge_moments(C, comm->size, all, global) == BNORM_OK &&
        bnorm_fused_forward_training_global(s, prm, f, p->in[0], p->in[1], l->gamma->value,
                                            l->beta->value, global, l->act, l->stats, l->stats + C,
                                            &run, l->aux, net->work, net->work_bytes) == BNORM_OK)
        rc = 0;
    l->bn_steps = run.count;
    /* gamma and beta get the global batch's gradients: not to be summed again. */
    l->gamma->global = l->beta->global = 1;
    return rc;
}

/* SyncBN backward: the share's sums, summed over every process, give dx of
 * the share and the global batch's dgamma and dbeta. */
static int backward_synced(const nn_pass *p, const bnorm_shape *s, const bnorm_params *prm,
                           const bnorm_fusion *f) {
    nn_layer *l = p->l;
    nn_net *net = p->net;
    int64_t C = l->out.c;
    double *sums = nn_comm_buffer(net, 2 * (size_t)C * sizeof(double));
    /* g, the gradient at BN's output: dz with a fused add, else dx (which
     * apply then overwrites in place), or dy itself without a fused ReLU. */
    float *g = f->ops & BNORM_FUSE_ADD ? p->din[1] : f->ops ? p->din[0] : (float *)p->g;
    int rc = -1;
    if (sums &&
        bnorm_fused_backward_local_sums(s, prm, f, p->in[0], p->g, l->aux, global_record(l), g,
                                        sums, net->work, net->work_bytes) == BNORM_OK &&
        net->comm->allreduce(net->comm->ctx, sums, 2 * (int)C) == 0 &&
        bnorm_backward_apply(s, prm, p->in[0], g, l->gamma->value, global_record(l), sums,
                             p->din[0], l->gamma->grad, l->beta->grad, net->work,
                             net->work_bytes) == BNORM_OK)
        rc = 0;
    return rc;
}

static int forward_batch(const nn_pass *p) {
    nn_layer *l = p->l;
    nn_net *net = p->net;
    bnorm_shape s = shape(l, p->n);
    bnorm_params prm = params(net, l, p->n);
    bnorm_fusion f = fusion(l);
    float *save_mean = l->stats, *save_invstd = l->stats + l->out.c;
    bnorm_status st;
    if (p->training && net->comm && net->sync_bn) {
        return forward_synced(p, &s, &prm, &f);
    }
    if (p->training) {
        bnorm_running_stats run = {l->run_mean->value, l->run_var->value, l->bn_steps};
        if (f.ops)
            st = bnorm_fused_forward_training(&s, &prm, &f, p->in[0], p->in[1], l->gamma->value,
                                              l->beta->value, l->act, save_mean, save_invstd, &run,
                                              l->aux, net->work, net->work_bytes);
        else
            st = bnorm_forward_training(&s, &prm, p->in[0], l->gamma->value, l->beta->value, l->act,
                                        save_mean, save_invstd, &run, net->work, net->work_bytes);
        l->bn_steps = run.count;
    } else if (f.ops) {
        st = bnorm_fused_forward_inference(&s, &prm, &f, p->in[0], p->in[1], l->gamma->value,
                                           l->beta->value, l->run_mean->value, l->run_var->value,
                                           l->act, net->work, net->work_bytes);
    } else {
        st = bnorm_forward_inference(&s, &prm, p->in[0], l->gamma->value, l->beta->value,
                                     l->run_mean->value, l->run_var->value, l->act, net->work,
                                     net->work_bytes);
    }
    return st == BNORM_OK ? 0 : -1;
}

static int backward_batch(const nn_pass *p) {
    nn_layer *l = p->l;
    nn_net *net = p->net;
    bnorm_shape s = shape(l, p->n);
    bnorm_params prm = params(net, l, p->n);
    bnorm_fusion f = fusion(l);
    const float *save_mean = l->stats, *save_invstd = l->stats + l->out.c;
    if (net->comm && net->sync_bn) return backward_synced(p, &s, &prm, &f);
    bnorm_status st;
    if (f.ops)
        st = bnorm_fused_backward_training(
            &s, &prm, &f, p->in[0], p->g, l->aux, l->gamma->value, save_mean, save_invstd,
            p->din[0], p->din[1], l->gamma->grad, l->beta->grad, net->work, net->work_bytes);
    else
        st = bnorm_backward_training(&s, &prm, p->in[0], p->g, l->gamma->value, save_mean,
                                     save_invstd, p->din[0], l->gamma->grad, l->beta->grad,
                                     net->work, net->work_bytes);
    return st == BNORM_OK ? 0 : -1;
}

/* Units [c0, c1) of one sample, in test mode. */
static int one_units(const nn_layer *l, const float *in, float *out, int c0, int c1, void *ws,
                     size_t ws_size) {
    if (c1 == c0) return 0;
    bnorm_shape sh = bnorm_shape_nc(1, c1 - c0);
    bnorm_params p = bnorm_params_default();
    bnorm_fusion f = fusion(l);
    const float *gamma = l->gamma->value + c0, *beta = l->beta->value + c0;
    const float *mean = l->run_mean->value + c0, *var = l->run_var->value + c0;
    bnorm_status st = f.ops ? bnorm_fused_forward_inference(&sh, &p, &f, in + c0, NULL, gamma, beta,
                                                            mean, var, out + c0, ws, ws_size)
                            : bnorm_forward_inference(&sh, &p, in + c0, gamma, beta, mean, var,
                                                      out + c0, ws, ws_size);
    return st == BNORM_OK ? 0 : -1;
}

const nn_kind nn_kind_bn = {.setup = setup,
                            .plan = plan,
                            .init = init,
                            .forward_batch = forward_batch,
                            .backward_batch = backward_batch,
                            .needs_din = 1,
                            .one_units = one_units};
