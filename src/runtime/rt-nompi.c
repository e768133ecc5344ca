/* rt-nompi.c - libjoule-rt.so, the runtime of programs without MPI: with no MPI calls to guide it, it is
 * time-guided, a thread woken every JOULE_PERIOD_MS (default 1000) that takes a signature each period
 * (manage.c); with hardware counters progress is measured in instructions and the policy decides. The thread
 * is stopped and joined at exit (the loader's destructor calls fini); a child forked from the program keeps
 * running, unmanaged (its copy of the thread does not exist). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "manage.h"
#include "rt-abi.h"
#include "runtime.h"

#define JL_RT_PERIOD_MS 1000 /* JOULE_PERIOD_MS overrides it */
static long period_ms = JL_RT_PERIOD_MS;

static pthread_t timer;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;
static bool stopping, running;
static pid_t owner;
static uint64_t periods;
static struct timespec started;

static void timespec_add_ms(struct timespec *ts, long ms)
{
        ts->tv_sec += ms / 1000;
        ts->tv_nsec += (ms % 1000) * 1000000L;
        if (ts->tv_nsec >= 1000000000L) {
                ts->tv_sec++;
                ts->tv_nsec -= 1000000000L;
        }
}

static void *timer_main(void *arg)
{
        struct timespec next = started;

        pthread_mutex_lock(&lock);
        for (;;) {
                timespec_add_ms(&next, period_ms);
                while (!stopping && pthread_cond_timedwait(&wake, &lock, &next) != ETIMEDOUT)
                        ;
                if (stopping)
                        break;
                periods++;
                /* a period: a signature, and the policy's decision where progress can be measured */
                pthread_mutex_unlock(&lock);
                jl_rt_manage_period();
                pthread_mutex_lock(&lock);
        }
        pthread_mutex_unlock(&lock);
        return NULL;
}

static int rt_init(int verbose)
{
        pthread_condattr_t attr;
        sigset_t all, old;
        int r;

        jl_rt_verbose = verbose;
        cpu_set_t cpus;
        if (sched_getaffinity(0, sizeof(cpus), &cpus) < 0)
                CPU_ZERO(&cpus);
        jl_rt_manage_start(false, &cpus);
        period_ms = jl_rt_manage_period_ms();
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        r = pthread_cond_init(&wake, &attr);
        pthread_condattr_destroy(&attr);
        if (r)
                return -r;
        clock_gettime(CLOCK_MONOTONIC, &started);
        /* the thread takes no signal meant for the program */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        r = pthread_create(&timer, NULL, timer_main, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r) {
                pthread_cond_destroy(&wake);
                jl_rt_manage_fini();
                return -r;
        }
        owner = getpid();
        running = true;
        return 0;
}

static void rt_fini(void)
{
        struct timespec now;

        if (!running || getpid() != owner)
                return;
        pthread_mutex_lock(&lock);
        stopping = true;
        pthread_cond_signal(&wake);
        pthread_mutex_unlock(&lock);
        pthread_join(timer, NULL);
        running = false;
        pthread_cond_destroy(&wake);
        jl_rt_manage_fini();
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (jl_rt_verbose >= 2)
                jl_rt_say("not an MPI program: %llu periods of %d ms in %.3f s (time-guided)",
                          (unsigned long long)periods, (int)period_ms,
                          (double)(now.tv_sec - started.tv_sec) +
                              (double)(now.tv_nsec - started.tv_nsec) / 1e9);
}

static void rt_before(enum jl_mpi_call call, unsigned flags, const uintptr_t *args)
{
}

static void rt_after(enum jl_mpi_call call, unsigned flags, const uintptr_t *args, int ret)
{
}

static const struct jl_rt_ops ops = {
    .abi_version = JL_RT_ABI_VERSION,
    .n_calls = JL_MPI_NCALLS,
    .flavour = JL_RT_NONE,
    .init = rt_init,
    .before = rt_before,
    .after = rt_after,
    .fini = rt_fini,
};

__attribute__((visibility("default"))) const struct jl_rt_ops *jl_rt_get_ops(void);
const struct jl_rt_ops *jl_rt_get_ops(void)
{
        return &ops;
}
