/* The network's collectives (nn_comm, nn.h) over MPI, for `bnorm train
 * --distributed`. Built only with -DBNORM_MPI=ON: neither libbnorm nor the
 * network stack depends on MPI. */
#ifndef BNORM_TOOLS_MPI_COMM_H
#define BNORM_TOOLS_MPI_COMM_H

#include "nn.h"

/* MPI_Init, and comm filled for MPI_COMM_WORLD, whose errors then return
 * codes instead of aborting (so that a failure can be reported). Returns 0,
 * or -1 with a message. */
int mpi_comm_start(int *argc, char ***argv, nn_comm *comm, char *err, size_t errlen);
/* Whether `ok` holds on every process (a collective). */
int mpi_comm_all_ok(const nn_comm *comm, int ok);
/* Seconds this process has spent in the collectives of doubles (the BN
 * layers' statistics and sums, and the loss) and of floats (the gradients). */
void mpi_comm_seconds(double *doubles, double *floats);
/* Stops every process of the job with exit status `code`. */
void mpi_comm_abort(int code);
void mpi_comm_stop(void);

#endif
