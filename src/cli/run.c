/* run.c - `joule run --scenario FILE`: run a measurement-cluster scenario locally (setup, a baseline idle
 * phase, each flow step as a measured phase, teardown, system checks) and print the phases, or with
 * --json the object that `joule jobs show ID --json` prints for a job's run. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "json.h"
#include "log.h"
#include "parse.h"
#include "run.h"
#include "scenario.h"
#include "timeutil.h"

static int usage(FILE *f)
{
        fputs("Usage: joule run --scenario FILE [--json] [--baseline S] [--timeline FILE.csv]\n\n"
              "Runs a scenario under measurement on this machine: setup (not measured), a baseline idle\n"
              "phase, each step of its flow as a phase, teardown (not measured), with the system checks of\n"
              "machine.profile. See docs/scenarios.md.\n\n"
              "  -s, --scenario FILE    the scenario (YAML)\n"
              "  -j, --json             print one JSON object on stdout (commands' output goes to stderr)\n"
              "  -b, --baseline S       length of the baseline idle phase (default 5 s; 0: none)\n"
              "  -t, --timeline FILE    write every sample as CSV: time_s,phase,metric,unit,value\n"
              "  -p, --providers LIST   only these providers (e.g. rapl,hwmon,proc); see `joule info`\n",
              f);
        return f == stdout ? 0 : 2;
}

static void print_json(const jl_scenario *sc, const jl_run_result *r)
{
        json_writer w;
        json_init(&w, stdout);
        json_object_begin(&w);
        json_key(&w, "name");
        json_string(&w, sc->name);
        json_key(&w, "state");
        json_string(&w, jl_run_state_name(r->state));
        json_key(&w, "message");
        json_string(&w, r->message);
        json_key(&w, "failed_step");
        if (r->failed_step[0])
                json_string(&w, r->failed_step);
        else
                json_null(&w);
        json_key(&w, "run");
        jl_run_result_json(r, &w);
        json_object_end(&w);
        fputc('\n', stdout);
        fflush(stdout);
}

static void print_summary(const jl_scenario *sc, const jl_run_result *r)
{
        FILE *f = stdout;
        fprintf(f, "\n Scenario '%s': %s\n", sc->name, jl_run_state_name(r->state));
        if (r->message[0])
                fprintf(f, " %s\n", r->message);
        fprintf(f, "\n %-24s %10s %12s %10s %10s %9s %8s\n", "phase", "duration", "energy", "avg power",
                "max power", "max temp", "CPU");
        for (size_t i = 0; i < r->n_phases; i++) {
                const jl_run_phase *p = &r->phases[i];
                char temp[32] = "-", util[32] = "-";
                if (!isnan(p->temp_max_c))
                        snprintf(temp, sizeof(temp), "%.1f °C", p->temp_max_c);
                if (!isnan(p->cpu_utilization))
                        snprintf(util, sizeof(util), "%.1f %%", p->cpu_utilization * 100);
                fprintf(f, " %-24.24s %8.3f s %10.3f J %8.2f W %8.2f W %10s %8s%s%s\n", p->name, p->duration_s,
                        p->energy_j, p->power_avg_w, p->power_max_w, temp, util,
                        p->energy_source == JL_TOTAL_ESTIMATE ? "  (estimated)" : "",
                        p->complete ? "" : "  (cut short)");
        }
        if (r->n_phases)
                fprintf(f, "\n energy: %s\n",
                        r->phases[0].energy_source == JL_TOTAL_DOMAINS  ? "packages + DRAM + GPUs"
                        : r->phases[0].energy_source == JL_TOTAL_NODE   ? "whole-node sensor"
                        : r->phases[0].energy_source == JL_TOTAL_ESTIMATE ? "ESTIMATED from utilization (no sensor)"
                                                                         : "no energy sensor (see `joule info`)");
        fprintf(f, "\n System checks:\n");
        for (size_t i = 0; i < r->checks.n; i++) {
                const jl_syscheck *c = &r->checks.items[i];
                fprintf(f, "  %-4s  %-9s %s (expected: %s)\n", jl_check_status_name(c->status), c->name, c->observed,
                        c->expected);
        }
        if (r->suspended_s > 0)
                fprintf(f, " warning: the machine was suspended for %.1f s during the run\n", r->suspended_s);
        for (size_t i = 0; i < r->n_notes; i++)
                fprintf(f, " note: %s\n", r->notes[i]);
        fputc('\n', f);
        fflush(f);
}

static int write_timeline(const char *path, const jl_run_result *r)
{
        FILE *f = fopen(path, "we");
        if (!f)
                return -errno;
        fputs("time_s,phase,metric,unit,value\n", f);
        for (size_t i = 0; i < r->n_points; i++) {
                const jl_run_point *p = &r->points[i];
                const jl_run_metric *m = &r->metrics[p->metric];
                fprintf(f, "%.6f,", (double)(p->t_ns - r->start_ns) / 1e9);
                json_write_escaped(f, p->phase < r->n_phases ? r->phases[p->phase].name : "");
                fputc(',', f);
                json_write_escaped(f, m->name);
                fprintf(f, ",%s,%.9g\n", m->unit, p->value);
        }
        int r2 = ferror(f) ? -EIO : 0;
        if (fclose(f) != 0 && r2 == 0)
                r2 = -errno;
        return r2;
}

int verb_run(cli_context *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
                {"scenario", required_argument, NULL, 's'},
                {"json", no_argument, NULL, 'j'},
                {"baseline", required_argument, NULL, 'b'},
                {"timeline", required_argument, NULL, 't'},
                {"providers", required_argument, NULL, 'p'},
                {"help", no_argument, NULL, 'h'},
                {0},
        };
        const char *scenario_path = NULL, *timeline_path = NULL;
        bool json = false;
        double baseline_s = NAN;
        char **providers = NULL;
        int c, r;
        while ((c = getopt_long(argc, argv, "s:jb:t:p:h", opts, NULL)) >= 0) {
                switch (c) {
                case 's':
                        scenario_path = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'b': {
                        uint64_t ns;
                        if (parse_duration_ns(optarg, NSEC_PER_SEC, &ns) < 0 || ns > 3600 * NSEC_PER_SEC) {
                                cli_strv_free(providers);
                                return log_error(EINVAL, "--baseline: '%s' is not a duration up to 1 h", optarg), 2;
                        }
                        baseline_s = (double)ns / 1e9;
                        break;
                }
                case 't':
                        timeline_path = optarg;
                        break;
                case 'p':
                        cli_strv_free(providers);
                        providers = cli_split_list(optarg);
                        if (!providers)
                                return log_error(ENOMEM, "out of memory"), 1;
                        break;
                case 'h':
                        cli_strv_free(providers);
                        return usage(stdout);
                default:
                        cli_strv_free(providers);
                        return usage(stderr);
                }
        }
        if (!scenario_path || optind < argc) {
                cli_strv_free(providers);
                log_error(EINVAL, "%s", !scenario_path ? "--scenario FILE is required" : "unexpected arguments");
                return usage(stderr);
        }

        char err[1024];
        jl_scenario *sc = NULL;
        r = jl_scenario_load(scenario_path, &sc, err, sizeof(err));
        if (r < 0) {
                log_error(r, "%s", err[0] ? err : strerror(-r));
                if (json) {
                        /* the same shape as a failed run, for scripts */
                        json_writer w;
                        json_init(&w, stdout);
                        json_object_begin(&w);
                        json_key(&w, "name");
                        json_null(&w);
                        json_key(&w, "state");
                        json_string(&w, "FAILED");
                        json_key(&w, "message");
                        json_string(&w, err[0] ? err : strerror(-r));
                        json_key(&w, "run");
                        json_null(&w);
                        json_object_end(&w);
                        fputc('\n', stdout);
                }
                cli_strv_free(providers);
                return 1;
        }

        jl_run_opts o;
        if (jl_run_opts_from_config(&ctx->config, &o) < 0) {
                log_error(EINVAL, "configuration: bad machine.profile or runner.system_checks");
                jl_scenario_free(sc);
                cli_strv_free(providers);
                return 2;
        }
        if (!isnan(baseline_s))
                o.baseline_s = baseline_s;
        o.only = (const char *const *)providers;
        o.output_fd = json ? 2 : -1;
        o.timeline = timeline_path != NULL;

        jl_run_result *res = NULL;
        r = jl_run_scenario(sc, &o, &res);
        if (r < 0) {
                log_error(r, "cannot run the scenario: %s", strerror(-r));
                jl_scenario_free(sc);
                cli_strv_free(providers);
                return 1;
        }
        if (json)
                print_json(sc, res);
        else
                print_summary(sc, res);
        int ret = res->state == JL_RUN_FINISHED ? 0 : res->signal ? 128 + res->signal : 1;
        if (res->state == JL_RUN_FAILED && !json)
                log_error(EIO, "scenario '%s' failed: %s", sc->name, res->message);
        if (timeline_path && (r = write_timeline(timeline_path, res)) < 0) {
                log_error(r, "--timeline %s: %s", timeline_path, strerror(-r));
                ret = ret ? ret : 1;
        }
        jl_run_result_free(res);
        jl_scenario_free(sc);
        cli_strv_free(providers);
        return ret;
}
