/* test-scenario.c - the scenario loader (good files, every kind of bad one, errors that name file, line and
 * key) and the system checks' evaluation against the machine profiles. Argument: tests/fixtures/scenarios. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"
#include "syscheck.h"
#include "tap.h"

static int load(const char *text, jl_scenario **s, char *err, size_t errlen)
{
        *s = NULL;
        err[0] = '\0';
        return jl_scenario_load_string("s.yml", text, strlen(text), s, err, errlen);
}

/* A bad scenario: -EINVAL, and the message is exactly `want` (or contains it when `sub`). */
static void bad(const char *text, const char *want, bool sub, const char *what)
{
        jl_scenario *s;
        char err[512];
        int r = load(text, &s, err, sizeof(err));
        ok(r == -EINVAL && !s && (sub ? strstr(err, want) != NULL : strcmp(err, want) == 0), "%s: %s", what, err);
        if (sub ? !strstr(err, want) : strcmp(err, want) != 0)
                printf("#   want %s'%s'\n", sub ? "a message containing " : "", want);
        jl_scenario_free(s);
}

static void test_good(const char *dir)
{
        char path[4096], err[512];
        jl_scenario *s = NULL;
        snprintf(path, sizeof(path), "%s/good-full.yml", dir);
        is_int(jl_scenario_load(path, &s, err, sizeof(err)), 0, "good-full.yml loads (%s)", err);
        if (!s)
                return;
        is_str(s->name, "build and test", "name");
        is_str(s->description, "compiles a small program, runs it, cleans up", "description");
        is_int(s->env.n, 2, "two variables");
        is_str(s->env.names[1], "JOBS", "variable order kept");
        is_str(s->env.values[1], "2", "a number is a string value");
        is_int(s->n_setup, 1, "one setup command");
        is_str(s->setup[0], "echo \"setup $GREETING\"", "setup command text");
        is_int(s->n_flow, 3, "three steps");
        is_str(s->flow[0].name, "compile", "step 0 name");
        is_int(s->flow[0].n_commands, 2, "step 0: two commands");
        is_near(s->flow[0].timeout_s, 60, 0, "step 0: timeout 60 s");
        is_near(s->flow[1].timeout_s, JL_SCENARIO_DEFAULT_TIMEOUT_S, 0, "step 1: the default timeout");
        is_near(s->flow[2].timeout_s, 0.5, 0, "step 2: a fractional timeout");
        is_int(s->flow[1].line, 15, "step 1 starts on line 15");
        is_str(jl_scenario_getenv(s, &s->flow[1], "GREETING"), "bonjour", "a step's variable overrides");
        is_str(jl_scenario_getenv(s, &s->flow[0], "GREETING"), "hello", "the scenario's otherwise");
        is_str(jl_scenario_getenv(s, NULL, "JOBS"), "2", "setup sees the scenario's");
        ok(jl_scenario_getenv(s, NULL, "NOPE") == NULL, "unknown variable: NULL");
        is_int(s->n_teardown, 1, "one teardown command");
        jl_scenario_free(s);

        snprintf(path, sizeof(path), "%s/good-minimal.yml", dir);
        is_int(jl_scenario_load(path, &s, err, sizeof(err)), 0, "good-minimal.yml loads (%s)", err);
        if (s) {
                ok(s->n_setup == 0 && s->n_teardown == 0 && s->env.n == 0 && !s->description,
                   "optional parts absent");
                jl_scenario_free(s);
        }

        is_int(load("name: n\nsetup:\nteardown: ~\nenvironment:\nflow:\n  - {name: a, commands: [x]}\n", &s, err,
                    sizeof(err)),
               0, "empty setup, teardown and environment are allowed (%s)", err);
        jl_scenario_free(s);
        is_int(load("name: n\nflow:\n  - name: a\n    commands: [x]\n    environment: {EMPTY: \"\"}\n", &s, err,
                    sizeof(err)),
               0, "an empty quoted value is a value");
        if (s)
                is_str(jl_scenario_getenv(s, &s->flow[0], "EMPTY"), "", "empty value");
        jl_scenario_free(s);
}

