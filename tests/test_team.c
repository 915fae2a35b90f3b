/* The persistent thread team of net/team.c: every member runs every job
 * exactly once, with the caller's data visible to it and its writes visible
 * to the caller when nn_team_run returns; helpers asleep after an idle
 * spell wake for the next job; teams stop cleanly, also straight after they
 * start. Run under ThreadSanitizer too (scripts/test.sh). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "team.h"

#define MAX_MEMBERS 4

static int failures;

typedef struct {
    int job;                  /* set by the caller before each run */
    int input[MAX_MEMBERS];   /* written by the caller, read by member s */
    int output[MAX_MEMBERS];  /* written by member s, read by the caller */
    int runs[MAX_MEMBERS];    /* how many jobs member s has run */
    int members[MAX_MEMBERS]; /* the team size each member was told */
} shared;

static void work(void *arg, int s, int u) {
    shared *sh = arg;
    sh->output[s] = sh->input[s] * 3 + sh->job;
    sh->runs[s]++;
    sh->members[s] = u;
}

static void pause_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static void check_team(int threads, int jobs, int idle_every) {
    nn_team *team = nn_team_start(threads);
    if (!team) {
        failures++;
        fprintf(stderr, "FAIL: no team of %d\n", threads);
        return;
    }
    shared sh = {0};
    for (int j = 1; j <= jobs; j++) {
        sh.job = j;
        for (int s = 0; s < threads; s++)
            sh.input[s] = j * 10 + s;
        nn_team_run(team, work, &sh);
        for (int s = 0; s < threads; s++) {
            if (sh.output[s] != (j * 10 + s) * 3 + j || sh.runs[s] != j ||
                sh.members[s] != threads) {
                failures++;
                fprintf(stderr,
                        "FAIL: team of %d, job %d, member %d: output %d (want %d), runs %d, "
                        "team size %d\n",
                        threads, j, s, sh.output[s], (j * 10 + s) * 3 + j, sh.runs[s],
                        sh.members[s]);
                nn_team_stop(team);
                return;
            }
        }
        /* Longer than the helpers spin: they go to sleep and must be woken. */
        if (idle_every && j % idle_every == 0) pause_ms(2);
    }
    nn_team_stop(team);
}

int main(void) {
    if (nn_team_start(1) != NULL || nn_team_start(0) != NULL) {
        failures++;
        fprintf(stderr, "FAIL: a team of fewer than 2 threads was started\n");
    }
    nn_team_stop(NULL);
    for (int threads = 2; threads <= MAX_MEMBERS; threads++) {
        check_team(threads, 10000, 0); /* back to back: helpers spinning */
        check_team(threads, 60, 3);    /* idle spells: helpers asleep */
        for (int k = 0; k < 20; k++)   /* stopped at once, or after one job */
            check_team(threads, k % 2, 0);
    }
    if (failures) {
        fprintf(stderr, "test_team: %d failures\n", failures);
        return 1;
    }
    printf("test_team: teams of 2-%d ran every job on every member\n", MAX_MEMBERS);
    return 0;
}
