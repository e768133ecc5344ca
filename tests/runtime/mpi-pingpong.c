/* mpi-pingpong.c - a small MPI program of the kind joule manages, for tests/system/test-runtime-loader.sh:
 * N iterations (argv[1], default 200; with "multiple" as argv[2] it starts with MPI_Init_thread asking for
 * MPI_THREAD_MULTIPLE instead of MPI_Init) of a ping-pong between ranks 0 and 1, an allreduce, a
 * non-blocking exchange and, every 10 iterations, a barrier and a broadcast, with buffers allocated anew at
 * every iteration (their addresses change; the calls' events must not). It counts its own MPI calls and rank
 * 0 prints every rank's counts and the reduced results on stdout: counts rank R: MPI_Init 1 MPI_Send N ...
 *   result: SUM */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
        C_INIT,
        C_SEND,
        C_RECV,
        C_ISEND,
        C_IRECV,
        C_WAITALL,
        C_ALLREDUCE,
        C_BARRIER,
        C_BCAST,
        C_GATHER,
        C_FINALIZE,
        C_N
};
static const char *names[C_N] = {"MPI_Init",  "MPI_Send",    "MPI_Recv",      "MPI_Isend",
                                 "MPI_Irecv", "MPI_Waitall", "MPI_Allreduce", "MPI_Barrier",
                                 "MPI_Bcast", "MPI_Gather",  "MPI_Finalize"};

int main(int argc, char **argv)
{
        long counts[C_N] = {0};
        int rank, size, iters = argc > 1 ? atoi(argv[1]) : 200;
        double total = 0;

        if (argc > 2 && strcmp(argv[2], "multiple") == 0) {
                int provided;
                names[C_INIT] = "MPI_Init_thread";
                counts[C_INIT]++;
                MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
        } else {
                counts[C_INIT]++;
                MPI_Init(&argc, &argv);
        }
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        if (size < 2) {
                fprintf(stderr, "mpi-pingpong: needs 2 ranks\n");
                MPI_Abort(MPI_COMM_WORLD, 2);
        }
        for (int i = 0; i < iters; i++) {
                /* a new buffer at a new address every iteration, as some programs do */
                size_t n = 100 + (size_t)(i % 3);
                double *buf = malloc(n * sizeof(*buf)), *in = malloc(n * sizeof(*in)), sum = 0, x;
                MPI_Request req[2];
                MPI_Status st[2];
                for (size_t k = 0; k < n; k++)
                        buf[k] = rank + i + (double)k;
                if (rank == 0) {
                        counts[C_SEND]++;
                        MPI_Send(buf, 100, MPI_DOUBLE, 1, 1, MPI_COMM_WORLD);
                        counts[C_RECV]++;
                        MPI_Recv(in, 100, MPI_DOUBLE, 1, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                } else if (rank == 1) {
                        counts[C_RECV]++;
                        MPI_Recv(in, 100, MPI_DOUBLE, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                        counts[C_SEND]++;
                        MPI_Send(in, 100, MPI_DOUBLE, 0, 2, MPI_COMM_WORLD);
                }
                int right = (rank + 1) % size, left = (rank + size - 1) % size;
                counts[C_IRECV]++;
                MPI_Irecv(in, 10, MPI_DOUBLE, left, 3, MPI_COMM_WORLD, &req[0]);
                counts[C_ISEND]++;
                MPI_Isend(buf, 10, MPI_DOUBLE, right, 3, MPI_COMM_WORLD, &req[1]);
                counts[C_WAITALL]++;
                MPI_Waitall(2, req, st);
                x = in[0];
                counts[C_ALLREDUCE]++;
                MPI_Allreduce(&x, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
                total += sum;
                if (i % 10 == 0) {
                        counts[C_BARRIER]++;
                        MPI_Barrier(MPI_COMM_WORLD);
                        counts[C_BCAST]++;
                        MPI_Bcast(&total, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
                }
                free(buf);
                free(in);
        }
        counts[C_FINALIZE]++; /* counted ahead: printed before MPI_Finalize */
        long *all = malloc(sizeof(counts) * (size_t)size);
        counts[C_GATHER]++;
        MPI_Gather(counts, C_N, MPI_LONG, all, C_N, MPI_LONG, 0, MPI_COMM_WORLD);
        if (rank == 0) {
                for (int r = 0; r < size; r++) {
                        printf("counts rank %d:", r);
                        for (int c = 0; c < C_N; c++)
                                printf(" %s %ld", names[c], all[r * C_N + c]);
                        printf("\n");
                }
                printf("result: %.1f\n", total);
                fflush(stdout);
        }
        free(all);
        MPI_Finalize();
        return 0;
}
