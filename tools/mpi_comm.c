/* nn_comm over MPI (mpi_comm.h). */
#include "mpi_comm.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>

/* Seconds spent in each kind of collective: the BN layers' (doubles) and
 * the gradients' (floats). */
static double seconds_doubles, seconds_floats;

static int allgather(void *ctx, const double *send, int count, double *recv) {
    (void)ctx;
    double t0 = MPI_Wtime();
    int rc = MPI_Allgather(send, count, MPI_DOUBLE, recv, count, MPI_DOUBLE, MPI_COMM_WORLD);
    seconds_doubles += MPI_Wtime() - t0;
    return rc == MPI_SUCCESS ? 0 : -1;
}

static int allreduce(void *ctx, double *buf, int count) {
    (void)ctx;
    double t0 = MPI_Wtime();
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    seconds_doubles += MPI_Wtime() - t0;
    return rc == MPI_SUCCESS ? 0 : -1;
}

void mpi_comm_seconds(double *doubles, double *floats) {
    *doubles = seconds_doubles, *floats = seconds_floats;
}

/* In pieces of at most INT_MAX values, MPI's count type. */
static int allreduce_floats(void *ctx, float *buf, size_t count) {
    (void)ctx;
    double t0 = MPI_Wtime();
    for (size_t done = 0; done < count;) {
        int n = count - done > INT_MAX ? INT_MAX : (int)(count - done);
        if (MPI_Allreduce(MPI_IN_PLACE, buf + done, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) !=
            MPI_SUCCESS)
            return -1;
        done += (size_t)n;
    }
    seconds_floats += MPI_Wtime() - t0;
    return 0;
}

int mpi_comm_start(int *argc, char ***argv, nn_comm *comm, char *err, size_t errlen) {
    if (MPI_Init(argc, argv) != MPI_SUCCESS) {
        snprintf(err, errlen, "MPI could not be started");
        return -1;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &comm->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &comm->size);
    comm->ctx = NULL;
    comm->allgather = allgather;
    comm->allreduce = allreduce;
    comm->allreduce_floats = allreduce_floats;
    return 0;
}

int mpi_comm_all_ok(const nn_comm *comm, int ok) {
    (void)comm;
    int all = 0;
    if (MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS) return 0;
    return all;
}

void mpi_comm_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

void mpi_comm_stop(void) { MPI_Finalize(); }
