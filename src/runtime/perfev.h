/* perfev.h - the kernel's descriptions of its perf PMUs under /sys/bus/event_source/devices/NAME: `type`,
 * `cpumask`, `format/TERM` ("config:0-7", "config:0-7,32-35", "config1:0-63") and `events/EVENT`
 * ("event=0x04,umask=0x03") with `EVENT.scale` and `EVENT.unit`; an event string is encoded into
 * perf_event_attr's config, config1, config2 exactly as the format bits say (as perf does: each term's
 * value is spread over its format's bits, lowest first; a value that does not fit is an error). And the
 * first processor of /proc/cpuinfo (vendor, family, model). Pure: strict parsers, no logging. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define JL_PE_SYSFS "/sys/bus/event_source/devices"
#define JL_PE_NAME_MAX 64
#define JL_PE_FORMATS_MAX 32
#define JL_PE_CPUS_MAX 64   /* CPUs in a PMU's cpumask (one per socket or die) */
#define JL_PE_CPU_BITS 8192 /* highest CPU number + 1 accepted in a cpumask */
#define JL_PE_TEXT_MAX 512  /* longest format, event, scale or unit file accepted */

typedef struct {
        char name[JL_PE_NAME_MAX];
        unsigned field; /* 0: config, 1: config1, 2: config2 */
        uint64_t mask;  /* its bits in that field */
} jl_pe_format;

typedef struct {
        char name[JL_PE_NAME_MAX];
        uint32_t type;
        jl_pe_format formats[JL_PE_FORMATS_MAX];
        size_t nformats;
        int cpus[JL_PE_CPUS_MAX]; /* from cpumask, ascending; ncpus 0: the PMU has none (a core PMU) */
        size_t ncpus;
} jl_pe_pmu;

typedef struct {
        uint32_t type;
        uint64_t config[3];
        double scale;  /* EVENT.scale, 1 without one */
        char unit[16]; /* EVENT.unit, "" without one */
} jl_pe_event;

/* "config:0-7", "config1:0-3,8", "config2:63": the field and the mask of its bits. -EINVAL on garbage
 * (an unknown field, bits overlapping, a range backwards), -ERANGE for a bit above 63. */
int jl_pe_format_parse(const char *text, unsigned *ret_field, uint64_t *ret_mask);

/* Encodes "event=0x04,umask=0x03[,edge][,config1=0x..]" with the PMU's formats: a term without a value
 * is 1; config, config1, config2 set their whole field. -ENOENT for a term the PMU has no format for,
 * -ERANGE for a value that does not fit its bits, -EINVAL for garbage, a duplicate term or a value the
 * user must supply ("?"). */
int jl_pe_encode(const jl_pe_pmu *pmu, const char *terms, uint64_t ret_config[3]);

/* EVENT.scale: a finite number > 0 ("6.103515625e-5"). -EINVAL otherwise. */
int jl_pe_scale_parse(const char *text, double *ret);
/* EVENT.unit: 1-15 letters, '/' or '%' ("MiB", "Joules"). -EINVAL otherwise. */
int jl_pe_unit_parse(const char *text, char *ret, size_t size);
/* cpumask "0,36" or "0-1": CPUs ascending into cpus[max]. Returns their count; -EINVAL on garbage or none,
 * -ERANGE for a CPU >= JL_PE_CPU_BITS, -E2BIG for more than max. */
int jl_pe_cpumask_parse(const char *text, int *cpus, size_t max);

/* Loads ROOT/NAME: type (required), cpumask (optional), format/ (optional; each file must parse). */
int jl_pe_pmu_load(const char *root, const char *name, jl_pe_pmu *ret);
/* Loads ROOT/PMU/events/EVENT with its .scale and .unit (each optional, but must parse when present) and
 * encodes it. -ENOENT when the PMU does not name the event. */
int jl_pe_event_load(const char *root, const jl_pe_pmu *pmu, const char *event, jl_pe_event *ret);
/* The PMUs under root whose names begin with prefix, in version order ("uncore_imc_2" before
 * "uncore_imc_10"). Returns how many were written to names (at most max); -errno when root cannot be read.
 */
int jl_pe_pmu_list(const char *root, const char *prefix, char (*names)[JL_PE_NAME_MAX], size_t max);

typedef struct {
        char vendor[16]; /* "GenuineIntel", "AuthenticAMD" */
        unsigned family, model;
} jl_pe_cpuid;

/* The first processor's vendor_id, cpu family and model of /proc/cpuinfo's text. -ENOENT when one of them
 * is missing, -EINVAL on garbage. */
int jl_pe_cpuinfo_parse(const char *text, jl_pe_cpuid *ret);
