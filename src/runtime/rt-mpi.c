/* rt-mpi.c - the hooks of an MPI runtime build, compiled once per MPI flavour against that MPI's mpi.h
 * (JL_RT_FLAVOUR: JL_RT_OMPI or JL_RT_MPICH): libjoule-rt-ompi.so, libjoule-rt-mpich.so. Before each call
 * it computes the call's event (event.h) and hands it to jl_rt_event(); after MPI_Init it finds this
 * rank's node (MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)) and whether it is the node master, the one rank
 * per node that decides: it starts the manager (manage.c) for the union of the node's ranks' CPUs; at
 * MPI_Finalize the manager ends and each rank prints its summary when JOULE_VERBOSE >= 2.
 *
 * Its own MPI calls go to PMPI_x: through the loader's PMPI wrappers (which only forward, since they are
 * nested in an intercepted call) to the MPI library, unseen by other PMPI tools. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <mpi.h>

#include "event.h"
#include "manage.h"
#include "rt-abi.h"
#include "runtime.h"

#ifndef JL_RT_FLAVOUR
#error "JL_RT_FLAVOUR must be defined by the build"
#endif

static MPI_Comm node_comm = MPI_COMM_NULL;
static int world_rank = -1, world_size, node_rank = -1, node_size;
static bool node_master;
static uint64_t fortran_calls; /* calls through the Fortran bindings */

bool jl_rt_node_master(void)
{
        return node_master;
}

static bool is_collective(enum jl_mpi_call call)
{
        return call >= JL_MPI_Barrier && call <= JL_MPI_Iexscan;
}

static int64_t call_peer(const struct jl_mpi_call_info *ci, unsigned flags, const uintptr_t *args)
{
        if (ci->peer < 0)
                return JL_EVENT_NO_PEER;
        if (flags & JL_RT_FORTRAN)
                return *(const MPI_Fint *)args[ci->peer];
        return (int)args[ci->peer];
}

/* The sizes of the predefined datatypes, filled after MPI_Init (they are never freed, so their handles
 * stay theirs): a lookup here costs less than PMPI_Type_size, which derived types still take. Open
 * addressing on the handle; 0 size: empty. */
#define TYPE_CACHE_SIZE 128u
static struct {
        uintptr_t handle;
        int size;
} type_cache[TYPE_CACHE_SIZE];

static unsigned type_slot(uintptr_t handle)
{
        return (unsigned)((handle * 0x9E3779B97F4A7C15ull) >> 57) & (TYPE_CACHE_SIZE - 1u);
}

static void type_cache_fill(void)
{
        const MPI_Datatype predefined[] = {
            MPI_CHAR,
            MPI_SIGNED_CHAR,
            MPI_UNSIGNED_CHAR,
            MPI_BYTE,
            MPI_WCHAR,
            MPI_SHORT,
            MPI_UNSIGNED_SHORT,
            MPI_INT,
            MPI_UNSIGNED,
            MPI_LONG,
            MPI_UNSIGNED_LONG,
            MPI_LONG_LONG,
            MPI_UNSIGNED_LONG_LONG,
            MPI_FLOAT,
            MPI_DOUBLE,
            MPI_LONG_DOUBLE,
            MPI_C_BOOL,
            MPI_INT8_T,
            MPI_INT16_T,
            MPI_INT32_T,
            MPI_INT64_T,
            MPI_UINT8_T,
            MPI_UINT16_T,
            MPI_UINT32_T,
            MPI_UINT64_T,
            MPI_C_FLOAT_COMPLEX,
            MPI_C_DOUBLE_COMPLEX,
            MPI_AINT,
            MPI_OFFSET,
            MPI_COUNT,
            MPI_FLOAT_INT,
            MPI_DOUBLE_INT,
            MPI_LONG_INT,
            MPI_2INT,
            MPI_SHORT_INT,
            MPI_LONG_DOUBLE_INT,
            MPI_CHARACTER,
            MPI_INTEGER,
            MPI_REAL,
            MPI_DOUBLE_PRECISION,
            MPI_COMPLEX,
            MPI_DOUBLE_COMPLEX,
            MPI_LOGICAL,
            MPI_2INTEGER,
            MPI_2REAL,
            MPI_2DOUBLE_PRECISION,
        };
        for (size_t i = 0; i < sizeof(predefined) / sizeof(predefined[0]); i++) {
                uintptr_t h = (uintptr_t)predefined[i];
                int size = 0;
                /* types this MPI does not have (a Fortran type without Fortran) answer an error or 0 */
                if (predefined[i] == MPI_DATATYPE_NULL ||
                    PMPI_Type_size(predefined[i], &size) != MPI_SUCCESS || size <= 0)
                        continue;
                for (unsigned k = 0, slot = type_slot(h); k < TYPE_CACHE_SIZE;
                     k++, slot = (slot + 1u) & (TYPE_CACHE_SIZE - 1u)) {
                        if (type_cache[slot].size == 0 || type_cache[slot].handle == h) {
                                type_cache[slot].handle = h;
                                type_cache[slot].size = size;
                                break;
                        }
                }
        }
}

static int type_size(MPI_Datatype type)
{
        uintptr_t h = (uintptr_t)type;
        int size = 0;

        for (unsigned k = 0, slot = type_slot(h); k < TYPE_CACHE_SIZE && type_cache[slot].size;
             k++, slot = (slot + 1u) & (TYPE_CACHE_SIZE - 1u))
                if (type_cache[slot].handle == h)
                        return type_cache[slot].size;
        if (PMPI_Type_size(type, &size) != MPI_SUCCESS)
                return 0;
        return size;
}

