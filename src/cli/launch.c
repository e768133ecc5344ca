/* launch.c - `joule launch [--policy P] [--policy-th X] [--cpufreq KHZ] [--tag T] [--verbose N] [--job ID]
 * -- CMD ARGS…`: run CMD (a program, or `mpirun …`) managed by joule's runtime: a job step begun at jouled
 * (a new job id unless --job; printed on stderr), tied to CMD's process and to launch's own (jouled ends the
 * step when either ends, also by kill -9), the loader preloaded and the JOULE_* environment set; then the
 * step ends and launch exits with CMD's exit code. Bad option values: one line each, and CMD runs with the
 * defaults; jouled not reachable: one line, and CMD runs unmanaged. As root the step is declared with the
 * CPUs launch may run on (its affinity), so the runtime may set their frequencies; a user's step is for
 * accounting only. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "log.h"
#include "macro.h"
#include "parse.h"
#include "timeutil.h"

#ifndef JOULE_LOADER_PATH
#define JOULE_LOADER_PATH "/usr/local/lib/libjoule-loader.so"
#endif

#define LAUNCH_TIMEOUT_MS 5000

static pid_t child_pid = -1;

static void forward(int sig)
{
        if (child_pid > 0)
                kill(child_pid, sig);
}

static int usage(FILE *f)
{
        fputs("Usage: joule launch [--policy P] [--policy-th X] [--cpufreq KHZ] [--tag T] [--verbose N]\n"
              "                    [--job ID] -- CMD ARGS…\n\n"
              "Runs CMD (e.g. mpirun …) with joule's runtime: begins a job step at jouled (a new job id\n"
              "unless --job; printed on stderr), preloads the loader, sets the JOULE_* environment, and\n"
              "exits with CMD's exit code once the step has ended. Run as root, the step is declared with\n"
              "the CPUs launch may run on, and the runtime may set their frequencies; run as a user, the\n"
              "step is for accounting only.\n\n"
              "  --policy P       monitoring, min_energy or min_time (JOULE_POLICY)\n"
              "  --policy-th X    the policy's threshold, 0..1 (JOULE_POLICY_TH)\n"
              "  --cpufreq KHZ    the default CPU frequency (JOULE_CPUFREQ)\n"
              "  --tag T          a tag recorded with the application (JOULE_TAG)\n"
              "  --verbose N      the runtime's verbosity, 0..4 (JOULE_VERBOSE)\n"
              "  --report PATH    each node's records also to PATH.<node>.csv (JOULE_REPORT)\n"
              "  --job ID         the job id to account under (default: a new one)\n",
              f);
        return f == stdout ? 0 : 2;
}

static bool printable_word(const char *s, size_t max)
{
        if (!*s || strlen(s) >= max)
                return false;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
                if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '\\' || *p == '\'' || *p == ',')
                        return false;
        return true;
}

static bool is_launcher(const char *name)
{
        static const char *const launchers[] = {"mpirun", "mpiexec", "orterun", "srun", "prun"};
        for (size_t i = 0; i < ARRAY_SIZE(launchers); i++) {
                size_t n = strlen(launchers[i]);
                if (strncmp(name, launchers[i], n) == 0 && (name[n] == '\0' || name[n] == '.'))
                        return true;
        }
        return false;
}

static bool executable_on_path(const char *name)
{
        if (strchr(name, '/'))
                return access(name, X_OK) == 0;
        const char *path = getenv("PATH");
        if (!path)
                return false;
        _cleanup_free_ char *copy = strdup(path);
        for (char *save = NULL, *dir = copy ? strtok_r(copy, ":", &save) : NULL; dir;
             dir = strtok_r(NULL, ":", &save)) {
                char buf[PATH_MAX];
                if (snprintf(buf, sizeof(buf), "%s/%s", dir, name) < (int)sizeof(buf) &&
                    access(buf, X_OK) == 0)
                        return true;
        }
        return false;
}

/* The application's name: CMD's, or behind a launcher (mpirun -np 2 ./app) the first argument that is an
 * executable program. */
static const char *app_name(char **cmd)
{
        const char *base = strrchr(cmd[0], '/') ? strrchr(cmd[0], '/') + 1 : cmd[0];
        if (!is_launcher(base))
                return base;
        for (size_t i = 1; cmd[i]; i++)
                if (cmd[i][0] != '-' && executable_on_path(cmd[i]))
                        return strrchr(cmd[i], '/') ? strrchr(cmd[i], '/') + 1 : cmd[i];
        return base;
}

static int jouled_request(const char *path, jl_msg_request *req, jl_client_reply *rep, char *why, size_t wl)
{
        *rep = (jl_client_reply){.fd = -1};
        return jl_client_request(path, req, LAUNCH_TIMEOUT_MS, rep, why, wl);
}

