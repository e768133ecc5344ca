/* mpi-calls.h - the one table of the MPI calls joule intercepts (X-macro), shared by the loader, which
 * generates its C and Fortran wrappers from it, and by the runtime builds, which compute each call's event
 * from it. It needs no mpi.h: arguments are described by their position only.
 *
 * X(Name, name, NAME, c_arity, f_arity, count, type, peer, inplace)
 *   Name, name, NAME  the call as in MPI_Name (C), mpi_name_ / mpi_name__ / MPI_NAME (Fortran)
 *   c_arity, f_arity  number of arguments of the C and of the Fortran binding (ierr included)
 *   count, type       positions of the element count and datatype giving the message size, -1 if none
 *   peer              position of the peer (destination, source) or root, -1 if none
 *   inplace           position of the buffer whose MPI_IN_PLACE makes count and type insignificant, -1 if
 *                     none
 * Fortran arguments come in the same order as C's with ierr last (except Init and Init_thread, which have
 * no argc/argv), so the positions hold for both bindings. */
#pragma once

#define JL_MPI_CALLS(X)                                                                                     \
        /* point to point */                                                                                \
        X(Send, send, SEND, 6, 7, 1, 2, 3, -1)                                                              \
        X(Recv, recv, RECV, 7, 8, 1, 2, 3, -1)                                                              \
        X(Isend, isend, ISEND, 7, 8, 1, 2, 3, -1)                                                           \
        X(Irecv, irecv, IRECV, 7, 8, 1, 2, 3, -1)                                                           \
        X(Ssend, ssend, SSEND, 6, 7, 1, 2, 3, -1)                                                           \
        X(Issend, issend, ISSEND, 7, 8, 1, 2, 3, -1)                                                        \
        X(Bsend, bsend, BSEND, 6, 7, 1, 2, 3, -1)                                                           \
        X(Ibsend, ibsend, IBSEND, 7, 8, 1, 2, 3, -1)                                                        \
        X(Rsend, rsend, RSEND, 6, 7, 1, 2, 3, -1)                                                           \
        X(Irsend, irsend, IRSEND, 7, 8, 1, 2, 3, -1)                                                        \
        X(Sendrecv, sendrecv, SENDRECV, 12, 13, 1, 2, 3, -1)                                                \
        X(Sendrecv_replace, sendrecv_replace, SENDRECV_REPLACE, 9, 10, 1, 2, 3, -1)                         \
        X(Send_init, send_init, SEND_INIT, 7, 8, 1, 2, 3, -1)                                               \
        X(Recv_init, recv_init, RECV_INIT, 7, 8, 1, 2, 3, -1)                                               \
        X(Start, start, START, 1, 2, -1, -1, -1, -1)                                                        \
        X(Startall, startall, STARTALL, 2, 3, -1, -1, -1, -1)                                               \
        X(Probe, probe, PROBE, 4, 5, -1, -1, 0, -1)                                                         \
        X(Iprobe, iprobe, IPROBE, 5, 6, -1, -1, 0, -1)                                                      \
        X(Mprobe, mprobe, MPROBE, 5, 6, -1, -1, 0, -1)                                                      \
        X(Improbe, improbe, IMPROBE, 6, 7, -1, -1, 0, -1)                                                   \
        X(Mrecv, mrecv, MRECV, 5, 6, 1, 2, -1, -1)                                                          \
        X(Imrecv, imrecv, IMRECV, 5, 6, 1, 2, -1, -1)                                                       \
        /* completion */                                                                                    \
        X(Wait, wait, WAIT, 2, 3, -1, -1, -1, -1)                                                           \
        X(Waitall, waitall, WAITALL, 3, 4, -1, -1, -1, -1)                                                  \
        X(Waitany, waitany, WAITANY, 4, 5, -1, -1, -1, -1)                                                  \
        X(Waitsome, waitsome, WAITSOME, 5, 6, -1, -1, -1, -1)                                               \
        X(Test, test, TEST, 3, 4, -1, -1, -1, -1)                                                           \
        X(Testall, testall, TESTALL, 4, 5, -1, -1, -1, -1)                                                  \
        X(Testany, testany, TESTANY, 5, 6, -1, -1, -1, -1)                                                  \
        X(Testsome, testsome, TESTSOME, 5, 6, -1, -1, -1, -1)                                               \
        X(Request_free, request_free, REQUEST_FREE, 1, 2, -1, -1, -1, -1)                                   \
        X(Cancel, cancel, CANCEL, 1, 2, -1, -1, -1, -1)                                                     \
        /* blocking collectives */                                                                          \
        X(Barrier, barrier, BARRIER, 1, 2, -1, -1, -1, -1)                                                  \
        X(Bcast, bcast, BCAST, 5, 6, 1, 2, 3, -1)                                                           \
        X(Reduce, reduce, REDUCE, 7, 8, 2, 3, 5, -1)                                                        \
        X(Allreduce, allreduce, ALLREDUCE, 6, 7, 2, 3, -1, -1)                                              \
        X(Gather, gather, GATHER, 8, 9, 1, 2, 6, 0)                                                         \
        X(Gatherv, gatherv, GATHERV, 9, 10, 1, 2, 7, 0)                                                     \
        X(Scatter, scatter, SCATTER, 8, 9, 4, 5, 6, 3)                                                      \
        X(Scatterv, scatterv, SCATTERV, 9, 10, 5, 6, 7, 4)                                                  \
        X(Allgather, allgather, ALLGATHER, 7, 8, 4, 5, -1, -1)                                              \
        X(Allgatherv, allgatherv, ALLGATHERV, 8, 9, 1, 2, -1, 0)                                            \
        X(Alltoall, alltoall, ALLTOALL, 7, 8, 4, 5, -1, -1)                                                 \
        X(Alltoallv, alltoallv, ALLTOALLV, 9, 10, -1, -1, -1, -1)                                           \
        X(Alltoallw, alltoallw, ALLTOALLW, 9, 10, -1, -1, -1, -1)                                           \
        X(Reduce_scatter, reduce_scatter, REDUCE_SCATTER, 6, 7, -1, -1, -1, -1)                             \
        X(Reduce_scatter_block, reduce_scatter_block, REDUCE_SCATTER_BLOCK, 6, 7, 2, 3, -1, -1)             \
        X(Scan, scan, SCAN, 6, 7, 2, 3, -1, -1)                                                             \
        X(Exscan, exscan, EXSCAN, 6, 7, 2, 3, -1, -1)                                                       \
        /* non-blocking collectives (MPI-3): the blocking arguments and a request */                        \
        X(Ibarrier, ibarrier, IBARRIER, 2, 3, -1, -1, -1, -1)                                               \
        X(Ibcast, ibcast, IBCAST, 6, 7, 1, 2, 3, -1)                                                        \
        X(Ireduce, ireduce, IREDUCE, 8, 9, 2, 3, 5, -1)                                                     \
        X(Iallreduce, iallreduce, IALLREDUCE, 7, 8, 2, 3, -1, -1)                                           \
        X(Igather, igather, IGATHER, 9, 10, 1, 2, 6, 0)                                                     \
        X(Igatherv, igatherv, IGATHERV, 10, 11, 1, 2, 7, 0)                                                 \
        X(Iscatter, iscatter, ISCATTER, 9, 10, 4, 5, 6, 3)                                                  \
        X(Iscatterv, iscatterv, ISCATTERV, 10, 11, 5, 6, 7, 4)                                              \
        X(Iallgather, iallgather, IALLGATHER, 8, 9, 4, 5, -1, -1)                                           \
        X(Iallgatherv, iallgatherv, IALLGATHERV, 9, 10, 1, 2, -1, 0)                                        \
        X(Ialltoall, ialltoall, IALLTOALL, 8, 9, 4, 5, -1, -1)                                              \
        X(Ialltoallv, ialltoallv, IALLTOALLV, 10, 11, -1, -1, -1, -1)                                       \
        X(Ialltoallw, ialltoallw, IALLTOALLW, 10, 11, -1, -1, -1, -1)                                       \
        X(Ireduce_scatter, ireduce_scatter, IREDUCE_SCATTER, 7, 8, -1, -1, -1, -1)                          \
        X(Ireduce_scatter_block, ireduce_scatter_block, IREDUCE_SCATTER_BLOCK, 7, 8, 2, 3, -1, -1)          \
        X(Iscan, iscan, ISCAN, 7, 8, 2, 3, -1, -1)                                                          \
        X(Iexscan, iexscan, IEXSCAN, 7, 8, 2, 3, -1, -1)                                                    \
        /* start and end */                                                                                 \
        X(Init, init, INIT, 2, 1, -1, -1, -1, -1)                                                           \
        X(Init_thread, init_thread, INIT_THREAD, 4, 3, -1, -1, -1, -1)                                      \
        X(Finalize, finalize, FINALIZE, 0, 1, -1, -1, -1, -1)                                               \
        /* communicators */                                                                                 \
        X(Comm_split, comm_split, COMM_SPLIT, 4, 5, -1, -1, -1, -1)                                         \
        X(Comm_split_type, comm_split_type, COMM_SPLIT_TYPE, 5, 6, -1, -1, -1, -1)                          \
        X(Comm_dup, comm_dup, COMM_DUP, 2, 3, -1, -1, -1, -1)                                               \
        X(Comm_create, comm_create, COMM_CREATE, 3, 4, -1, -1, -1, -1)                                      \
        X(Comm_free, comm_free, COMM_FREE, 1, 2, -1, -1, -1, -1)                                            \
        X(Cart_create, cart_create, CART_CREATE, 6, 7, -1, -1, -1, -1)

/* The call ids: JL_MPI_Send, JL_MPI_Recv, ...; JL_MPI_NCALLS is their number. */
enum jl_mpi_call {
#define JL_MPI_CALL_ENUM(N, n, U, ca, fa, c, t, p, ip) JL_MPI_##N,
        JL_MPI_CALLS(JL_MPI_CALL_ENUM)
#undef JL_MPI_CALL_ENUM
            JL_MPI_NCALLS
};

/* One call's description, for the runtime (jl_mpi_call_info[id]). */
struct jl_mpi_call_info {
        const char *name; /* "MPI_Send" */
        signed char c_arity, f_arity, count, type, peer, inplace;
};

static const struct jl_mpi_call_info jl_mpi_call_info[JL_MPI_NCALLS] __attribute__((unused)) = {
#define JL_MPI_CALL_INFO(N, n, U, ca, fa, c, t, p, ip) [JL_MPI_##N] = {"MPI_" #N, ca, fa, c, t, p, ip},
    JL_MPI_CALLS(JL_MPI_CALL_INFO)
#undef JL_MPI_CALL_INFO
};
