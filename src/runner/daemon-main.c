/* daemon-main.c - `joule-runner`: the service of one measurement machine (one per machine, under systemd,
 * contrib/systemd/joule-runner.service). It loads the configuration, then loops: a pass of the job loop
 * (src/runner/daemon.h), then sleeps runner.sleep_time_after_job after a job, or runner.sleep_time_no_job
 * when there was none (woken at once by `joule submit`'s NOTIFY on PostgreSQL). SIGINT and SIGTERM stop it
 * cleanly (the job in hand is FAILED with the reason, or stored as finished), exit code 0. See
 * docs/cluster.md. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "store.h"

static void log_cb(void *userdata, int level, int err, const char *msg)
{
        (void)userdata;
        log_full(level, err, "%s", msg);
}

static int usage(FILE *f)
{
        fputs("Usage: joule-runner [-c FILE] [-v]\n\n"
              "The job runner of one measurement machine: takes the WAITING jobs of machine.id from the\n"
              "database one at a time, runs each under measurement once the machine is at its base\n"
              "temperature, stores the run, mails the result, runs the cleanup script and the control\n"
              "workload. See docs/cluster.md.\n\n"
              "  -c, --config FILE   the configuration (default: $JOULE_CONFIG, else /etc/joule/joule.yml)\n"
              "  -v, --verbose       log debug messages too\n"
              "  -h, --help          this text\n",
              f);
        return f == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
            {"config", required_argument, NULL, 'c'},
            {"verbose", no_argument, NULL, 'v'},
            {"help", no_argument, NULL, 'h'},
            {0},
        };
        const char *config_path = NULL;
        int level = LOG_LEVEL_INFO, c;
        while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        config_path = optarg;
                        break;
                case 'v':
                        level = LOG_LEVEL_DEBUG;
                        break;
                case 'h':
                        return usage(stdout);
                default:
                        return usage(stderr);
                }
        }
        if (optind != argc)
                return usage(stderr);
        log_setup("joule-runner", level);
        jl_runner_install_crash_handler();

        joule_config cfg;
        char err[1024] = "";
        int r = joule_config_init(&cfg);
        if (r >= 0)
                r = joule_config_load(&cfg, config_path, err, sizeof(err));
        if (r < 0) {
                log_error(r, "configuration: %s", err);
                joule_config_free(&cfg);
                return 1;
        }
        /* the signals are read through a signalfd by every wait of the loop */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGINT, SIG_DFL); /* an inherited SIG_IGN (a shell's background job) would drop them */
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_IGN);
        int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0) {
                log_error(errno, "signalfd: %s", strerror(errno));
                joule_config_free(&cfg);
                return 1;
        }
        char lock_dir[4096];
        if ((r = jl_runner_default_lock_dir(lock_dir, sizeof(lock_dir))) < 0) {
                log_error(r, "the lock directory's name is too long");
                close(sfd);
                joule_config_free(&cfg);
                return 1;
        }
        jl_runner_opts o = {
            .config = &cfg, .signal_fd = sfd, .lock_dir = lock_dir, .send_mail = true, .log = log_cb};
        jl_runner *run = NULL;
        if ((r = jl_runner_new(&o, &run)) < 0) {
                log_error(r, "cannot set up the runner: %s", strerror(-r));
                close(sfd);
                joule_config_free(&cfg);
                return 1;
        }
        char url[1024];
        log_info("machine %" PRId64 "%s%s, database %s, lock %s/machine-%" PRId64 ".lock", cfg.machine.id,
                 cfg.machine.description ? ": " : "", cfg.machine.description ? cfg.machine.description : "",
                 jl_store_url_redact(cfg.database.url, url, sizeof(url)), lock_dir, cfg.machine.id);
        int ret = 0;
        r = jl_runner_start(run, false);
        if (r < 0 && r != -EINTR)
                ret = 1;
        else if (r == 0) {
                log_info("ready: waiting for jobs");
                for (;;) { /* until a signal */
                        r = jl_runner_pass(run);
                        if (r == -EINTR)
                                break;
                        if (r < 0) {
                                ret = 1;
                                break;
                        }
                        r = r == 1 ? jl_runner_wait(run, cfg.runner.sleep_time_after_job, false)
                                   : jl_runner_wait(run, cfg.runner.sleep_time_no_job, true);
                        if (r == -EINTR)
                                break;
                }
        }
        int sig = jl_runner_stop_signal(run);
        if (sig)
                log_notice("stopped by %s", sig == SIGINT ? "SIGINT" : "SIGTERM");
        jl_runner_free(run);
        close(sfd);
        joule_config_free(&cfg);
        return ret;
}
