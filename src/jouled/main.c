/* main.c - jouled, joule's node daemon: the start-up order (configuration, logging, state, providers and
 * the shared-memory page, sink, local socket, control port, /metrics, threads, READY=1), the signal loop
 * (SIGTERM/SIGINT stop, SIGHUP reloads the run-time keys) and the shutdown in the reverse order. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "config-joule.h"
#include "jouled.h"
#include "log.h"
#include "macro.h"
#include "timeutil.h"

static void usage(FILE *f)
{
        fputs("Usage: jouled [-c FILE]\n\n"
              "joule's node daemon: power monitoring, the local API socket and shared-memory page, the\n"
              "remote control port, job step accounting and /metrics. See docs/jouled.md.\n\n"
              "  -c, --config FILE   configuration file (default $JOULE_CONFIG, "
              "else " JOULE_CONFIG_DEFAULT_PATH ")\n"
              "  -h, --help          this help\n"
              "      --version       print the version\n",
              f);
}

static bool str_differs(const char *a, const char *b)
{
        return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

static bool strv_differs(char **a, char **b)
{
        for (; a && b && *a && *b; a++, b++)
                if (strcmp(*a, *b) != 0)
                        return true;
        return (a && *a) || (b && *b);
}

/* Resolve node.admins into uids (lock held or before threads run). */
static void resolve_admins(jouled *d)
{
        d->nadmins = 0;
        for (char **a = d->cfg.node.admins; a && *a; a++) {
                struct passwd pw, *res = NULL;
                char buf[4096];
                if (getpwnam_r(*a, &pw, buf, sizeof(buf), &res) != 0 || !res) {
                        log_warning(0, "node.admins: no user '%s' on this node, ignored", *a);
                        continue;
                }
                if (d->nadmins < ARRAY_SIZE(d->admin_uids))
                        d->admin_uids[d->nadmins++] = pw.pw_uid;
        }
}

/* Clients hold a descriptor each (local socket, control port, /metrics): the soft limit up to the hard one,
 * so that the per-peer limits of server.c, not EMFILE, decide who is refused. */
static void raise_fd_limit(void)
{
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < MIN(rl.rlim_max, (rlim_t)65536)) {
                rl.rlim_cur = MIN(rl.rlim_max, (rlim_t)65536);
                (void)setrlimit(RLIMIT_NOFILE, &rl);
        }
}

static void set_intervals(jouled *d)
{
        d->period_ns = (uint64_t)(d->cfg.node.period_s * 1e9);
        d->sample_ns = (uint64_t)(d->cfg.node.sample_ms * 1e6);
        if (d->sample_ns > d->period_ns) {
                log_warning(
                    0, "node.sample_ms (%g ms) is longer than node.period (%g s): sampling every period",
                    d->cfg.node.sample_ms, d->cfg.node.period_s);
                d->sample_ns = d->period_ns;
        }
}