/* Begin the step (job, step 0 or the next free step of a given job): 0 and the step id, or a negative
 * errno with words in why. */
static int begin_step(const char *path, const char *job, bool given, int64_t *ret_step, char *why, size_t wl)
{
        jl_msg_request req = {.op = JL_OP_JOB_BEGIN};
        snprintf(req.job_id, sizeof(req.job_id), "%s", job);
        if (geteuid() == 0) {
                cpu_set_t set;
                CPU_ZERO(&set);
                if (sched_getaffinity(0, sizeof(set), &set) == 0)
                        jl_msg_request_add_cpuset(&req, &set);
        }
        for (int64_t step = 0; step < 64; step++) {
                req.step_id = step;
                jl_client_reply rep;
                int r = jouled_request(path, &req, &rep, why, wl);
                if (r == 0)
                        r = rep.err;
                if (r < 0 && rep.message[0])
                        snprintf(why, wl, "%s", rep.message);
                jl_client_reply_free(&rep);
                if (r == -EEXIST && given)
                        continue;
                if (r == 0)
                        *ret_step = step;
                return r;
        }
        snprintf(why, wl, "job %s has 64 steps open on this node", job);
        return -EEXIST;
}

static void watch(const char *path, const char *job, int64_t step, pid_t pid)
{
        jl_msg_request req = {.op = JL_OP_WATCH_PID, .step_id = step, .pid = pid};
        snprintf(req.job_id, sizeof(req.job_id), "%s", job);
        jl_client_reply rep;
        char why[256] = "";
        int r = jouled_request(path, &req, &rep, why, sizeof(why));
        if (r == 0 && rep.err < 0) {
                r = rep.err;
                snprintf(why, sizeof(why), "%s", rep.message);
        }
        jl_client_reply_free(&rep);
        if (r < 0)
                log_warning(r,
                            "launch: jouled will not end job %s step %" PRId64 " when process %d ends: %s",
                            job, step, (int)pid, why[0] ? why : strerror(-r));
}

static void set_env(const char *name, const char *value)
{
        if (value)
                setenv(name, value, 1);
}

