/* unknown-mpi.c - a stand-in for an MPI library joule has no build for (none is packaged for Debian), for
 * tests/system/test-runtime-loader.sh. Built with -DJL_UNKNOWN_MPI_LIB it is the library: its version
 * string names no MPI joule knows, and MPI_Init/MPI_Finalize only count. Built without, it is a program
 * linked against that library which calls both and prints "unknown-mpi: init 1 finalize 1" (the calls
 * reached the library through joule's wrappers). */
#include <stdio.h>
#include <string.h>

#ifdef JL_UNKNOWN_MPI_LIB
int PMPI_Get_library_version(char *version, int *len);
int MPI_Init(int *argc, char ***argv);
int MPI_Finalize(void);
int unknown_mpi_calls(int which);

static int inits, finalizes;

int PMPI_Get_library_version(char *version, int *len)
{
        strcpy(version, "FooMPI 1.0 (an MPI joule does not know)");
        *len = (int)strlen(version);
        return 0;
}

int MPI_Init(int *argc, char ***argv)
{
        inits++;
        return 0;
}

int MPI_Finalize(void)
{
        finalizes++;
        return 0;
}

int unknown_mpi_calls(int which)
{
        return which ? finalizes : inits;
}
#else
int MPI_Init(int *argc, char ***argv);
int MPI_Finalize(void);
int unknown_mpi_calls(int which);

int main(int argc, char **argv)
{
        MPI_Init(&argc, &argv);
        MPI_Finalize();
        printf("unknown-mpi: init %d finalize %d\n", unknown_mpi_calls(0), unknown_mpi_calls(1));
        return 0;
}
#endif