static void test_fixture_bad(const char *dir, const char *file, const char *want)
{
        char path[4096], err[512], full[4200];
        jl_scenario *s = NULL;
        snprintf(path, sizeof(path), "%s/%s", dir, file);
        snprintf(full, sizeof(full), "%s:%s", path, want);
        is_int(jl_scenario_load(path, &s, err, sizeof(err)), -EINVAL, "%s is refused", file);
        ok(strncmp(err, full, strlen(full)) == 0, "%s: %s", file, err);
        jl_scenario_free(s);
}

static void test_bad(const char *dir)
{
        test_fixture_bad(dir, "bad-unknown-key.yml", "6: flow[0]: unknown key 'timout_s'");
        test_fixture_bad(dir, "bad-duplicate-step.yml", "6: flow[1].name: step name 'run' is already used by flow[0] (line 4)");
        test_fixture_bad(dir, "bad-timeout.yml", "6: flow[0].timeout_s: '-3' is out of range (0 < t <= 604800)");
        test_fixture_bad(dir, "bad-empty-flow.yml", "3: flow: the flow is empty: give at least one step");

        jl_scenario *s = NULL;
        char err[512];
        is_int(jl_scenario_load("/nonexistent/s.yml", &s, err, sizeof(err)), -ENOENT, "missing file: -ENOENT");
        is_str(err, "/nonexistent/s.yml: No such file or directory", "missing file: message");

        bad("", "s.yml:1: the file is empty: a scenario needs a name and a flow", false, "empty file");
        bad("- a\n- b\n", "s.yml:1: the top level must be a mapping", true, "a list at the top");
        bad("name: [x\n", "s.yml:2: ", true, "malformed YAML names a line");
        bad("flow:\n  - {name: a, commands: [x]}\n", "s.yml:1: the scenario has no 'name'", false, "no name");
        bad("name: n\n", "s.yml:1: the scenario has no 'flow' (a list of named steps)", false, "no flow");
        bad("name: n\nflow: {a: b}\n", "s.yml:2: flow: expected a list of steps, not a mapping", false,
            "flow of the wrong type");
        bad("name: n\nflow:\n", "s.yml:2: flow: expected a list of steps, not nothing", false, "flow: nothing");
        bad("name: n\nflow: [{name: a, commands: [x]}]\nflows: []\n", "s.yml:3: unknown key 'flows'", true, "unknown top-level key");
        bad("name: n\nname: m\nflow: [{name: a, commands: [x]}]\n", "s.yml:2: key 'name' is given twice", false,
            "duplicate top-level key");
        bad("name: [a]\nflow: [{name: a, commands: [x]}]\n", "s.yml:1: name: expected a string, not a list", false,
            "name of the wrong type");
        bad("name: \"\"\nflow: [{name: a, commands: [x]}]\n", "s.yml:1: name: must not be empty", false,
            "empty name");
        bad("name: n\nflow:\n  - commands: [x]\n", "s.yml:3: flow[0]: the step has no name", false,
            "a step without a name");
        bad("name: n\nflow:\n  - name: a\n", "s.yml:3: flow[0]: step 'a' has no commands", false,
            "a step without commands");
        bad("name: n\nflow:\n  - name: a\n    commands: []\n",
            "s.yml:4: flow[0].commands: step 'a' has an empty list of commands", false, "empty commands");
        bad("name: n\nflow:\n  - name: a\n    commands: make\n",
            "s.yml:4: flow[0].commands: expected a list of commands", true, "commands as a string");
        bad("name: n\nflow:\n  - name: a\n    commands: [\"\"]\n", "s.yml:4: flow[0].commands[0]: must not be empty",
            false, "an empty command");
        bad("name: n\nflow:\n  - name: a\n    commands: [{x: y}]\n",
            "s.yml:4: flow[0].commands[0]: expected a string, not a mapping", false, "a command that is a mapping");
        bad("name: n\nflow:\n  - name: a\n    commands: [\"a\\0b\"]\n", "flow[0].commands[0]: contains a NUL byte", true,
            "a NUL byte in a command");
        bad("name: n\nflow:\n  - name: a\n    commands: [x]\n    timeout_s: 0\n",
            "s.yml:5: flow[0].timeout_s: '0' is out of range (0 < t <= 604800)", false, "zero timeout");
        bad("name: n\nflow:\n  - name: a\n    commands: [x]\n    timeout_s: 1e9\n",
            "s.yml:5: flow[0].timeout_s: '1e9' is out of range", true, "absurd timeout");
        bad("name: n\nflow:\n  - name: a\n    commands: [x]\n    timeout_s: soon\n",
            "s.yml:5: flow[0].timeout_s: expected a number of seconds, got 'soon'", false, "timeout not a number");
        bad("name: n\nflow:\n  - name: a\n    commands: [x]\n    timeout_s: .nan\n",
            "flow[0].timeout_s: expected a number of seconds", true, "NaN timeout");
        bad("name: n\nflow:\n  - name: a\n    commands: [x]\n    timeout_s: [3]\n",
            "s.yml:5: flow[0].timeout_s: expected a number of seconds, not a list", false, "timeout as a list");
        bad("name: n\nflow:\n  - name: \"[BASELINE]\"\n    commands: [x]\n", "flow[0].name: names starting with '[' are reserved",
            true, "reserved step name");
        bad("name: n\nflow:\n  - name: a\n    name: b\n    commands: [x]\n", "s.yml:4: flow[0]: key 'name' is given twice",
            false, "duplicate key in a step");
        bad("name: n\nflow:\n  - just a string\n", "s.yml:3: flow[0]: expected a mapping", true, "a step that is a string");
        bad("name: n\nenvironment: [A]\nflow: [{name: a, commands: [x]}]\n",
            "s.yml:2: environment: expected a mapping of NAME: value, not a list", false, "environment as a list");
        bad("name: n\nenvironment: {1X: y}\nflow: [{name: a, commands: [x]}]\n",
            "s.yml:2: environment: '1X' is not a valid variable name", true, "bad variable name");
        bad("name: n\nenvironment: {A: 1, A: 2}\nflow: [{name: a, commands: [x]}]\n",
            "s.yml:2: environment: variable 'A' is given twice", false, "duplicate variable");
        bad("name: n\nenvironment: {A: [1]}\nflow: [{name: a, commands: [x]}]\n",
            "s.yml:2: environment.A: expected a single value, not a list", false, "variable of the wrong type");
        bad("name: n\nenvironment:\n  A:\nflow: [{name: a, commands: [x]}]\n", "s.yml:3: environment.A: has no value",
            true, "variable without a value");
        bad("name: n\nsetup: echo\nflow: [{name: a, commands: [x]}]\n", "s.yml:2: setup: expected a list of commands",
            true, "setup as a string");
        bad("name: n\nflow: [{name: a, commands: [x]}]\n---\nname: m\n",
            "s.yml:4: a second YAML document: a file holds one scenario", false, "two documents");

        char *big = malloc(JL_SCENARIO_MAX_FILE_BYTES + 2);
        if (big) {
                memset(big, '#', JL_SCENARIO_MAX_FILE_BYTES + 1);
                big[JL_SCENARIO_MAX_FILE_BYTES + 1] = '\0';
                is_int(jl_scenario_load_string("big.yml", big, strlen(big), &s, err, sizeof(err)), -EFBIG,
                       "a file above the size bound: -EFBIG");
                free(big);
        }
}