static void reload(jouled *d)
{
        sd_notify(0, "RELOADING=1\nSTATUS=Reloading the configuration");
        joule_config n;
        char err[1024];
        int r = joule_config_init(&n);
        if (r == 0)
                r = joule_config_load(&n, d->config_path, err, sizeof(err));
        else
                jd_copy(err, sizeof(err), strerror(-r));
        if (r < 0) {
                log_error(r, "reload: %s; the running configuration stays", err);
                joule_config_free(&n);
                sd_notify(0, "READY=1\nSTATUS=Running (the last reload failed)");
                return;
        }
        const struct {
                const char *key;
                bool changed;
        } fixed[] = {
            {"database.url", str_differs(n.database.url, d->cfg.database.url)},
            {"node.name", str_differs(n.node.name, d->cfg.node.name)},
            {"node.dbd", str_differs(n.node.dbd, d->cfg.node.dbd)},
            {"node.socket", str_differs(n.node.socket, d->cfg.node.socket)},
            {"node.control_listen", str_differs(n.node.control_listen, d->cfg.node.control_listen)},
            {"node.spool", str_differs(n.node.spool, d->cfg.node.spool)},
            {"node.state_dir", str_differs(n.node.state_dir, d->cfg.node.state_dir)},
            {"node.munge_socket", str_differs(n.node.munge_socket, d->cfg.node.munge_socket)},
            {"node.partition", str_differs(n.node.partition, d->cfg.node.partition)},
            {"node.island", str_differs(n.node.island, d->cfg.node.island)},
            {"measurement.hwmon_sensors",
             strv_differs(n.measurement.hwmon_sensors, d->cfg.measurement.hwmon_sensors)},
            {"estimate.idle_w", n.estimate.idle_w != d->cfg.estimate.idle_w},
            {"estimate.max_w", n.estimate.max_w != d->cfg.estimate.max_w},
        };
        for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
                if (fixed[i].changed)
                        log_notice("reload: %s changed; it takes effect at the next restart of jouled",
                                   fixed[i].key);

        bool metrics_changed = str_differs(n.node.metrics_listen, d->cfg.node.metrics_listen);
        pthread_mutex_lock(&d->lock);
        double old_period = d->cfg.node.period_s, old_sample = d->cfg.node.sample_ms;
        d->cfg.node.period_s = n.node.period_s;
        d->cfg.node.sample_ms = n.node.sample_ms;
        d->cfg.node.user_steps_max = n.node.user_steps_max;
        char **admins = d->cfg.node.admins;
        d->cfg.node.admins = n.node.admins;
        n.node.admins = admins;
        char *ml = d->cfg.node.metrics_listen;
        d->cfg.node.metrics_listen = n.node.metrics_listen;
        n.node.metrics_listen = ml;
        set_intervals(d);
        resolve_admins(d);
        pthread_mutex_unlock(&d->lock);
        joule_config_free(&n);

        if (old_period != d->cfg.node.period_s || old_sample != d->cfg.node.sample_ms)
                log_notice("reload: node.period %g s, node.sample_ms %g ms", d->cfg.node.period_s,
                           d->cfg.node.sample_ms);
        if (metrics_changed) {
                jd_metrics_stop(d->metrics);
                d->metrics = NULL;
                if (d->cfg.node.metrics_listen) {
                        r = jd_metrics_start(d, d->cfg.node.metrics_listen, &d->metrics, err, sizeof(err));
                        if (r < 0)
                                log_error(r, "reload: /metrics: %s; /metrics is off", err);
                        else
                                log_notice("reload: /metrics on %s", d->cfg.node.metrics_listen);
                } else
                        log_notice("reload: /metrics is off");
        }
        log_notice("configuration reloaded from %s", d->cfg.path ? d->cfg.path : "(defaults)");
        sd_notify(0, "READY=1\nSTATUS=Running");
}

