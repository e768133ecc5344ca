/* wrappers.c - the MPI entry points of libjoule-loader.so, generated from the call table (mpi-calls.h):
 * MPI_x and PMPI_x for C, mpi_x_, mpi_x__ and MPI_X for Fortran. Each forwards to the next definition in
 * the symbol search order (dlsym(RTLD_NEXT), resolved on first use): another PMPI tool preloaded after
 * joule, else the MPI library. Around the call it runs the runtime's hooks, only for the outermost
 * intercepted call of a thread, so that a call seen twice (a tool's MPI_Send calling PMPI_Send, a Fortran
 * binding calling the C one, MPI calls of the runtime itself) is counted once.
 *
 * No mpi.h: every argument travels as a 64-bit slot. On x86-64 an int argument (MPICH's handles, counts)
 * and a pointer (Open MPI's handles, buffers) both occupy one integer register or one 8-byte stack slot, and
 * the callee reads the int from the slot's low half, so one set of wrappers forwards for both MPIs
 * (docs/runtime.md). No MPI call takes a floating-point argument. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "loader.h"

#if !defined(__x86_64__) && !defined(__aarch64__)
#error "the generic MPI wrappers assume 64-bit integer argument slots (x86-64, aarch64)"
#endif

#define JL_EXPORT __attribute__((visibility("default")))

/* parameter lists, argument lists, parameter types and the arguments' array for 0 ... 13 arguments */
#define JL_P0 void
#define JL_P1 uintptr_t a0
#define JL_P2 JL_P1, uintptr_t a1
#define JL_P3 JL_P2, uintptr_t a2
#define JL_P4 JL_P3, uintptr_t a3
#define JL_P5 JL_P4, uintptr_t a4
#define JL_P6 JL_P5, uintptr_t a5
#define JL_P7 JL_P6, uintptr_t a6
#define JL_P8 JL_P7, uintptr_t a7
#define JL_P9 JL_P8, uintptr_t a8
#define JL_P10 JL_P9, uintptr_t a9
#define JL_P11 JL_P10, uintptr_t a10
#define JL_P12 JL_P11, uintptr_t a11
#define JL_P13 JL_P12, uintptr_t a12
#define JL_A0
#define JL_A1 a0
#define JL_A2 JL_A1, a1
#define JL_A3 JL_A2, a2
#define JL_A4 JL_A3, a3
#define JL_A5 JL_A4, a4
#define JL_A6 JL_A5, a5
#define JL_A7 JL_A6, a6
#define JL_A8 JL_A7, a7
#define JL_A9 JL_A8, a8
#define JL_A10 JL_A9, a9
#define JL_A11 JL_A10, a10
#define JL_A12 JL_A11, a11
#define JL_A13 JL_A12, a12
#define JL_T0 void
#define JL_T1 uintptr_t
#define JL_T2 JL_T1, uintptr_t
#define JL_T3 JL_T2, uintptr_t
#define JL_T4 JL_T3, uintptr_t
#define JL_T5 JL_T4, uintptr_t
#define JL_T6 JL_T5, uintptr_t
#define JL_T7 JL_T6, uintptr_t
#define JL_T8 JL_T7, uintptr_t
#define JL_T9 JL_T8, uintptr_t
#define JL_T10 JL_T9, uintptr_t
#define JL_T11 JL_T10, uintptr_t
#define JL_T12 JL_T11, uintptr_t
#define JL_T13 JL_T12, uintptr_t
#define JL_V0 0 /* the arguments' array never has zero length */
#define JL_V1 JL_A1
#define JL_V2 JL_A2
#define JL_V3 JL_A3
#define JL_V4 JL_A4
#define JL_V5 JL_A5
#define JL_V6 JL_A6
#define JL_V7 JL_A7
#define JL_V8 JL_A8
#define JL_V9 JL_A9
#define JL_V10 JL_A10
#define JL_V11 JL_A11
#define JL_V12 JL_A12
#define JL_V13 JL_A13

/* nesting of intercepted calls in this thread (static TLS: the loader is preloaded) */
static __thread unsigned depth __attribute__((tls_model("initial-exec")));

/* The next definition of name, looked up once per entry point. Without one the call cannot be made at all:
 * say so and stop rather than return an error the program may not check. */
__attribute__((noinline, cold)) static void *resolve(void **slot, const char *name)
{
        void *p = dlsym(RTLD_NEXT, name);
        if (!p) {
                fprintf(stderr, "joule: %s has no definition after libjoule-loader.so; cannot forward it\n",
                        name);
                abort();
        }
        __atomic_store_n(slot, p, __ATOMIC_RELAXED);
        return p;
}

static inline void *next_of(void **slot, const char *name)
{
        void *p = __atomic_load_n(slot, __ATOMIC_RELAXED);
        return __builtin_expect(p != NULL, 1) ? p : resolve(slot, name);
}

static inline const struct jl_rt_ops *enter(void)
{
        if (depth++)
                return NULL;
        return __atomic_load_n(&jl_loader_ops, __ATOMIC_ACQUIRE);
}

static inline void leave(void)
{
        depth--;
}

#define JL_WRAP_C(sym, id, n)                                                                               \
        JL_EXPORT int sym(JL_P##n);                                                                         \
        JL_EXPORT int sym(JL_P##n)                                                                          \
        {                                                                                                   \
                static void *next;                                                                          \
                int (*fn)(JL_T##n) = (int (*)(JL_T##n))next_of(&next, #sym);                                \
                const uintptr_t args[] = {JL_V##n};                                                         \
                const struct jl_rt_ops *ops = enter();                                                      \
                if (ops)                                                                                    \
                        ops->before(id, 0, args);                                                           \
                int ret = fn(JL_A##n);                                                                      \
                if (ops)                                                                                    \
                        ops->after(id, 0, args, ret);                                                       \
                leave();                                                                                    \
                return ret;                                                                                 \
        }

#define JL_WRAP_F(sym, id, n)                                                                               \
        JL_EXPORT void sym(JL_P##n);                                                                        \
        JL_EXPORT void sym(JL_P##n)                                                                         \
        {                                                                                                   \
                static void *next;                                                                          \
                void (*fn)(JL_T##n) = (void (*)(JL_T##n))next_of(&next, #sym);                              \
                const uintptr_t args[] = {JL_V##n};                                                         \
                const struct jl_rt_ops *ops = enter();                                                      \
                if (ops)                                                                                    \
                        ops->before(id, JL_RT_FORTRAN, args);                                               \
                fn(JL_A##n);                                                                                \
                if (ops)                                                                                    \
                        ops->after(id, JL_RT_FORTRAN, args, 0);                                             \
                leave();                                                                                    \
        }

#define JL_WRAP_ALL(N, n, U, ca, fa, c, t, p, ip)                                                           \
        JL_WRAP_C(MPI_##N, JL_MPI_##N, ca)                                                                  \
        JL_WRAP_C(PMPI_##N, JL_MPI_##N, ca)                                                                 \
        JL_WRAP_F(mpi_##n##_, JL_MPI_##N, fa)                                                               \
        JL_WRAP_F(mpi_##n##__, JL_MPI_##N, fa)                                                              \
        JL_WRAP_F(MPI_##U, JL_MPI_##N, fa)

JL_MPI_CALLS(JL_WRAP_ALL)