static jl_cpu_info *cpu_fixture(const char *gov, uint64_t min_khz, uint64_t max_khz, jl_tristate boost,
                                const char *smt, jl_tristate smt_active, bool deep_disabled)
{
        jl_cpu_info *i = calloc(1, sizeof(*i));
        i->n_cpus = 4;
        for (int c = 0; c < 4; c++) {
                i->cpus[c] = (jl_cpu){.cpu = c, .min_khz = min_khz, .max_khz = max_khz};
                snprintf(i->cpus[c].governor, sizeof(i->cpus[c].governor), "%s", gov);
        }
        snprintf(i->governor, sizeof(i->governor), "%s", gov);
        i->governors_agree = JL_TRI_YES;
        snprintf(i->driver, sizeof(i->driver), "acpi-cpufreq");
        i->boost = boost;
        i->boost_source = "cpufreq/boost";
        snprintf(i->smt_control, sizeof(i->smt_control), "%s", smt);
        i->smt_active = smt_active;
        i->idle_known = true;
        i->n_idle_states = 3;
        const char *names[] = {"POLL", "C1", "C6"};
        for (int k = 0; k < 3; k++) {
                snprintf(i->idle[k].name, sizeof(i->idle[k].name), "%s", names[k]);
                i->idle[k].disabled = k > 0 && deep_disabled ? JL_TRI_YES : JL_TRI_NO;
        }
        return i;
}