/* On a clean stop: the last, partial period's record, so that no measured energy is left out. */
static void final_record(jouled *d)
{
        pthread_mutex_lock(&d->lock);
        jd_sample_locked(d);
        if (d->rec_open && d->snap.t_ns > d->rec_start_ns) {
                const jd_snapshot *s = &d->snap;
                jl_msg_record m = {.step_id = -1};
                uint64_t seq;
                if (jd_state_next_seq(d, &seq) == 0) {
                        m.seq = seq;
                        jd_copy(m.node, sizeof(m.node), d->cfg.node.name);
                        m.start_us = jd_realtime_us(d, d->rec_start_ns);
                        m.end_us = jd_realtime_us(d, s->t_ns);
                        m.energy_uj = s->node_energy_uj - d->rec_start_node_uj;
                        m.avg_power_w =
                            (double)m.energy_uj / 1e6 / ((double)(s->t_ns - d->rec_start_ns) / 1e9);
                        m.temp_max_c = d->rec_temp_max;
                        m.freq_avg_khz =
                            d->rec_freq_n ? d->rec_freq_sum / (double)d->rec_freq_n : __builtin_nan("");
                        if (d->nsteps) {
                                jd_copy(m.job_id, sizeof(m.job_id), d->steps[0].job_id);
                                m.step_id = d->steps[0].step_id;
                        }
                        for (size_t i = 0; i < s->ndomains && m.ndomains < JL_MSG_DOMAINS_MAX; i++) {
                                jd_copy(m.domains[m.ndomains].name, sizeof(m.domains[0].name),
                                        s->domains[i].name);
                                m.domains[m.ndomains++].energy_uj =
                                    s->domains[i].energy_uj - d->rec_start_dom_uj[i];
                        }
                        (void)jd_sink_record(d->sink, &m);
                        d->records_sent++;
                        d->rec_open = false;
                }
        }
        if (d->nsteps)
                (void)jd_state_save_steps(d);
        pthread_mutex_unlock(&d->lock);
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
            {"config", required_argument, NULL, 'c'},
            {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, 'V'},
            {},
        };
        static jouled daemon = {
            .stop_fd = -1, .shm_fd = -1, .shm_ro_fd = -1, .state_lock_fd = -1, .spool_lock_fd = -1};
        jouled *d = &daemon;
        int c;
        while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) >= 0)
                switch (c) {
                case 'c':
                        d->config_path = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                case 'V':
                        puts("jouled " JOULE_VERSION);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        if (optind < argc) {
                usage(stderr);
                return 2;
        }

        /* 1. configuration and logging */
        log_setup("jouled", LOG_LEVEL_INFO);
        char err[1024] = "";
        int r = joule_config_init(&d->cfg);
        if (r < 0)
                return log_error(r, "configuration: %s", strerror(-r)), 1;
        r = joule_config_load(&d->cfg, d->config_path, err, sizeof(err));
        if (r < 0) {
                log_error(r, "configuration: %s", err);
                joule_config_free(&d->cfg);
                return 1;
        }
        pthread_mutex_init(&d->lock, NULL);
        raise_fd_limit();
        d->rt_offset_ns = realtime_offset_ns();
        d->start_mono_ns = mono_ns();
        set_intervals(d);
        resolve_admins(d);

        int exit_code = 1;
        jd_server *local = NULL, *control = NULL;
        pthread_t th_monitor, th_local, th_control;
        bool started_monitor = false, started_local = false, started_control = false;
        _cleanup_close_ int sfd = -1;

        /* signals go to the signalfd of the main thread; every thread inherits the mask */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        signal(SIGPIPE, SIG_IGN);
        if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0 || (sfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0) {
                log_error(errno, "signalfd: %s", strerror(errno));
                goto out_config;
        }
        d->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (d->stop_fd < 0) {
                log_error(errno, "eventfd: %s", strerror(errno));
                goto out_config;
        }

        /* 2. state (sequence number, open job steps) */
        r = jd_state_load(d, err, sizeof(err));
        if (r < 0) {
                log_error(r, "%s", err);
                goto out_config;
        }
        /* 3. providers and the shared-memory page; the first sample is every counter's baseline */
        r = jd_monitor_open(d, err, sizeof(err));
        if (r < 0) {
                log_error(r, "%s", err);
                goto out_config;
        }
        pthread_mutex_lock(&d->lock);
        jd_sample_locked(d);
        jd_record_restart_locked(d); /* the first record starts at the baseline: no energy left out */
        pthread_mutex_unlock(&d->lock);
        /* 4. where records go (one jouled per spool: two would interleave their messages in one file) */
        if (d->cfg.node.dbd) {
                char lock[4200], what[4200];
                snprintf(lock, sizeof(lock), "%s.lock", d->cfg.node.spool);
                snprintf(what, sizeof(what), "spool %s", d->cfg.node.spool);
                r = jd_lock_take(lock, what, &d->spool_lock_fd, err, sizeof(err));
                if (r < 0) {
                        log_error(r, "%s", err);
                        goto out_monitor;
                }
        }
        r = jd_sink_open(&d->cfg, &d->sink, err, sizeof(err));
        if (r < 0) {
                log_error(r, "%s", err);
                goto out_monitor;
        }
        uint64_t spooled = jd_sink_last_seq(d->sink);
        if (spooled >= d->next_seq) {
                /* a state directory older than the spool (restored, or lost): continue after the spool */
                log_warning(0,
                            "the spool holds sequence numbers up to %" PRIu64
                            ", beyond %s/seq: continuing after it",
                            spooled, d->cfg.node.state_dir);
                d->next_seq = spooled + 1;
                d->seq_reserved = d->next_seq; /* reserve a new block before the next use */
        }
        /* 5. local socket, control port, /metrics */
        r = jd_server_open_local(d, d->cfg.node.socket, &local, err, sizeof(err));
        if (r < 0) {
                log_error(r, "%s", err);
                goto out_sink;
        }
        if (d->cfg.node.control_listen) {
                r = jd_server_open_control(d, d->cfg.node.control_listen, &control, err, sizeof(err));
                if (r < 0) {
                        log_error(r, "%s", err);
                        goto out_servers;
                }
        }
        if (d->cfg.node.metrics_listen) {
                r = jd_metrics_start(d, d->cfg.node.metrics_listen, &d->metrics, err, sizeof(err));
                if (r < 0) {
                        log_error(r, "%s", err);
                        goto out_servers;
                }
        }
        /* 6. threads */
        if ((r = pthread_create(&th_monitor, NULL, jd_monitor_thread, d)) != 0) {
                log_error(r, "starting the monitor: %s", strerror(r));
                goto out_threads;
        }
        started_monitor = true;
        if ((r = pthread_create(&th_local, NULL, jd_server_thread, local)) != 0) {
                log_error(r, "starting the socket server: %s", strerror(r));
                goto out_threads;
        }
        started_local = true;
        if (control) {
                if ((r = pthread_create(&th_control, NULL, jd_server_thread, control)) != 0) {
                        log_error(r, "starting the control port: %s", strerror(r));
                        goto out_threads;
                }
                started_control = true;
        }

        log_notice("jouled %s on %s: %zu channels, node energy from %s, period %g s, sampling every %g ms, "
                   "socket %s%s%s%s%s, records to %s, next seq %" PRIu64,
                   JOULE_VERSION, d->cfg.node.name, d->sampler->channels.n, d->snap.node_source,
                   d->cfg.node.period_s, d->cfg.node.sample_ms, d->cfg.node.socket,
                   control ? ", control port " : "", control ? d->cfg.node.control_listen : "",
                   d->metrics ? ", /metrics on " : "", d->metrics ? d->cfg.node.metrics_listen : "",
                   d->cfg.node.dbd ? d->cfg.node.dbd : d->cfg.database.url, d->next_seq);
        sd_notify(0, "READY=1\nSTATUS=Running");

        for (;;) {
                struct signalfd_siginfo si;
                ssize_t n = read(sfd, &si, sizeof(si));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n != sizeof(si)) {
                        log_error(errno, "reading signals: %s", strerror(errno));
                        break;
                }
                if (si.ssi_signo == SIGHUP) {
                        reload(d);
                        continue;
                }
                log_notice("%s: stopping", strsignal((int)si.ssi_signo));
                break;
        }
        sd_notify(0, "STOPPING=1\nSTATUS=Stopping");
        exit_code = 0;

out_threads : {
        uint64_t one = 1;
        if (write(d->stop_fd, &one, sizeof(one)) < 0)
                log_error(errno, "stopping the threads: %s", strerror(errno));
        if (started_control)
                pthread_join(th_control, NULL);
        if (started_local)
                pthread_join(th_local, NULL);
        if (started_monitor)
                pthread_join(th_monitor, NULL);
}
        if (exit_code == 0)
                final_record(d);
out_servers:
        jd_metrics_stop(d->metrics);
        d->metrics = NULL;
        jd_server_free(control);
        jd_server_free(local);
out_sink:
        jd_sink_close(d->sink, 3000); /* then what is not delivered is safe on disk: spool or pending file */
        d->sink = NULL;
out_monitor:
        jd_monitor_close(d);
out_config:
        if (d->spool_lock_fd >= 0)
                close(d->spool_lock_fd);
        if (d->state_lock_fd >= 0)
                close(d->state_lock_fd);
        if (d->stop_fd >= 0)
                close(d->stop_fd);
        pthread_mutex_destroy(&d->lock);
        joule_config_free(&d->cfg);
        return exit_code;
}