/* The message's bytes, 0 where the count and type are not significant or unknown. */
static uint64_t call_bytes(enum jl_mpi_call call, const struct jl_mpi_call_info *ci, unsigned flags,
                           const uintptr_t *args, int64_t peer)
{
        MPI_Datatype type;
        int64_t count;
        int size = 0;

        if (ci->count < 0 || ci->type < 0)
                return 0;
        /* an intercommunicator's root side and idle side pass no data of their own */
        if (is_collective(call) && (peer == MPI_ROOT || peer == MPI_PROC_NULL))
                return 0;
        if (flags & JL_RT_FORTRAN) {
                /* Fortran's MPI_IN_PLACE is the address of a variable of the MPI library's own: where it
                 * may stand, the count may be garbage, so no size */
                if (ci->inplace >= 0)
                        return 0;
                count = *(const MPI_Fint *)args[ci->count];
                if (count <= 0)
                        return 0;
                type = MPI_Type_f2c(*(const MPI_Fint *)args[ci->type]);
        } else {
                if (ci->inplace >= 0 && (const void *)args[ci->inplace] == MPI_IN_PLACE)
                        return 0;
                count = (int)args[ci->count];
                if (count <= 0)
                        return 0;
                type = (MPI_Datatype)args[ci->type];
        }
        /* (a zero handle: what Open MPI's MPI_Type_f2c answers for a Fortran handle it does not know) */
        if (type == MPI_DATATYPE_NULL || (uintptr_t)type == 0 || (size = type_size(type)) <= 0)
                return 0;
        return (uint64_t)count * (uint64_t)size;
}

static void started(void)
{
        type_cache_fill();
        PMPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
        PMPI_Comm_size(MPI_COMM_WORLD, &world_size);
        if (PMPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node_comm) ==
            MPI_SUCCESS) {
                PMPI_Comm_rank(node_comm, &node_rank);
                PMPI_Comm_size(node_comm, &node_size);
                node_master = node_rank == 0;
        }
        /* the node's CPUs: the union of its ranks' affinities, for the frequency requests */
        cpu_set_t mine, node;
        CPU_ZERO(&mine);
        CPU_ZERO(&node);
        if (sched_getaffinity(0, sizeof(mine), &mine) < 0)
                CPU_ZERO(&mine);
        if (node_comm == MPI_COMM_NULL ||
            PMPI_Allreduce(&mine, &node, (int)sizeof(node), MPI_BYTE, MPI_BOR, node_comm) != MPI_SUCCESS)
                node = mine;
        if (node_master) {
                jl_rt_manage_start(true, &node);
                jl_rt_set_event_hook(jl_rt_manage_event);
        }
        if (jl_rt_verbose >= 3)
                jl_rt_say("rank %d/%d: node rank %d/%d%s%s", world_rank, world_size, node_rank, node_size,
                          node_master ? ", node master" : "",
                          jl_rt_threaded() ? ", MPI_THREAD_MULTIPLE (atomic counts)" : "");
}

static void finishing(void)
{
        if (node_master) {
                jl_rt_set_event_hook(NULL);
                jl_rt_manage_fini();
        }
        if (jl_rt_verbose >= 2) {
                char counts[6144];
                jl_rt_format_counts(counts, sizeof(counts));
                jl_rt_say("rank %d/%d%s: %llu MPI calls (%llu through Fortran), %u distinct events: %s",
                          world_rank, world_size, node_master ? " (node master)" : "",
                          (unsigned long long)jl_rt_count_total(),
                          (unsigned long long)__atomic_load_n(&fortran_calls, __ATOMIC_RELAXED),
                          jl_rt_distinct_events(), counts);
        }
        if (node_comm != MPI_COMM_NULL)
                PMPI_Comm_free(&node_comm);
}

static void rt_before(enum jl_mpi_call call, unsigned flags, const uintptr_t *args)
{
        const struct jl_mpi_call_info *ci = &jl_mpi_call_info[call];
        int64_t peer = call_peer(ci, flags, args);

        if (flags & JL_RT_FORTRAN)
                __atomic_fetch_add(&fortran_calls, 1u, __ATOMIC_RELAXED);

        jl_rt_event(jl_event_id(call, peer, call_bytes(call, ci, flags, args, peer)), call);
        if (call == JL_MPI_Finalize)
                finishing();
}

static void rt_after(enum jl_mpi_call call, unsigned flags, const uintptr_t *args, int ret)
{
        if (call != JL_MPI_Init && call != JL_MPI_Init_thread)
                return;
        if (flags & JL_RT_FORTRAN)
                ret = *(const MPI_Fint *)args[jl_mpi_call_info[call].f_arity - 1];
        if (ret != MPI_SUCCESS)
                return;
        if (call == JL_MPI_Init_thread) {
                /* provided: C's (argc, argv, required, provided), Fortran's (required, provided, ierr) */
                int provided = flags & JL_RT_FORTRAN ? *(const MPI_Fint *)args[1] : *(const int *)args[3];
                jl_rt_set_threaded(provided == MPI_THREAD_MULTIPLE);
        }
        started();
}

static int rt_init(int verbose)
{
        jl_rt_verbose = verbose;
        return 0;
}

static void rt_fini(void)
{
}

static const struct jl_rt_ops ops = {
    .abi_version = JL_RT_ABI_VERSION,
    .n_calls = JL_MPI_NCALLS,
    .flavour = JL_RT_FLAVOUR,
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
