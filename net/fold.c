/* Folding every foldable BN of a trained network into the layer before it,
 * for inference (nn.h, nn_fold). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kind.h"

/* Whether the bn at i reads a dense or conv layer that nobody else reads. */
static int foldable_at(const nn_spec *spec, int i) {
    const nn_spec_layer *bn = &spec->layer[i];
    if (bn->kind != NN_KIND_BN || bn->n_in != 1 || bn->in[0] < 0) return 0;
    int p = bn->in[0];
    if (!nn_kinds[spec->layer[p].kind]->foldable) return 0;
    for (int j = 0; j < spec->n; j++)
        for (int k = 0; k < spec->layer[j].n_in; k++)
            if (spec->layer[j].in[k] == p && j != i) return 0;
    return 1;
}

static const nn_tensor *find(const nn_net *net, const char *layer, const char *what) {
    char name[NN_NAME_MAX + 16];
    snprintf(name, sizeof name, "%s.%s", layer, what);
    return nn_find_tensor((nn_net *)net, name);
}

int nn_fold(const nn_net *src, nn_net *dst, int max_batch, int threads, char *err, size_t errlen) {
    nn_spec *spec = malloc(sizeof *spec);
    /* folded_from[j]: the bn that folds into layer j of the folded spec. */
    char(*folded_from)[NN_NAME_MAX] = calloc(NN_MAX_LAYERS, NN_NAME_MAX);
    int rc = -1;
    if (!spec || !folded_from) {
        snprintf(err, errlen, "out of memory folding the network");
        goto done;
    }
    *spec = src->spec;
    for (int i = spec->n - 1; i >= 0; i--) {
        if (!foldable_at(spec, i)) continue;
        int p = spec->layer[i].in[0];
        spec->layer[p].bias = 1;
        snprintf(folded_from[p], NN_NAME_MAX, "%s", spec->layer[i].name);
        /* Removing the bn: its readers read p, later layers move down one. */
        for (int j = i + 1; j < spec->n; j++)
            memcpy(folded_from[j - 1], folded_from[j], NN_NAME_MAX);
        folded_from[spec->n - 1][0] = '\0';
        nn_spec_remove_layer(spec, i);
    }
    for (int j = 0; j < spec->n; j++)
        spec->layer[j].labelled = 1; /* names stay those of the trained network */
    if (nn_build(dst, spec, src->in_h, src->in_w, src->in_c, src->classes, 1, max_batch, threads,
                 err, errlen))
        goto done;
    float eps = bnorm_params_default().eps;
    for (int j = 0; j < dst->n_layers; j++) {
        nn_layer *l = &dst->layers[j];
        const char *name = l->spec.name;
        int s = -1;
        for (int i = 0; i < spec->n; i++)
            if (!strcmp(spec->layer[i].name, name)) s = i;
        if (s >= 0 && folded_from[s][0]) {
            const char *bn = folded_from[s];
            const nn_tensor *w = find(src, name, "weight"), *b = find(src, name, "bias");
            const nn_tensor *g = find(src, bn, "gamma"), *be = find(src, bn, "beta");
            const nn_tensor *m = find(src, bn, "running_mean"), *v = find(src, bn, "running_var");
            int out = l->out.c;
            if (bnorm_fold_into_layer(out, (int64_t)(w->size / (size_t)out), BNORM_WEIGHTS_OUT_LAST,
                                      w->value, b ? b->value : NULL, g->value, be->value, m->value,
                                      v->value, eps, l->weight->value,
                                      l->bias->value) != BNORM_OK) {
                snprintf(err, errlen, "layer %s: batch norm %s does not fold (bad statistics)",
                         name, bn);
                nn_free(dst);
                goto done;
            }
            continue;
        }
        for (int t = 0; t < dst->n_tensors; t++) {
            nn_tensor *d = &dst->tensors[t];
            if (strncmp(d->name, name, strlen(name)) || d->name[strlen(name)] != '.') continue;
            const nn_tensor *from = nn_find_tensor((nn_net *)src, d->name);
            memcpy(d->value, from->value, d->size * sizeof(float));
        }
        /* Find the source layer to carry the running statistics' count. */
        for (int i = 0; i < src->n_layers; i++)
            if (!strcmp(src->layers[i].spec.name, name)) l->bn_steps = src->layers[i].bn_steps;
    }
    rc = 0;
done:
    free(spec), free(folded_from);
    return rc;
}
