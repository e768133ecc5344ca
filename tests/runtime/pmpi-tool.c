/* pmpi-tool.c - a second PMPI tool of the classic kind, preloaded beside joule by
 * tests/system/test-runtime-loader.sh: it defines MPI_Send, MPI_Allreduce and MPI_Finalize, calls the
 * PMPI_ versions, and at MPI_Finalize prints on stderr
 *   pmpi-tool: rank R: MPI_Send N MPI_Allreduce M */
#include <mpi.h>
#include <stdio.h>

static long sends, allreduces;

int MPI_Send(const void *buf, int count, MPI_Datatype type, int dest, int tag, MPI_Comm comm)
{
        sends++;
        return PMPI_Send(buf, count, type, dest, tag, comm);
}

int MPI_Allreduce(const void *sbuf, void *rbuf, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm)
{
        allreduces++;
        return PMPI_Allreduce(sbuf, rbuf, count, type, op, comm);
}

int MPI_Finalize(void)
{
        int rank = -1;
        PMPI_Comm_rank(MPI_COMM_WORLD, &rank);
        fprintf(stderr, "pmpi-tool: rank %d: MPI_Send %ld MPI_Allreduce %ld\n", rank, sends, allreduces);
        return PMPI_Finalize();
}
