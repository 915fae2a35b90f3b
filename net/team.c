/* A few persistent threads: see team.h. */
#include "team.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

/* How long a helper keeps spinning for the next job before it sleeps. */
#define SPIN_NS 300000L

typedef struct {
    _Alignas(64) atomic_uint done; /* the last job this member finished */
    pthread_t thread;
    int index;
    nn_team *team;
} member;

struct nn_team {
    _Alignas(64) atomic_uint job; /* job number; the caller increments it to start one */
    unsigned generation;          /* fork_generation when the helpers were started */
    nn_team_fn fn;                /* written before job, read after it */
    void *arg;
    int threads;
    atomic_int quit;
    atomic_int sleepers;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    member *members; /* [threads]; [0] is the caller and has no thread */
};

/* A child of fork() has none of its parent's helper threads: a team it
 * inherited would wait for them forever. The count of forks this process
 * went through as a child tells a team from before the fork. */
static atomic_uint fork_generation;
static pthread_once_t fork_handler_once = PTHREAD_ONCE_INIT;
static void after_fork_in_child(void) { atomic_fetch_add(&fork_generation, 1); }
static void install_fork_handler(void) { pthread_atfork(NULL, NULL, after_fork_in_child); }

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long elapsed_ns(const struct timespec *since) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000000000L + (now.tv_nsec - since->tv_nsec);
}

/* Returns the next job number after `seen`: spinning first, then asleep.
 * Sleeping pairs with nn_team_run: this side counts itself a sleeper and then
 * reads job; the caller writes job and then reads sleepers (all sequentially
 * consistent), so at least one of them sees the other, and a caller that
 * sees a sleeper signals under the lock the sleeper holds until it waits. */
static unsigned next_job(nn_team *team, unsigned seen) {
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (unsigned spins = 1;; spins++) {
        unsigned job = atomic_load_explicit(&team->job, memory_order_acquire);
        if (job != seen) return job;
        cpu_relax();
        if (spins % 256 == 0 && elapsed_ns(&start) > SPIN_NS) break;
    }
    pthread_mutex_lock(&team->lock);
    atomic_fetch_add(&team->sleepers, 1);
    unsigned job;
    while ((job = atomic_load(&team->job)) == seen)
        pthread_cond_wait(&team->wake, &team->lock);
    atomic_fetch_sub(&team->sleepers, 1);
    pthread_mutex_unlock(&team->lock);
    return job;
}

static void *helper_main(void *arg) {
    member *me = arg;
    nn_team *team = me->team;
    unsigned seen = 0;
    for (;;) {
        seen = next_job(team, seen);
        if (atomic_load(&team->quit)) break;
        team->fn(team->arg, me->index, team->threads);
        atomic_store_explicit(&me->done, seen, memory_order_release);
    }
    return NULL;
}

/* Wakes the helpers for a new job number (or for quitting). */
static void publish_job(nn_team *team, unsigned job) {
    atomic_store(&team->job, job);
    if (atomic_load(&team->sleepers) > 0) {
        pthread_mutex_lock(&team->lock);
        pthread_cond_broadcast(&team->wake);
        pthread_mutex_unlock(&team->lock);
    }
}

static void stop_helpers(nn_team *team, int started) {
    atomic_store(&team->quit, 1);
    publish_job(team, atomic_load(&team->job) + 1);
    for (int s = 1; s <= started; s++)
        pthread_join(team->members[s].thread, NULL);
}

nn_team *nn_team_start(int threads) {
    if (threads < 2) return NULL;
    nn_team *team = NULL;
    if (posix_memalign((void **)&team, 64, sizeof *team)) return NULL;
    team->members = NULL;
    if (posix_memalign((void **)&team->members, 64, (size_t)threads * sizeof(member))) {
        free(team);
        return NULL;
    }
    atomic_init(&team->job, 0u);
    atomic_init(&team->quit, 0);
    atomic_init(&team->sleepers, 0);
    team->fn = NULL, team->arg = NULL;
    team->threads = threads;
    pthread_once(&fork_handler_once, install_fork_handler);
    team->generation = atomic_load(&fork_generation);
    if (pthread_mutex_init(&team->lock, NULL)) goto no_lock;
    if (pthread_cond_init(&team->wake, NULL)) goto no_cond;
    for (int s = 0; s < threads; s++) {
        atomic_init(&team->members[s].done, 0u);
        team->members[s].index = s;
        team->members[s].team = team;
    }
    for (int s = 1; s < threads; s++) {
        if (pthread_create(&team->members[s].thread, NULL, helper_main, &team->members[s])) {
            stop_helpers(team, s - 1);
            pthread_cond_destroy(&team->wake);
            goto no_cond;
        }
    }
    return team;
no_cond:
    pthread_mutex_destroy(&team->lock);
no_lock:
    free(team->members);
    free(team);
    return NULL;
}

void nn_wait_counter(const atomic_uint *counter, unsigned target) {
    unsigned spins = 0;
    while ((int)(atomic_load_explicit(counter, memory_order_acquire) - target) < 0) {
        if (++spins < 4096) {
            cpu_relax();
        } else {
            sched_yield();
            spins = 0;
        }
    }
}

void nn_team_run(nn_team *team, nn_team_fn fn, void *arg) {
    team->fn = fn;
    team->arg = arg;
    unsigned job = atomic_load_explicit(&team->job, memory_order_relaxed) + 1;
    publish_job(team, job);
    fn(arg, 0, team->threads);
    for (int s = 1; s < team->threads; s++)
        nn_wait_counter(&team->members[s].done, job);
}

int nn_team_alive(const nn_team *team) { return team->generation == atomic_load(&fork_generation); }

void nn_team_stop(nn_team *team) {
    if (!team) return;
    /* Inherited through fork(): no helpers to stop, and the lock and the
     * condition variable may have been caught mid-use; only the memory is
     * ours to free. */
    if (nn_team_alive(team)) {
        stop_helpers(team, team->threads - 1);
        pthread_cond_destroy(&team->wake);
        pthread_mutex_destroy(&team->lock);
    }
    free(team->members);
    free(team);
}