static const jl_syscheck *find(const jl_syschecks *c, const char *name)
{
        for (size_t i = 0; i < c->n; i++)
                if (strcmp(c->items[i].name, name) == 0)
                        return &c->items[i];
        return NULL;
}

static void test_syscheck(void)
{
        /* a benchmarking machine set up as the seed says */
        jl_cpu_info *i = cpu_fixture("userspace", 2100000, 2100000, JL_TRI_NO, "off", JL_TRI_NO, true);
        jl_syschecks c = {0};
        jl_syscheck_evaluate_cpu(i, JL_PROFILE_BENCHMARKING, JL_CHECK_FAIL, &c);
        is_int(c.n, 5, "five CPU checks");
        ok(!jl_syschecks_first_failure(&c), "benchmarking machine: no failure");
        for (size_t k = 0; k < c.n; k++)
                is_str(jl_check_status_name(c.items[k].status), "ok", "benchmarking: %s ok (%s)", c.items[k].name,
                       c.items[k].observed);
        is_str(find(&c, "governor")->observed, "userspace (min == max == 2100 MHz)", "governor observed");
        /* the same machine against the profiling profile: every setting is a breach */
        c = (jl_syschecks){0};
        jl_syscheck_evaluate_cpu(i, JL_PROFILE_PROFILING, JL_CHECK_WARN, &c);
        is_int(find(&c, "governor")->status, JL_CHECK_WARN, "profiling: fixed governor warns");
        is_int(find(&c, "turbo")->status, JL_CHECK_WARN, "profiling: turbo off warns");
        is_int(find(&c, "smt")->status, JL_CHECK_WARN, "profiling: SMT off warns");
        is_int(find(&c, "c-states")->status, JL_CHECK_WARN, "profiling: no deep C-states warns");
        ok(!jl_syschecks_first_failure(&c), "warn mode: no failure");
        free(i);

        /* a user's machine */
        i = cpu_fixture("schedutil", 800000, 3000000, JL_TRI_YES, "on", JL_TRI_YES, false);
        c = (jl_syschecks){0};
        jl_syscheck_evaluate_cpu(i, JL_PROFILE_PROFILING, JL_CHECK_FAIL, &c);
        ok(!jl_syschecks_first_failure(&c), "profiling machine: no failure");
        c = (jl_syschecks){0};
        jl_syscheck_evaluate_cpu(i, JL_PROFILE_BENCHMARKING, JL_CHECK_FAIL, &c);
        is_str(jl_syschecks_first_failure(&c)->name, "governor", "benchmarking, fail mode: the governor fails first");
        is_int(find(&c, "turbo")->status, JL_CHECK_FAIL, "turbo on fails");
        is_str(find(&c, "c-states")->observed, "enabled: POLL C1 C6", "C-states observed");
        free(i);

        /* performance with min < max is not fixed; with min == max it is */
        i = cpu_fixture("performance", 800000, 3000000, JL_TRI_NO, "notsupported", JL_TRI_NO, true);
        c = (jl_syschecks){0};
        jl_syscheck_evaluate_cpu(i, JL_PROFILE_BENCHMARKING, JL_CHECK_FAIL, &c);
        is_int(find(&c, "governor")->status, JL_CHECK_FAIL, "performance, min < max: not fixed");
        is_int(find(&c, "smt")->status, JL_CHECK_OK, "SMT not supported: ok");
        for (int k = 0; k < 4; k++)
                i->cpus[k].min_khz = i->cpus[k].max_khz;
        c = (jl_syschecks){0};
        jl_syscheck_evaluate_cpu(i, JL_PROFILE_BENCHMARKING, JL_CHECK_FAIL, &c);
        is_int(find(&c, "governor")->status, JL_CHECK_OK, "performance, min == max: fixed");
        /* governors that differ between CPUs */
        snprintf(i->cpus[2].governor, sizeof(i->cpus[2].governor), "powersave");
        i->governors_agree = JL_TRI_NO;
        c = (jl_syschecks){0};
        jl_syscheck_evaluate_cpu(i, JL_PROFILE_BENCHMARKING, JL_CHECK_FAIL, &c);
        is_int(find(&c, "governor")->status, JL_CHECK_FAIL, "governors disagree: breach");
        free(i);

        /* nothing known (a VM): warnings, never failures */
        i = calloc(1, sizeof(*i));
        i->n_cpus = 1;
        i->boost = JL_TRI_UNKNOWN;
        i->smt_active = JL_TRI_UNKNOWN;
        c = (jl_syschecks){0};
        jl_syscheck_evaluate_cpu(i, JL_PROFILE_BENCHMARKING, JL_CHECK_FAIL, &c);
        ok(!jl_syschecks_first_failure(&c), "unknown state: no failure");
        is_int(find(&c, "turbo")->status, JL_CHECK_WARN, "unknown turbo warns");
        is_int(find(&c, "c-states")->status, JL_CHECK_WARN, "no cpuidle warns");
        free(i);

        /* over the run */
        c = (jl_syschecks){0};
        jl_syscheck_add_run(&c, JL_CHECK_FAIL, 0.0001, 0);
        ok(c.n == 2 && !jl_syschecks_first_failure(&c), "no steal, no suspend: ok");
        c = (jl_syschecks){0};
        jl_syscheck_add_run(&c, JL_CHECK_FAIL, 0.03, 12.5);
        is_str(find(&c, "steal")->observed, "3.00%", "steal observed");
        is_int(find(&c, "steal")->status, JL_CHECK_FAIL, "3%% steal fails");
        is_str(find(&c, "suspend")->observed, "suspended for 12.5 s during the run", "suspend observed");
        c = (jl_syschecks){0};
        jl_syscheck_add_run(&c, JL_CHECK_FAIL, 0.0 / 0.0, 0);
        is_int(find(&c, "steal")->status, JL_CHECK_WARN, "unknown steal warns");

        jl_machine_profile p;
        jl_check_status b;
        ok(jl_machine_profile_from_string("profiling", &p) == 0 && p == JL_PROFILE_PROFILING, "profile parse");
        is_int(jl_machine_profile_from_string("gaming", &p), -EINVAL, "unknown profile");
        ok(jl_check_breach_from_string("fail", &b) == 0 && b == JL_CHECK_FAIL, "breach parse");
        is_int(jl_check_breach_from_string("maybe", &b), -EINVAL, "unknown breach mode");
}

int main(int argc, char **argv)
{
        const char *dir = argc > 1 ? argv[1] : "tests/fixtures/scenarios";
        test_good(dir);
        test_bad(dir);
        test_syscheck();
        return tap_done();
}
