/* scenario.h - a measurement-cluster scenario: the YAML file a benchmark job runs (setup, a flow of named
 * steps that each become a measured phase, teardown, environment variables, per-step timeouts), parsed
 * strictly with libyaml so that every error names the file, line and key. See docs/scenarios.md.
 *
 *     name: build and test                  # required
 *     description: optional free text
 *     environment: {CC: gcc, JOBS: "2"}     # optional, for every command
 *     setup: [git submodule update --init]  # optional, not measured
 *     flow:                                 # required, at least one step
 *       - name: compile                     # required, unique
 *         commands: [make -j$JOBS]          # required, at least one
 *         timeout_s: 600                    # optional (default 3600 s) for the whole step, 0 < t <= 604800
 *         environment: {CFLAGS: -O2}        # optional, over the scenario's
 *     teardown: [make clean]                # optional, not measured
 *
 * Every command is one string for /bin/sh -c. */
#pragma once

#include <stddef.h>

#define JL_SCENARIO_DEFAULT_TIMEOUT_S 3600.0
#define JL_SCENARIO_MAX_TIMEOUT_S 604800.0 /* one week */
/* Bounds on what a file may hold; beyond them the file is refused with an error. */
#define JL_SCENARIO_MAX_FILE_BYTES (1024 * 1024)
#define JL_SCENARIO_MAX_ITEMS 1000        /* steps, commands per list, environment variables */
#define JL_SCENARIO_MAX_NAME 128          /* bytes of a scenario or step name */
#define JL_SCENARIO_MAX_COMMAND (64 * 1024) /* bytes of one command */

/* Environment variables in file order: names match [A-Za-z_][A-Za-z0-9_]*, each at most once. */
typedef struct {
        char **names;
        char **values;
        size_t n;
} jl_scenario_env;

typedef struct {
        char *name;          /* unique within the flow; never starts with '[' (reserved: "[BASELINE]") */
        char **commands;     /* n_commands >= 1 non-empty strings */
        size_t n_commands;
        double timeout_s;    /* for the whole step; JL_SCENARIO_DEFAULT_TIMEOUT_S when the file has none */
        jl_scenario_env env; /* the step's own variables; they override the scenario's */
        size_t line;         /* where the step starts in the file (1-based), for messages */
} jl_scenario_step;

typedef struct {
        char *file;        /* the name given to the loader (path), for messages */
        char *name;        /* required, non-empty */
        char *description; /* NULL when absent */
        jl_scenario_env env;
        char **setup; /* not measured; each with the default timeout */
        size_t n_setup;
        jl_scenario_step *flow; /* n_flow >= 1 */
        size_t n_flow;
        char **teardown; /* not measured; run even after a failed step */
        size_t n_teardown;
} jl_scenario;

/* Load a scenario file. Returns 0 and a new scenario in *ret, or a negative errno: -EINVAL for anything
 * wrong in the file, with "FILE:LINE: KEY: what is wrong" in err (e.g. "s.yml:7: flow[1].timeout_s:
 * '-3' is out of range (0 < t <= 604800)"), the errno of open/read with "FILE: reason", -EFBIG for a file
 * above JL_SCENARIO_MAX_FILE_BYTES, -ENOMEM. */
int jl_scenario_load(const char *path, jl_scenario **ret, char *err, size_t errlen);
/* The same from text in memory; `name` stands for the file in messages. */
int jl_scenario_load_string(const char *name, const char *text, size_t len, jl_scenario **ret, char *err,
                            size_t errlen);
void jl_scenario_free(jl_scenario *s);

/* The value a command of `step` (NULL: setup/teardown) sees for `name`: the step's variable, else the
 * scenario's, else NULL (the runner's own environment then applies). */
const char *jl_scenario_getenv(const jl_scenario *s, const jl_scenario_step *step, const char *name);
