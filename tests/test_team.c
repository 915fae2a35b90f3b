/* The persistent thread team of net/team.c: every member runs every job
 * exactly once, with the caller's data visible to it and its writes visible
 * to the caller when nn_team_run returns; helpers asleep after an idle
 * spell wake for the next job; teams stop cleanly, also straight after they
 * start; a child of fork() neither runs nor waits on its parent's team, and
 * its network's single-sample path gives the parent's numbers. Run under
 * ThreadSanitizer too (scripts/test.sh), without the fork checks. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nn.h"
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

#if !defined(__SANITIZE_THREAD__)
/* Runs child() in a fork, which must exit 0 within 20 s. */
static void in_child(const char *what, int (*child)(void *), void *arg) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20); /* a child that waits on helpers it does not have dies here */
        _exit(child(arg));
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        failures++;
        fprintf(stderr, "FAIL: %s (child %s)\n", what,
                pid < 0               ? "not started"
                : WIFSIGNALED(status) ? "killed"
                                      : "failed");
    }
}

static int child_team(void *arg) {
    nn_team *inherited = arg;
    if (nn_team_alive(inherited)) return 1;
    nn_team_stop(inherited); /* frees it without waiting for helpers */
    nn_team *team = nn_team_start(2);
    if (!team) return 1;
    shared sh = {0};
    for (int j = 1; j <= 100; j++) {
        sh.job = j, sh.input[0] = j, sh.input[1] = -j;
        nn_team_run(team, work, &sh);
        if (sh.output[0] != 4 * j || sh.output[1] != -2 * j) return 1;
    }
    nn_team_stop(team);
    return 0;
}

typedef struct {
    nn_net *net;
    const float *x;
    const float *want; /* the parent's logits */
} fork_net;

static int child_net(void *arg) {
    fork_net *f = arg;
    const float *z = nn_forward(f->net, f->x, 1, 0);
    return z && memcmp(z, f->want, 10 * sizeof(float)) == 0 ? 0 : 1;
}

static void check_fork(void) {
    nn_team *team = nn_team_start(2);
    shared sh = {0};
    if (!team) {
        failures++;
        fprintf(stderr, "FAIL: no team of 2\n");
        return;
    }
    sh.job = 1;
    nn_team_run(team, work, &sh);
    in_child("a team inherited through fork", child_team, team);
    if (!nn_team_alive(team)) {
        failures++;
        fprintf(stderr, "FAIL: the parent's team is no longer alive after a fork\n");
    }
    nn_team_stop(team);

    nn_net net;
    char err[256];
    if (nn_build_model(&net, "mlp", NN_BN_KEEP, 8, 8, 1, 10, 4, 2, err, sizeof err)) {
        failures++;
        fprintf(stderr, "FAIL: %s\n", err);
        return;
    }
    nn_init_params(&net, 7);
    float x[64], want[10];
    for (int i = 0; i < 64; i++)
        x[i] = (float)((i * 37) % 17) / 8.0f - 1.0f;
    const float *z = nn_forward(&net, x, 1, 0); /* starts the net's team */
    if (!z) {
        failures++;
        fprintf(stderr, "FAIL: one sample refused\n");
    } else {
        memcpy(want, z, sizeof want);
        fork_net f = {&net, x, want};
        in_child("one sample in a child of fork", child_net, &f);
    }
    nn_free(&net);
}
#endif

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
#if !defined(__SANITIZE_THREAD__)
    check_fork();
#endif
    if (failures) {
        fprintf(stderr, "test_team: %d failures\n", failures);
        return 1;
    }
    printf("test_team: teams of 2-%d ran every job on every member%s\n", MAX_MEMBERS,
#if !defined(__SANITIZE_THREAD__)
           "; children of fork() ran without their parent's helpers"
#else
           ""
#endif
    );
    return 0;
}
