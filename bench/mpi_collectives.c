/* The cost of the collectives that data-parallel training uses, measured
 * on the processes mpirun starts, and what they make of a network's
 * communication per step at more processes.
 *
 *   mpirun -np K bench_mpi_collectives [MODEL] [ALPHA_US BETA_GBS]
 *
 * Measures MPI_Allreduce (sum of floats, as the gradients) and
 * MPI_Allgather (doubles, as SyncBN's moments records) over message sizes,
 * takes the latency from the smallest and the bandwidth from the largest,
 * and prints the model's
 * (default resnet, 28x28 inputs) volume per step: per BN layer one
 * allgather of 2C + 1 doubles per process in the forward and one allreduce
 * of 2C doubles in the backward; one allreduce of every gradient. Its time
 * at 8 and 64 processes comes from the usual cost models of the algorithms
 * (allreduce: 2 log2(K) latencies and 2 (K - 1) / K of the bytes through
 * each link; allgather: log2(K) latencies and (K - 1) times the bytes per
 * process), with the latency and bandwidth measured here, or given (for
 * example a cluster network's: 5 us and 3 GB/s). */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"

static double timed(int allgather, size_t bytes, int reps, void *buf, void *recv) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int r = 0; r < reps; r++) {
        if (allgather)
            MPI_Allgather(buf, (int)(bytes / 8), MPI_DOUBLE, recv, (int)(bytes / 8), MPI_DOUBLE,
                          MPI_COMM_WORLD);
        else
            MPI_Allreduce(MPI_IN_PLACE, buf, (int)(bytes / 4), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
    double t = (MPI_Wtime() - t0) / reps, worst;
    MPI_Allreduce(&t, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return worst;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, K;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &K);
    const char *model = argc > 1 ? argv[1] : "resnet";
    size_t max = 4u << 20;
    void *buf = calloc(max, 1), *recv = calloc(max * (size_t)K, 1);
    double fit[2][2]; /* [allgather][a, 1/bandwidth] */
    double first[2] = {0, 0}, last[2] = {0, 0};
    size_t last_bytes = 0;
    if (rank == 0)
        printf("%d processes\n%-10s %14s %14s\n", K, "bytes", "allreduce us", "allgather us");
    for (size_t bytes = 64; bytes <= max; bytes *= 4) {
        int reps = bytes < 65536 ? 2000 : 50;
        double t[2];
        for (int g = 0; g < 2; g++) {
            timed(g, bytes, 10, buf, recv); /* warm-up */
            t[g] = timed(g, bytes, reps, buf, recv);
            if (bytes == 64) first[g] = t[g];
            last[g] = t[g];
        }
        last_bytes = bytes;
        if (rank == 0) printf("%-10zu %14.2f %14.2f\n", bytes, 1e6 * t[0], 1e6 * t[1]);
    }
    /* The latency from the smallest message, the time per byte from the largest. */
    for (int g = 0; g < 2; g++)
        fit[g][0] = first[g], fit[g][1] = (last[g] - first[g]) / (double)(last_bytes - 64);
    if (rank == 0) {
        printf(
            "fit: allreduce %.2f us + %.2f GB/s, allgather %.2f us + %.2f GB/s (on %d processes)\n",
            1e6 * fit[0][0], 1e-9 / fit[0][1], 1e6 * fit[1][0], 1e-9 / fit[1][1], K);
        /* The network's volume per step. */
        static nn_spec spec;
        static nn_net net;
        char err[256];
        if (nn_spec_for_model(model, &spec, err, sizeof err) ||
            nn_describe(&net, &spec, 28, 28, 1, 10, 0, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        int bn = 0;
        double bn_fwd = 0, bn_bwd = 0, grads = 0;
        for (int i = 0; i < net.n_layers; i++)
            if (net.layers[i].gamma) {
                int C = net.layers[i].out.c;
                bn++, bn_fwd += (2.0 * C + 1) * 8, bn_bwd += 2.0 * C * 8;
            }
        for (int t = 0; t < net.n_tensors; t++)
            if (net.tensors[t].trainable) grads += 4.0 * (double)net.tensors[t].size;
        printf("\n%s per step: %d BN layers, forward %.0f bytes of moments per process "
               "(allgather), backward %.0f bytes of sums (allreduce); gradients %.0f bytes "
               "(allreduce)\n",
               model, bn, bn_fwd, bn_bwd, grads);
        /* Per-message latency a and per-byte time b, measured on 2 processes
         * here (the fit), or given. */
        double a = fit[0][0], b = fit[0][1];
        const char *where = "measured here";
        if (argc > 3) a = atof(argv[2]) * 1e-6, b = 1.0 / (atof(argv[3]) * 1e9), where = "given";
        printf("model (%s: latency %.2f us, %.2f GB/s per link)\n%-8s %16s %16s %16s\n", where,
               1e6 * a, 1e-9 / b, "ranks", "BN sync (us)", "gradients (us)", "total (us)");
        int ks[] = {2, 8, 64};
        for (int i = 0; i < 3; i++) {
            double k = ks[i], lg = log2(k);
            double fwd = bn * lg * a + (k - 1) * bn_fwd * b;             /* allgathers */
            double bwd = bn * 2 * lg * a + 2 * (k - 1) / k * bn_bwd * b; /* allreduces */
            double gr = 2 * lg * a + 2 * (k - 1) / k * grads * b;
            printf("%-8d %16.1f %16.1f %16.1f\n", ks[i], 1e6 * (fwd + bwd), 1e6 * gr,
                   1e6 * (fwd + bwd + gr));
        }
    }
    free(buf), free(recv);
    MPI_Finalize();
    return 0;
}
