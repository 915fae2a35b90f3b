/*
 * team.h - a few persistent threads for work that lasts microseconds, such
 * as one sample through a small network.
 *
 * An OpenMP parallel region costs about 2.3 us to open and close on a
 * 2-core machine of the kind this project is measured on, as much as the
 * work it would split; handing a job to a thread that is already spinning
 * costs one core-to-core transfer (about 0.25 us). The helpers spin for a
 * while (about a third of a millisecond) after each job, then sleep on a
 * condition variable until the next, so an idle team takes no CPU time.
 *
 * Not for concurrent use: one thread at a time calls nn_team_run.
 */
#ifndef NN_TEAM_H
#define NN_TEAM_H

#include <stdatomic.h>

typedef struct nn_team nn_team;

/* The work of member s of u (s = 0 is the thread that calls nn_team_run). */
typedef void (*nn_team_fn)(void *arg, int s, int u);

/* A team of `threads` members: the caller and threads - 1 helpers, started
 * here. Returns NULL when threads < 2 or a thread or allocation fails. */
nn_team *nn_team_start(int threads);

/* Runs fn(arg, s, u) on every member, the caller's share included, and
 * returns when every member has returned. */
void nn_team_run(nn_team *team, nn_team_fn fn, void *arg);

/* Whether the team's helpers exist in this process: 0 in a child of fork()
 * for a team started before it. Such a team must not run; nn_team_stop
 * still frees it. */
int nn_team_alive(const nn_team *team);

/* Stops and joins the helpers and frees the team (NULL is ignored). */
void nn_team_stop(nn_team *team);

/* Waits until *counter has reached target (counters only grow, and may wrap:
 * the test is on the difference), spinning first and then yielding the
 * core, in case the thread that will advance it was descheduled. Acquire:
 * what was written before the counter was advanced is visible after. */
void nn_wait_counter(const atomic_uint *counter, unsigned target);

#endif
