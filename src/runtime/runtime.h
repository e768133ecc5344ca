/* runtime.h - the part of the runtime that every build shares (rt-core.c): the event stream, the
 * per-call counts and the summary. One build per MPI flavour (rt-mpi.c compiled against that MPI's mpi.h)
 * and one for programs without MPI (rt-nompi.c) add their hooks around it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mpi-calls.h"

/* JOULE_VERBOSE, as the loader parsed it */
extern int jl_rt_verbose;

/* One MPI event (event.h): the single entry point of loop detection. It counts events per call type and
 * the distinct event ids, and hands the event to the event hook (the node master's manager). Any thread. */
void jl_rt_event(uint32_t event_id, enum jl_mpi_call call);

/* Every event also goes to hook (NULL: none); the node master's manager sets it. */
void jl_rt_set_event_hook(void (*hook)(uint32_t event_id));

/* Whether threads may call MPI at the same time (MPI_THREAD_MULTIPLE was provided): counts then take
 * atomic read-modify-writes. */
void jl_rt_set_threaded(bool on);
bool jl_rt_threaded(void);

/* The counts so far. */
uint64_t jl_rt_count(enum jl_mpi_call call);
uint64_t jl_rt_count_total(void);
/* distinct event ids seen (up to the set's capacity, 4096) */
unsigned jl_rt_distinct_events(void);

/* Writes "MPI_Send 10, MPI_Recv 10, ..." (the calls seen, in table order) into buf; returns its length. */
size_t jl_rt_format_counts(char *buf, size_t size);

/* MPI builds: whether this rank is its node's master (rank 0 of MPI_COMM_TYPE_SHARED), known after
 * MPI_Init; the one rank per node that will decide. */
bool jl_rt_node_master(void);

/* Writes "joule: PROGRAM[PID]: " + the formatted line + "\n" to stderr in one write. */
__attribute__((format(printf, 1, 2))) void jl_rt_say(const char *fmt, ...);
