/* bench-mpi.c - the cost joule's interception adds to an MPI call, measured inside one run: each loop is
 * timed through the program's ordinary call (the loader's wrapper, then the runtime's hooks, then the MPI
 * library when the loader is preloaded) and through a pointer straight to the MPI library's own definition
 * (dlsym on the library's handle: what the program would call without the preload), in interleaved
 * batches (the order alternates), so that noise and drift hit both alike. 2 ranks. Rank 0 prints one line
 * per loop: name, median ns per call direct, through the wrapper, and the median of the differences of
 * each pair of neighbouring batches (the added cost).
 * Usage: bench-mpi [BATCHES [CALLS_PER_BATCH]] (default 41 x 20000). The loops between the 2 ranks run
 * 5 x BATCHES batches of CALLS / 100 iterations: short batches, so that most escape the other processes
 * of a busy machine, and the medians drop those that do not. */
#include <dlfcn.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef OPEN_MPI
#define MPI_SONAME "libmpi.so.40"
#else
#define MPI_SONAME "libmpich.so.12"
#endif

typedef int (*barrier_fn)(MPI_Comm);
typedef int (*send_fn)(const void *, int, MPI_Datatype, int, int, MPI_Comm);
typedef int (*recv_fn)(void *, int, MPI_Datatype, int, int, MPI_Comm, MPI_Status *);
typedef int (*iprobe_fn)(int, int, MPI_Comm, int *, MPI_Status *);
typedef int (*allreduce_fn)(const void *, void *, int, MPI_Datatype, MPI_Op, MPI_Comm);

static struct {
        barrier_fn barrier;
        send_fn send;
        recv_fn recv;
        iprobe_fn iprobe;
        allreduce_fn allreduce;
} direct, wrapped = {MPI_Barrier, (send_fn)MPI_Send, MPI_Recv, MPI_Iprobe, (allreduce_fn)MPI_Allreduce};

static int rank;

static double now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

/* one batch of n iterations of loop `which` through table t; returns ns per MPI call */
static double batch(int which, int n, const typeof(direct) *t)
{
        double buf[8] = {0}, out[8];
        int flag, peer = 1 - rank;
        double t0, t1;

        t->barrier(MPI_COMM_WORLD);
        t0 = now_ns();
        switch (which) {
        case 0: /* a barrier of one rank: almost nothing but the call */
                for (int i = 0; i < n; i++)
                        t->barrier(MPI_COMM_SELF);
                break;
        case 1: /* a send to MPI_PROC_NULL: returns at once, but the hooks compute its size */
                for (int i = 0; i < n; i++)
                        t->send(buf, 8, MPI_DOUBLE, MPI_PROC_NULL, 1, MPI_COMM_WORLD);
                break;
        case 2: /* a probe that finds nothing: one turn of the progress engine */
                for (int i = 0; i < n; i++)
                        t->iprobe(MPI_ANY_SOURCE, 99, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
                break;
        case 3: /* ping-pong of 64 bytes: 2 calls per iteration and rank */
                for (int i = 0; i < n; i++) {
                        if (rank == 0) {
                                t->send(buf, 8, MPI_DOUBLE, peer, 2, MPI_COMM_WORLD);
                                t->recv(out, 8, MPI_DOUBLE, peer, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                        } else {
                                t->recv(out, 8, MPI_DOUBLE, peer, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                                t->send(buf, 8, MPI_DOUBLE, peer, 2, MPI_COMM_WORLD);
                        }
                }
                n *= 2;
                break;
        case 4: /* barrier of the 2 ranks */
                for (int i = 0; i < n; i++)
                        t->barrier(MPI_COMM_WORLD);
                break;
        case 5: /* allreduce of one double */
                for (int i = 0; i < n; i++)
                        t->allreduce(buf, out, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
                break;
        }
        t1 = now_ns();
        return (t1 - t0) / n;
}

int main(int argc, char **argv)
{
        static const char *const names[] = {
            "MPI_Barrier(MPI_COMM_SELF)",   "MPI_Send(MPI_PROC_NULL, 64 B)",
            "MPI_Iprobe (nothing pending)", "ping-pong 64 B (per call)",
            "MPI_Barrier (2 ranks)",        "MPI_Allreduce 1 double (2 ranks)"};
        int batches = argc > 1 ? atoi(argv[1]) : 41, calls = argc > 2 ? atoi(argv[2]) : 20000, size;
        void *lib;

        MPI_Init(&argc, &argv);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        lib = dlopen(MPI_SONAME, RTLD_LAZY | RTLD_NOLOAD);
        if (size != 2 || !lib || batches < 1 || calls < 10) {
                fprintf(stderr, "bench-mpi: needs 2 ranks and %s (%s)\n", MPI_SONAME,
                        lib ? "ok" : dlerror());
                MPI_Abort(MPI_COMM_WORLD, 2);
        }
        direct.barrier = (barrier_fn)dlsym(lib, "MPI_Barrier");
        direct.send = (send_fn)dlsym(lib, "MPI_Send");
        direct.recv = (recv_fn)dlsym(lib, "MPI_Recv");
        direct.iprobe = (iprobe_fn)dlsym(lib, "MPI_Iprobe");
        direct.allreduce = (allreduce_fn)dlsym(lib, "MPI_Allreduce");

        size_t most = (size_t)batches * 5;
        double *d = malloc(sizeof(double) * most), *w = malloc(sizeof(double) * most),
               *diff = malloc(sizeof(double) * most);
        for (int which = 0; which < 6; which++) {
                int n = which >= 3 ? calls / 100 : calls, nb = which >= 3 ? batches * 5 : batches;
                batch(which, n / 10, &wrapped); /* warm-up: resolve, fault in, settle */
                batch(which, n / 10, &direct);
                for (int b = 0; b < nb; b++) {
                        if (b % 2) {
                                d[b] = batch(which, n, &direct);
                                w[b] = batch(which, n, &wrapped);
                        } else {
                                w[b] = batch(which, n, &wrapped);
                                d[b] = batch(which, n, &direct);
                        }
                        diff[b] = w[b] - d[b];
                }
                qsort(d, (size_t)nb, sizeof(double), cmp_double);
                qsort(w, (size_t)nb, sizeof(double), cmp_double);
                qsort(diff, (size_t)nb, sizeof(double), cmp_double);
                if (rank == 0)
                        printf("%-34s %9.1f %9.1f %8.1f\n", names[which], d[nb / 2], w[nb / 2],
                               diff[nb / 2]);
        }
        free(d);
        free(w);
        free(diff);
        MPI_Finalize();
        return 0;
}
