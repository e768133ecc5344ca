/* joule.c - the `joule` command: global options, configuration, and dispatch to the verbs. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config-joule.h"
#include "log.h"
#include "provider.h"

static const struct {
        const char *name;
        int (*fn)(cli_context *, int, char **);
        const char *help;
} verbs[] = {
        {"measure", verb_measure, "run a command and report the energy it took"},
        {"info", verb_info, "list every provider and domain, whether it works, and why not"},
        {"db", verb_db, "create the database, apply migrations, check the schema"},
        {"job", verb_job, "mark a job step's begin or end on this node (to jouled)"},
        {"control", verb_control, "query or command a node's jouled over its control port (MUNGE)"},
        {"acct", verb_acct, "energy, time and power per job step from the database (-l, -r: the runtime's)"},
        {"events", verb_events, "the runtime's policy decisions from the database"},
        {"launch", verb_launch, "run a command (e.g. mpirun …) managed by joule's runtime, as a job step"},
        {"learn", verb_learn, "the learning run (admin, idle node): the node's power curve and counter coefficients"},
        {"report", verb_report, "energy per node, partition or cluster over a time range"},
        {"run", verb_run, "run a scenario under measurement here: baseline, phases, system checks"},
        {"calibrate", verb_calibrate, "idle baseline, sampling overhead, load and cool-down; recommend settings"},
        {"machines", verb_machines, "add or list the measurement machines that take benchmark jobs"},
        {"submit", verb_submit, "queue a benchmark job (a scenario or a git repository) for one machine"},
        {"jobs", verb_jobs, "list, show or cancel benchmark jobs; send the queued e-mails"},
        {"status", verb_status, "every node the database heard from, its last record's age, its health"},
};

static void usage(FILE *f)
{
        fprintf(f, "Usage: joule [-c CONFIG] VERB [OPTIONS...]\n\n"
                   "joule measures and manages the energy of computers.\n\nVerbs:\n");
        for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
                fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].help);
        fprintf(f, "\nOptions:\n"
                   "  -c, --config FILE  configuration file (default $JOULE_CONFIG or " JOULE_CONFIG_DEFAULT_PATH
                   ")\n"
                   "  -h, --help         this help\n"
                   "      --version      the version\n\n"
                   "`joule VERB --help` describes a verb.\n");
}

void cli_provider_config(const cli_context *ctx, jl_provider_config *ret)
{
        jl_provider_config_default(ret);
        ret->estimate_idle_w = ctx->config.estimate.idle_w;
        ret->estimate_max_w = ctx->config.estimate.max_w;
        ret->hwmon_sensors = (const char *const *)ctx->config.measurement.hwmon_sensors;
}

char **cli_split_list(const char *s)
{
        size_t n = 1;
        for (const char *p = s; *p; p++)
                n += *p == ',';
        char **v = calloc(n + 1, sizeof(char *));
        if (!v)
                return NULL;
        size_t i = 0;
        for (const char *p = s;;) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t)(comma - p) : strlen(p);
                if (len > 0 && !(v[i++] = strndup(p, len))) {
                        cli_strv_free(v);
                        return NULL;
                }
                if (!comma)
                        break;
                p = comma + 1;
        }
        return v;
}

void cli_strv_free(char **v)
{
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                {"config", required_argument, NULL, 'c'},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, 'V'},
                {0},
        };
        cli_context ctx = {0};
        int c;

        log_setup("joule", LOG_LEVEL_NOTICE);
        /* '+': stop at the verb; its options are its own. */
        while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        ctx.config_path = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                case 'V':
                        printf("joule %s\n", JOULE_VERSION);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind >= argc) {
                usage(stderr);
                return 2;
        }
        const char *verb = argv[optind];
        for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
                if (strcmp(verbs[i].name, verb) != 0)
                        continue;
                char err[512] = "";
                int r = joule_config_init(&ctx.config);
                if (r >= 0)
                        r = joule_config_load(&ctx.config, ctx.config_path, err, sizeof(err));
                if (r < 0) {
                        log_error(r, "configuration: %s", err[0] ? err : strerror(-r));
                        joule_config_free(&ctx.config);
                        return 2;
                }
                int vind = optind;
                optind = 0; /* reset getopt for the verb, whose argv[0] is the verb's name */
                int ret = verbs[i].fn(&ctx, argc - vind, argv + vind);
                joule_config_free(&ctx.config);
                return ret;
        }
        log_error(EINVAL, "unknown verb '%s' (see joule --help)", verb);
        return 2;
}