int verb_launch(cli_context *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
            {"policy", required_argument, NULL, 'p'},
            {"policy-th", required_argument, NULL, 't'},
            {"cpufreq", required_argument, NULL, 'f'},
            {"tag", required_argument, NULL, 'g'},
            {"verbose", required_argument, NULL, 'v'},
            {"job", required_argument, NULL, 'j'},
            {"report", required_argument, NULL, 'r'},
            {"help", no_argument, NULL, 'h'},
            {0},
        };
        const char *policy = NULL, *th = NULL, *khz = NULL, *tag = NULL, *verbose = NULL, *job = NULL;
        const char *report = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "+h", opts, NULL)) >= 0) {
                switch (c) {
                case 'p':
                        policy = optarg;
                        break;
                case 't':
                        th = optarg;
                        break;
                case 'f':
                        khz = optarg;
                        break;
                case 'g':
                        tag = optarg;
                        break;
                case 'v':
                        verbose = optarg;
                        break;
                case 'j':
                        job = optarg;
                        break;
                case 'r':
                        report = optarg;
                        break;
                case 'h':
                        return usage(stdout);
                default:
                        return usage(stderr);
                }
        }
        if (optind >= argc) {
                log_error(EINVAL, "launch: no command given (joule launch [OPTIONS] -- CMD ARGS…)");
                return usage(stderr);
        }
        char **cmd = argv + optind;

        /* bad values: one line each, and the command runs with the defaults */
        if (policy && strcmp(policy, "monitoring") != 0 && strcmp(policy, "min_energy") != 0 &&
            strcmp(policy, "min_time") != 0) {
                log_warning(
                    0,
                    "launch: --policy '%s' is not monitoring, min_energy or min_time; the default policy "
                    "is used",
                    policy);
                policy = NULL;
        }
        double v;
        if (th && (parse_double(th, &v) < 0 || !(v >= 0 && v <= 1))) {
                log_warning(
                    0, "launch: --policy-th '%s' is not a number from 0 to 1; the policy's default is used",
                    th);
                th = NULL;
        }
        uint64_t u;
        if (khz && (parse_u64(khz, &u) < 0 || u == 0 || u > 100000000)) {
                log_warning(0, "launch: --cpufreq '%s' is not a frequency in kHz; the default is used", khz);
                khz = NULL;
        }
        if (tag && !printable_word(tag, 64)) {
                log_warning(
                    0, "launch: --tag '%s' is empty, longer than 63 bytes or has spaces or quotes; no tag",
                    tag);
                tag = NULL;
        }
        if (verbose && (parse_u64(verbose, &u) < 0 || u > 4)) {
                log_warning(0, "launch: --verbose '%s' is not a level from 0 to 4; 0 is used", verbose);
                verbose = NULL;
        }
        if (job && jl_msg_job_id_parse(job, NULL) < 0) {
                log_warning(0, "launch: --job '%s' is not a job id (a decimal number); a new job id is used",
                            job);
                job = NULL;
        }
        char job_buf[32];
        bool given = job != NULL;
        if (!job) {
                /* a new job id: the time in µs, above any id Slurm hands out (< 2^26 by default) */
                snprintf(job_buf, sizeof(job_buf), "%" PRIu64, now_ns(CLOCK_REALTIME) / 1000);
                job = job_buf;
        }

        const char *path = jl_client_socket_path(ctx->config.node.socket);
        char why[256] = "";
        int64_t step = 0;
        int r = begin_step(path, job, given, &step, why, sizeof(why));
        bool managed = r == 0;
        if (!managed)
                log_warning(r, "launch: jouled at %s did not begin a job step (%s); %s runs unmanaged", path,
                            why[0] ? why : strerror(-r), cmd[0]);
        else
                fprintf(stderr, "joule launch: job %s step %" PRId64 "\n", job, step);

        int gate[2] = {-1, -1}; /* the child waits until jouled watches it */
        if (pipe2(gate, O_CLOEXEC) < 0)
                gate[0] = gate[1] = -1;
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
                log_error(errno, "launch: fork: %m");
                return 127;
        }
        if (pid == 0) {
                if (gate[1] >= 0) {
                        close(gate[1]);
                        char b;
                        while (read(gate[0], &b, 1) < 0 && errno == EINTR)
                                ;
                        close(gate[0]);
                }
                if (managed) {
                        const char *loader = getenv("JOULE_LOADER");
                        if (!loader || !*loader)
                                loader = JOULE_LOADER_PATH;
                        const char *old = getenv("LD_PRELOAD");
                        char *pre = NULL;
                        if (asprintf(&pre, "%s%s%s", loader, old && *old ? ":" : "",
                                     old && *old ? old : "") >= 0)
                                setenv("LD_PRELOAD", pre, 1);
                        char sstep[32];
                        snprintf(sstep, sizeof(sstep), "%" PRId64, step);
                        set_env("JOULE_JOB_ID", job);
                        set_env("JOULE_STEP_ID", sstep);
                        set_env("JOULE_SOCKET", path);
                        set_env("JOULE_POLICY", policy);
                        set_env("JOULE_POLICY_TH", th);
                        set_env("JOULE_CPUFREQ", khz);
                        set_env("JOULE_TAG", tag);
                        set_env("JOULE_VERBOSE", verbose);
                        set_env("JOULE_REPORT", report);
                        /* the node's learnt coefficients (joule learn) */
                        if (!getenv("JOULE_COEFFS_DIR"))
                                set_env("JOULE_COEFFS_DIR", ctx->config.runtime.coefficients_dir);
                        if (!getenv("JOULE_APP_NAME"))
                                set_env("JOULE_APP_NAME", app_name(cmd));
                }
                execvp(cmd[0], cmd);
                fprintf(stderr, "joule launch: %s: %s\n", cmd[0], strerror(errno));
                _exit(errno == ENOENT ? 127 : 126);
        }
        child_pid = pid;
        struct sigaction sa = {.sa_handler = forward};
        sigemptyset(&sa.sa_mask);
        static const int forwarded[] = {SIGTERM, SIGHUP, SIGUSR1, SIGUSR2};
        for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
                sigaction(forwarded[i], &sa, NULL);
        /* ^C and ^\ reach the whole process group: the command decides, launch waits for it */
        signal(SIGINT, SIG_IGN);
        signal(SIGQUIT, SIG_IGN);
        if (managed) {
                watch(path, job, step, pid);
                watch(path, job, step, getpid());
        }
        if (gate[0] >= 0) {
                close(gate[0]);
                close(gate[1]); /* the child goes */
        }
        int status = 0;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        log_error(errno, "launch: waitpid: %m");
                        status = 127 << 8;
                        break;
                }
        if (managed) {
                /* jouled may have ended it already (the command's end): then it is not open any more */
                jl_msg_request req = {.op = JL_OP_JOB_END, .step_id = step};
                snprintf(req.job_id, sizeof(req.job_id), "%s", job);
                jl_client_reply rep;
                r = jouled_request(path, &req, &rep, why, sizeof(why));
                if (r == 0 && rep.err < 0 && rep.err != -ENOENT)
                        log_warning(rep.err, "launch: ending job %s step %" PRId64 ": %s", job, step,
                                    rep.message);
                else if (r < 0)
                        log_warning(r, "launch: ending job %s step %" PRId64 ": %s", job, step, why);
                jl_client_reply_free(&rep);
        }
        if (WIFSIGNALED(status))
                return 128 + WTERMSIG(status);
        return WEXITSTATUS(status);
}
