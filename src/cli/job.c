/* job.c - `joule job begin|end --job ID [--step N] [--user U] [--cpus LIST]`: mark a job step on this node
 * by a request to the local jouled (JL_OP_JOB_BEGIN / JL_OP_JOB_END over node.socket or $JOULE_SOCKET). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "log.h"
#include "macro.h"
#include "parse.h"

static int usage(FILE *f)
{
        fputs("Usage: joule job begin|end --job ID [--step N] [--user U] [--cpus LIST]\n\n"
              "Tell this node's jouled that a job step begins or ends here; jouled accounts its energy,\n"
              "time and average power and sends them to the database.\n\n"
              "  -j, --job ID      the job id (a number, as Slurm's; default $SLURM_JOB_ID)\n"
              "  -s, --step N      the step id (default $SLURM_STEP_ID, else 0)\n"
              "  -u, --user U      the job's user (default: the caller)\n"
              "      --cpus LIST   begin: the step's CPUs, e.g. 0-3,8 (default: every CPU)\n"
              "      --json        print jouled's account of the step as one JSON object ({event, node,\n"
              "                    job_id, step_id, user, start[, end, time_s, energy_j, avg_power_w,\n"
              "                    complete]})\n",
              f);
        return f == stdout ? 0 : 2;
}

/* Put CPU list s into the request's mask (CPU i: bit i % 8 of byte i / 8). */
int cli_cpus_to_mask(const char *s, jl_msg_request *req)
{
        uint64_t mask[JL_MSG_CPUMASK_BYTES / 8] = {0};
        int n = parse_cpu_list(s, mask, JL_MSG_CPUMASK_BYTES * 8);
        if (n <= 0)
                return n < 0 ? n : -EINVAL;
        req->cpumask_len = 0;
        jl_msg_request_add_cpumask(req, mask, JL_MSG_CPUMASK_BYTES * 8);
        return 0;
}

int verb_job(cli_context *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
            {"job", required_argument, NULL, 'j'},
            {"step", required_argument, NULL, 's'},
            {"user", required_argument, NULL, 'u'},
            {"cpus", required_argument, NULL, 'C'},
            {"json", no_argument, NULL, 'J'},
            {"help", no_argument, NULL, 'h'},
            {0},
        };
        const char *job = getenv("SLURM_JOB_ID"), *step = getenv("SLURM_STEP_ID"), *user = NULL,
                   *cpus = NULL;
        bool json = false;
        int c;
        while ((c = getopt_long(argc, argv, "j:s:u:h", opts, NULL)) >= 0) {
                switch (c) {
                case 'j':
                        job = optarg;
                        break;
                case 's':
                        step = optarg;
                        break;
                case 'u':
                        user = optarg;
                        break;
                case 'C':
                        cpus = optarg;
                        break;
                case 'J':
                        json = true;
                        break;
                case 'h':
                        return usage(stdout);
                default:
                        return usage(stderr);
                }
        }
        if (optind + 1 != argc || (strcmp(argv[optind], "begin") != 0 && strcmp(argv[optind], "end") != 0)) {
                log_error(EINVAL, "job: say 'begin' or 'end'");
                return usage(stderr);
        }
        bool end = strcmp(argv[optind], "end") == 0;
        jl_msg_request req = {.op = end ? JL_OP_JOB_END : JL_OP_JOB_BEGIN, .gpu = -1};
        uint64_t job_id;
        int64_t step_id = 0;
        if (!job || !*job) {
                log_error(EINVAL, "job: --job ID is required (or $SLURM_JOB_ID)");
                return 2;
        }
        if (parse_u64(job, &job_id) < 0 || job_id > INT64_MAX) {
                log_error(EINVAL, "job: the job id '%s' is not a non-negative integer", job);
                return 2;
        }
        if (step && *step && (parse_i64(step, &step_id) < 0 || step_id < 0)) {
                log_error(EINVAL, "job: the step id '%s' is not a non-negative integer", step);
                return 2;
        }
        snprintf(req.job_id, sizeof(req.job_id), "%" PRIu64, job_id);
        req.step_id = step_id;
        if (user) {
                if (!*user || strlen(user) >= sizeof(req.user)) {
                        log_error(EINVAL, "job: the user name '%s' is empty or too long", user);
                        return 2;
                }
                if (!getpwnam(user)) {
                        log_error(ENOENT, "job: unknown user '%s'", user);
                        return 2;
                }
                snprintf(req.user, sizeof(req.user), "%s", user);
        } else {
                struct passwd *pw = getpwuid(getuid());
                if (pw)
                        snprintf(req.user, sizeof(req.user), "%s", pw->pw_name);
                else
                        snprintf(req.user, sizeof(req.user), "%u", (unsigned)getuid());
        }
        if (cpus) {
                if (end) {
                        log_error(EINVAL, "job: --cpus belongs to 'begin'");
                        return 2;
                }
                if (cli_cpus_to_mask(cpus, &req) < 0) {
                        log_error(EINVAL, "job: '%s' is not a CPU list (e.g. 0-3,8) below %d", cpus,
                                  JL_MSG_CPUMASK_BYTES * 8);
                        return 2;
                }
        }

        const char *path = jl_client_socket_path(ctx->config.node.socket);
        jl_client_reply rep = {.fd = -1};
        char why[256] = "";
        int r = jl_client_request(path, &req, 10000, &rep, why, sizeof(why));
        if (r < 0) {
                if (r == -ENOENT || r == -ECONNREFUSED)
                        log_error(r, "job: jouled is not running (%s: %s)", path, strerror(-r));
                else
                        log_error(r, "job: %s: %s%s%s", path, strerror(-r), why[0] ? ": " : "", why);
                return 1;
        }
        if (rep.err < 0) {
                log_error(rep.err, "job: jouled refused to %s job %s step %" PRId64 ": %s",
                          end ? "end" : "begin", req.job_id, req.step_id,
                          rep.message[0] ? rep.message : strerror(-rep.err));
                jl_client_reply_free(&rep);
                return 1;
        }
        if (json) {
                if (rep.text) /* jouled's own account of the step */
                        printf("%s\n", rep.text);
                else
                        printf("{\"job_id\": \"%s\", \"step_id\": %" PRId64 ", \"event\": \"%s\"}\n",
                               req.job_id, req.step_id, end ? "end" : "begin");
        } else if (end) {
                printf("job %s step %" PRId64 " ended: %.3f J in %.3f s", req.job_id, req.step_id,
                       (double)rep.energy_uj / 1e6, (double)rep.time_ms / 1e3);
                if (rep.time_ms > 0)
                        printf(", %.2f W", (double)rep.energy_uj / 1e3 / (double)rep.time_ms);
                printf("%s%s\n", rep.message[0] ? " - " : "", rep.message);
        } else {
                printf("job %s step %" PRId64 " began (user %s)%s%s\n", req.job_id, req.step_id, req.user,
                       rep.message[0] ? " - " : "", rep.message);
        }
        jl_client_reply_free(&rep);
        return 0;
}
