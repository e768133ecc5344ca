/* manage.c - loop tracking, signatures, the policy's decisions and the records (manage.h). All state is
 * the node master's; in MPI_THREAD_MULTIPLE programs one thread at a time enters (a try-lock: an event
 * that finds it taken is not pushed to the loop detector). */
#include "manage.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "coeffs.h"
#include "counters.h"
#include "dynais.h"
#include "fileio.h"
#include "node.h"
#include "parse.h"
#include "report.h"
#include "runtime.h"
#include "userfile.h"

static const char *env_get(const char *name)
{
        return getenv(name);
}

static void add_why(char *why, size_t whylen, const char *fmt, const char *name, const char *value,
                    const char *dflt)
{
        size_t n = strlen(why);
        if (n + 3 >= whylen)
                return;
        snprintf(why + n, whylen - n, "%s", n ? "; " : "");
        n = strlen(why);
        snprintf(why + n, whylen - n, fmt, name, value, dflt);
}

static int parse_uint_env(const char *(*get)(const char *), const char *name, unsigned lo, unsigned hi,
                          unsigned *val, char *why, size_t whylen)
{
        const char *v = get(name);
        uint64_t u;
        char d[32];
        if (!v || !*v)
                return 0;
        if (parse_u64(v, &u) < 0 || u < lo || u > hi) {
                snprintf(d, sizeof(d), "%u", *val);
                add_why(why, whylen, "%s=\"%s\" is not a whole number in range: %s is used", name, v, d);
                return 1;
        }
        *val = (unsigned)u;
        return 0;
}

int jl_rt_config_parse(const char *(*get)(const char *name), jl_rt_config *ret, char *why, size_t whylen)
{
        jl_rt_config c = {.policy = JL_RT_MONITORING,
                          .window_ms = 10000,
                          .window_iters = 3,
                          .settle_ms = 100,
                          .loop_wait_ms = 15000,
                          .period_ms = 1000,
                          .max_call_rate = 200000};
        int bad = 0;
        const char *v;

        if (!get)
                get = env_get;
        if (whylen)
                why[0] = '\0';
        v = get("JOULE_POLICY");
        if (v && *v && jl_rt_policy_parse(v, &c.policy) < 0) {
                add_why(why, whylen,
                        "%s=\"%s\" is not a policy (monitoring, min_energy, min_time): %s is used",
                        "JOULE_POLICY", v, "monitoring");
                bad++;
        }
        c.th = c.policy == JL_RT_MIN_TIME ? 0.7 : 0.05;
        v = get("JOULE_POLICY_TH");
        if (v && *v) {
                double th;
                char d[32];
                snprintf(d, sizeof(d), "%g", c.th);
                if (parse_double(v, &th) < 0 || !(th >= 0 && th <= 1)) {
                        add_why(why, whylen, "%s=\"%s\" is not a threshold between 0 and 1: %s is used",
                                "JOULE_POLICY_TH", v, d);
                        bad++;
                } else
                        c.th = th;
        }
        v = get("JOULE_CPUFREQ");
        if (v && *v) {
                uint64_t khz;
                if (parse_u64(v, &khz) < 0 || khz == 0 || khz > 100000000u) {
                        add_why(why, whylen, "%s=\"%s\" is not a frequency in kHz: %s is used",
                                "JOULE_CPUFREQ", v, "the default");
                        bad++;
                } else
                        c.cpufreq_khz = (unsigned long)khz;
        }
        bad += parse_uint_env(get, "JOULE_WINDOW_MS", 1, 3600000, &c.window_ms, why, whylen);
        bad += parse_uint_env(get, "JOULE_WINDOW_ITERATIONS", 1, 1000000, &c.window_iters, why, whylen);
        bad += parse_uint_env(get, "JOULE_SETTLE_MS", 0, 60000, &c.settle_ms, why, whylen);
        bad += parse_uint_env(get, "JOULE_LOOP_WAIT_MS", 1, 86400000, &c.loop_wait_ms, why, whylen);
        bad += parse_uint_env(get, "JOULE_PERIOD_MS", 10, 3600000, &c.period_ms, why, whylen);
        v = get("JOULE_MAX_CALL_RATE");
        if (v && *v) {
                double r;
                if (parse_double(v, &r) < 0 || !(r > 0)) {
                        add_why(why, whylen, "%s=\"%s\" is not a positive rate: %s is used",
                                "JOULE_MAX_CALL_RATE", v, "200000");
                        bad++;
                } else
                        c.max_call_rate = r;
        }
        v = get("JOULE_TAG");
        snprintf(c.tag, sizeof(c.tag), "%s", v ? v : "");
        v = get("JOULE_APP_NAME");
        snprintf(c.app_name, sizeof(c.app_name), "%s", v && *v ? v : program_invocation_short_name);
        c.learning = -1;
        v = get("JOULE_LEARNING");
        if (v && *v) {
                char *end;
                errno = 0;
                long l = strtol(v, &end, 10);
                if (errno || *end || end == v || l < 0 || l > 63) {
                        add_why(why, whylen, "%s=\"%s\" is not a P-state from 0 to 63: %s", "JOULE_LEARNING",
                                v, "no learning run");
                        bad++;
                } else
                        c.learning = (int)l;
        }
        v = get("JOULE_REPORT");
        if (v && strlen(v) >= sizeof(c.report_path)) {
                add_why(why, whylen, "%s=\"%.40s…\" is too long: %s", "JOULE_REPORT", v, "no report file");
                bad++;
        } else
                snprintf(c.report_path, sizeof(c.report_path), "%s", v ? v : "");
        *ret = c;
        return bad;
}

/* ---- the node master's state ---- */

#define WINDOW_DURATIONS 4096
#define WINDOW_POWERS 1024

typedef struct {
        double t;       /* CLOCK_MONOTONIC s */
        jl_rt_energy e; /* valid when e_ok */
        bool e_ok;
        jl_rt_counts c;
        uint64_t calls;
        uint64_t io_bytes;
        double khz; /* NAN: unknown */
        /* the step's GPUs' utilisation sums, valid when g_ok */
        jl_rt_gpu_util g;
        bool g_ok;
} snap;

static struct {
        bool on, mpi, connected, lock_needed;
        jl_rt_config cfg;
        cpu_set_t cpus;
        int ncpus;
        unsigned long freqs[JL_RT_FREQS_MAX];
        size_t nfreqs;
        unsigned long nominal_khz, def_khz;
        jl_rt_policy pol;
        bool pol_on, freq_changed, said_set_fail, restart_policy;
        jl_rt_shm shm;
        jl_rt_gpus gpus; /* the step's GPUs (SLURM_STEP_GPUS, SLURM_JOB_GPUS, CUDA_VISIBLE_DEVICES) */
        jl_rt_counters ctr;
        jl_dynais *dyn;
        bool dyn_off;
        /* the tracked loop (level 0) */
        bool in_loop;
        uint32_t loop_id, loop_size;
        uint64_t loop_iters;  /* as the detector counts them */
        uint64_t loop_iters0; /* when it was confirmed */
        uint32_t loop_pos;    /* events since the current iteration began */
        snap loop_s0;
        double loop_pt, loop_ft, loop_tt; /* power × time, kHz × time, time over its windows */
        /* the signature window */
        bool win_open;
        uint64_t win_iter0;
        snap win_s0;
        double last_end;              /* when the last iteration ended */
        double dur[WINDOW_DURATIONS]; /* the window's iteration durations (the first WINDOW_DURATIONS) */
        unsigned ndur;
        double pw[WINDOW_POWERS]; /* the window's power between jouled's successive samples */
        unsigned npw;
        jl_rt_energy pw_last; /* the last sample seen in the window, valid when pw_ok */
        bool pw_ok;
        double settle_until;
        double last_loop_t; /* when a loop last ran (or the start) */
        bool time_guided;
        double tg_t0;
        snap tg_s0;
        /* the application */
        snap app_s0;
        double app_ft, app_tt;
        jl_rt_phase phase;
        jl_coeffs coeffs; /* the node's learnt model (load_coeffs); have_coeffs when loaded */
        bool have_coeffs;
        uint64_t events;
        double rate_t0;
        uint64_t rate_ev0;
        jl_rt_userfile user; /* JOULE_REPORT */
} M;

static int mgr_lock;

/* A write to the user's report file failed: one line, and no more writes (the file was closed). */
static void user_write(int r)
{
        if (r < 0 && r != -EBADF)
                jl_rt_say("JOULE_REPORT: cannot write %s (%s): no more lines; the program runs on",
                          M.user.path, strerror(-r));
}

unsigned jl_rt_manage_period_ms(void)
{
        return M.cfg.period_ms ? M.cfg.period_ms : 1000;
}

bool jl_rt_managing(void)
{
        return __atomic_load_n(&M.on, __ATOMIC_ACQUIRE);
}

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t io_bytes(void)
{
        char buf[1024];
        uint64_t sum = 0;
        if (read_text_path("/proc/self/io", buf, sizeof(buf)) < 0)
                return 0;
        for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
                uint64_t v;
                if (strncmp(line, "read_bytes: ", 12) == 0 && parse_u64(line + 12, &v) == 0)
                        sum += v;
                else if (strncmp(line, "write_bytes: ", 13) == 0 && parse_u64(line + 13, &v) == 0)
                        sum += v;
        }
        return sum;
}

static void take(snap *s)
{
        s->t = now_s();
        s->e_ok = M.connected && jl_rt_shm_energy(&M.shm, &s->e) == 0;
        jl_rt_counters_read(&M.ctr, &s->c);
        s->calls = jl_rt_count_total();
        s->io_bytes = io_bytes();
        if (jl_rt_cpufreq_cur(&M.cpus, &s->khz) < 0)
                s->khz = NAN;
        s->g_ok = M.connected && jl_rt_shm_gpu_util(&M.shm, &M.gpus, &s->g) == 0;
}

/* W between two snaps from jouled's samples (the sample's own times, so a window is exact whatever its
 * edges' offset from jouled's sampling); NAN where the page did not advance (jouled down or restarted). */
static double power_between(const snap *a, const snap *b, uint64_t which)
{
        uint64_t ea, eb;
        if (!a->e_ok || !b->e_ok || b->e.time_ms <= a->e.time_ms || a->e.jouled_pid != b->e.jouled_pid)
                return NAN;
        switch (which) {
        case 0:
                ea = a->e.node_uj, eb = b->e.node_uj;
                break;
        case 1:
                ea = a->e.pkg_uj, eb = b->e.pkg_uj;
                break;
        default:
                ea = a->e.dram_uj, eb = b->e.dram_uj;
                break;
        }
        if (ea == UINT64_MAX || eb == UINT64_MAX || eb < ea)
                return NAN;
        return (double)(eb - ea) / (double)(b->e.time_ms - a->e.time_ms) / 1000.0;
}

/* Whether jouled's samples behind a window's power lie in the window: the span from a's sample to b's may
 * reach back before the window's start by at most a quarter of its length. A jouled that stalled or was
 * stopping sampled last long before, at the frequency in force then (the window opens after a change has
 * settled): such a power is another frequency's (a memory-bound code's 800 MHz window read 117 W, the
 * 2.8 GHz probe's power, while jouled restarted). */
static bool samples_in_window(const snap *a, const snap *b)
{
        double span_ms = (double)b->e.time_ms - (double)a->e.time_ms,
               before_ms = a->t * 1000.0 - (double)a->e.time_ms;
        return span_ms > 0 && before_ms <= 0.25 * span_ms;
}

static double mean_khz(const snap *a, const snap *b)
{
        if (isfinite(a->khz) && isfinite(b->khz))
                return (a->khz + b->khz) / 2;
        return isfinite(b->khz) ? b->khz : a->khz;
}

static void say_event(const char *kind, double value, const char *message)
{
        int r = jl_rt_report_event(kind, value, message);
        user_write(jl_rt_userfile_event(&M.user, kind, value, message));
        if (jl_rt_verbose >= 2)
                jl_rt_say("event %s %g: %s", kind, value, message);
        if (r == -EOPNOTSUPP && jl_rt_verbose >= 3)
                jl_rt_say("(the event was not stored: this jouled takes no runtime records)");
}

/* The step's GPUs among the page's (node.h); say which at JOULE_VERBOSE >= 2. */
static void select_gpus(bool say)
{
        jl_rt_gpu_env env;
        jl_shm_page pg;
        jl_rt_gpu_env_get(&env);
        bool have = M.connected && M.shm.page && jl_shm_read(M.shm.page, &pg);
        jl_rt_gpus_select(&env, have ? &pg : NULL, &M.gpus);
        if (!say || jl_rt_verbose < 2)
                return;
        char list[200];
        jl_rt_gpus_format(&M.gpus, list, sizeof(list));
        jl_rt_say("GPUs of the step: %s (%s%s)%s%s", list, M.gpus.source ? "from " : "",
                  M.gpus.source ? M.gpus.source
                                : "no SLURM_STEP_GPUS, SLURM_JOB_GPUS or CUDA_VISIBLE_DEVICES",
                  M.gpus.note[0] ? ": " : "", M.gpus.note);
}

static void reconnect(void)
{
        char why[256];
        jl_rt_shm_close(&M.shm);
        M.connected = jl_rt_report_connect() == 0 &&
                      jl_rt_shm_open(jl_client_socket_path(NULL), &M.shm, why, sizeof(why)) == 0;
        if (M.connected)
                select_gpus(false); /* another jouled's page: its GPUs may be listed otherwise */
}

static void apply(const jl_rt_decision *d)
{
        if (d->model) {
                bool ctr = strcmp(d->model, "counters") == 0;
                char m[sizeof(d->model_message) + 64];
                /* CPI and TPI are the step's CPUs' on this node, or the node master's process's alone */
                snprintf(m, sizeof(m), "%s%s%s", d->model_message, ctr ? "; counted: " : "",
                         ctr ? (M.ctr.scope == JL_RT_CTR_CPUS ? "per CPU of the step"
                                                              : "the node master's process")
                             : "");
                say_event("model", ctr ? 2 : strcmp(d->model, "curve") == 0 ? 1 : 0, m);
        }
        if (d->kind)
                say_event(d->kind, d->value, d->message);
        if (!d->set)
                return;
        int r = jl_rt_set_cpufreq(&M.cpus, d->khz);
        if (r < 0) {
                /* jouled restarted? one more try on a fresh connection */
                reconnect();
                r = jl_rt_set_cpufreq(&M.cpus, d->khz);
        }
        if (r < 0) {
                /* ENOENT / ECONNREFUSED come from connect(): no jouled listens at the socket (a stopped
                 * jouled removes it; a new one binds it again) */
                if (!M.said_set_fail)
                        jl_rt_say(
                            "jouled did not set %lu kHz (%s%s): the frequency stays as it is; the program "
                            "runs on",
                            d->khz, strerror(-r),
                            r == -ENOENT || r == -ECONNREFUSED ? ": no jouled at its socket, restarting?"
                                                               : "");
                M.said_set_fail = true;
                /* the frequency in force is not the one the policy believes: it starts over (a new
                 * reference at the default) once jouled answers again */
                M.restart_policy = true;
                return;
        }
        M.said_set_fail = false;
        M.freq_changed = true;
        M.win_open = false;
        M.settle_until = now_s() + M.cfg.settle_ms / 1000.0;
}

/* The CPUs this process (the node master) may run on: where the counters count for the process (not per
 * CPU of the step), its FLOPs are counted there. 0: unknown. */
static int own_cpus(void)
{
        cpu_set_t set;
        return sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 0;
}

/* A signature over [a, b] of iters iterations (time-guided with counters: giga-instructions); tpi_s: the
 * time per iteration when known better than dt / iters (the median of the iterations' durations). */
static void signature(const snap *a, const snap *b, double iters, bool loop, double tpi_s, double tpi_err_s,
                      double power_err_w)
{
        double dt = b->t - a->t;
        jl_rt_sig s = {
            .tpi_s = tpi_s > 0 ? tpi_s : dt / iters,
            .tpi_err_s = tpi_err_s,
            .power_err_w = power_err_w,
            .power_w = power_between(a, b, 0),
            .khz = mean_khz(a, b),
            .cpi = jl_rt_counts_cpi(&a->c, &b->c),
            .tpi = jl_rt_counts_tpi(&a->c, &b->c),
            .gbs = jl_rt_counts_gbs(&a->c, &b->c, dt),
            .gflops = jl_rt_counts_gflops(&a->c, &b->c, dt),
            .calls_per_s = (double)(b->calls - a->calls) / dt,
            .io_mbs = (double)(b->io_bytes - a->io_bytes) / dt / 1e6,
            .cpus = M.ncpus,
            .fp_cpus = jl_rt_counters_fp_cpus(&M.ctr, own_cpus()),
        };
        /* the step's GPUs' mean utilisation over the window, from jouled's page (NAN: no GPU seen) */
        double gpu_util = a->g_ok && b->g_ok ? jl_rt_gpu_util_mean(&a->g, &b->g) : NAN;
        s.gpu_busy = jl_rt_gpu_busy(gpu_util, &s, M.pol.have_tm ? &M.pol.tm : NULL);
        if (!isfinite(s.power_w) && M.connected && b->e_ok && a->e_ok)
                reconnect();
        else if (isfinite(s.power_w) && !samples_in_window(a, b))
                s.power_w = NAN; /* measured again in the next window */
        if (isfinite(s.khz)) {
                M.app_ft += s.khz * dt;
                M.app_tt += dt;
        }
        if (loop) {
                if (isfinite(s.power_w))
                        M.loop_pt += s.power_w * dt;
                if (isfinite(s.khz))
                        M.loop_ft += s.khz * dt;
                M.loop_tt += dt;
        }
        jl_rt_phase ph = jl_rt_phase_classify(&s, M.pol.have_tm ? &M.pol.tm : NULL);
        if (jl_rt_verbose >= 3)
                jl_rt_say("signature: %.6f s per iteration over %.0f, %.2f W, %.0f kHz, CPI %.3f, TPI %.4f, "
                          "%.2f GB/s, "
                          "%.3f GFLOPS, %.0f calls/s, %.2f MB/s I/O, GPUs %.2f busy, %s",
                          s.tpi_s, iters, s.power_w, s.khz, s.cpi, s.tpi, s.gbs, s.gflops, s.calls_per_s,
                          s.io_mbs, gpu_util, jl_rt_phase_name(ph));
        if (ph != M.phase && ph != JL_RT_PHASE_UNKNOWN) {
                char m[96];
                snprintf(m, sizeof(m), "%s", jl_rt_phase_name(ph));
                M.phase = ph;
                say_event("phase", ph, m);
        }
        if (!M.pol_on)
                return;
        jl_rt_decision d;
        if (M.restart_policy) {
                if (!M.connected)
                        reconnect();
                if (!M.connected)
                        return;
                M.restart_policy = false;
                if (jl_rt_policy_init(&M.pol, M.cfg.policy, M.cfg.th, M.freqs, M.nfreqs, M.def_khz, &d) < 0)
                        return;
                if (M.have_coeffs)
                        jl_rt_policy_set_model(&M.pol, &M.coeffs.curve, M.coeffs.npairs ? &M.coeffs : NULL);
                snprintf(
                    d.message, sizeof(d.message),
                    "jouled answers again: %s starts over, the reference at the default frequency %lu kHz",
                    jl_rt_policy_name(M.cfg.policy), M.pol.def_khz);
                apply(&d);
                return;
        }
        jl_rt_policy_signature(&M.pol, &s, &d);
        apply(&d);
}

/* The tracked loop ended. The detector counts iterations begun; the event that broke the loop either stood
 * where the next iteration would have begun (every iteration begun was complete: a loop that ends at
 * MPI_Finalize) or inside one (a period change: the last one begun is not counted). */
static void loop_end(void)
{
        if (!M.in_loop)
                return;
        if (M.loop_pos + 1 != M.loop_size && M.loop_iters > 0)
                M.loop_iters--;
        snap b;
        take(&b);
        jl_rt_loop_record r = {
            .iterations = M.loop_iters, .cpi = NAN, .tpi = NAN, .gbs = NAN, .gflops = NAN};
        snprintf(r.loop_key, sizeof(r.loop_key), "%08x:%u:0", M.loop_id, M.loop_size);
        double dt = b.t - M.loop_s0.t;
        r.time_per_iteration_s =
            M.loop_iters > M.loop_iters0 ? dt / (double)(M.loop_iters - M.loop_iters0) : NAN;
        r.avg_power_w =
            M.loop_tt > 0 && M.loop_pt > 0 ? M.loop_pt / M.loop_tt : power_between(&M.loop_s0, &b, 0);
        double f = M.loop_tt > 0 && M.loop_ft > 0 ? M.loop_ft / M.loop_tt : mean_khz(&M.loop_s0, &b);
        r.avg_cpufreq_khz = isfinite(f) ? (uint64_t)llround(f) : 0;
        r.cpi = jl_rt_counts_cpi(&M.loop_s0.c, &b.c);
        r.tpi = jl_rt_counts_tpi(&M.loop_s0.c, &b.c);
        r.gbs = jl_rt_counts_gbs(&M.loop_s0.c, &b.c, dt);
        r.gflops = jl_rt_counts_gflops(&M.loop_s0.c, &b.c, dt);
        int rr = jl_rt_report_loop(&r);
        user_write(jl_rt_userfile_loop(&M.user, &r));
        if (jl_rt_verbose >= 2)
                jl_rt_say("loop %s: %llu iterations of %u events, %.6f s per iteration, %.2f W, %llu kHz, "
                          "CPI %.3f",
                          r.loop_key, (unsigned long long)r.iterations, M.loop_size, r.time_per_iteration_s,
                          r.avg_power_w, (unsigned long long)r.avg_cpufreq_khz, r.cpi);
        if (rr == -EOPNOTSUPP && jl_rt_verbose >= 3)
                jl_rt_say("(the loop was not stored: this jouled takes no runtime records)");
        M.in_loop = false;
        M.win_open = false;
        M.last_loop_t = b.t;
}

static void window_open(const snap *s, uint64_t iters)
{
        M.win_s0 = *s;
        M.win_iter0 = iters;
        M.win_open = true;
        M.ndur = 0;
        M.last_end = s->t;
        M.npw = 0;
        M.pw_last = s->e;
        M.pw_ok = s->e_ok;
}

/* At an iteration's end: the power since jouled's last sample seen in the window, when a new one is there.
 */
static void window_power(void)
{
        jl_rt_energy e;
        if (!M.connected || jl_rt_shm_energy(&M.shm, &e) < 0)
                return;
        if (M.pw_ok && e.time_ms > M.pw_last.time_ms && e.jouled_pid == M.pw_last.jouled_pid &&
            e.node_uj != UINT64_MAX && M.pw_last.node_uj != UINT64_MAX && e.node_uj >= M.pw_last.node_uj &&
            M.npw < WINDOW_POWERS)
                M.pw[M.npw++] = (double)(e.node_uj - M.pw_last.node_uj) /
                                (double)(e.time_ms - M.pw_last.time_ms) / 1000.0;
        if (!M.pw_ok || e.time_ms != M.pw_last.time_ms) {
                M.pw_last = e;
                M.pw_ok = true;
        }
}

/* The standard error of a window's median time per iteration from the spread of its sorted durations
 * (σ ≈ IQR / 1.349; the median's error ≈ 1.253 σ / √n), and of its mean power from the spread of the
 * powers between jouled's samples (σ / √n); NAN with fewer than 4. */
static double median_err(const double *sorted, unsigned n)
{
        if (n < 4)
                return NAN;
        double sigma = (sorted[(3 * n) / 4] - sorted[n / 4]) / 1.349;
        return 1.253 * sigma / sqrt((double)n);
}

static double mean_err(const double *v, unsigned n)
{
        if (n < 4)
                return NAN;
        double sum = 0, sq = 0;
        for (unsigned i = 0; i < n; i++)
                sum += v[i];
        double mean = sum / n;
        for (unsigned i = 0; i < n; i++)
                sq += (v[i] - mean) * (v[i] - mean);
        return sqrt(sq / (n - 1)) / sqrt((double)n);
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

/* An iteration ended. The time per iteration of a window is the median of its iterations' durations, not
 * the span over the count: a late wake-up (a loaded node, a descheduled rank) moves the span by its whole
 * delay and makes the next iterations short while the program catches up; the median of the durations
 * sees neither. */
static void iteration(uint64_t iters)
{
        double t = now_s();
        uint64_t step = iters - M.loop_iters;
        M.loop_iters = iters;
        if (!M.win_open) {
                if (t < M.settle_until)
                        return;
                snap s;
                take(&s);
                window_open(&s, iters);
                return;
        }
        if (M.ndur < WINDOW_DURATIONS && step > 0)
                M.dur[M.ndur++] = (t - M.last_end) / (double)step;
        M.last_end = t;
        window_power();
        uint64_t n = iters - M.win_iter0;
        if (t - M.win_s0.t < M.cfg.window_ms / 1000.0 || n < M.cfg.window_iters)
                return;
        qsort(M.dur, M.ndur, sizeof(M.dur[0]), cmp_double);
        double median = M.ndur == 0       ? 0
                        : M.ndur % 2 == 1 ? M.dur[M.ndur / 2]
                                          : (M.dur[M.ndur / 2 - 1] + M.dur[M.ndur / 2]) / 2;
        double median_err_s = median_err(M.dur, M.ndur), power_err_w = mean_err(M.pw, M.npw);
        snap b;
        take(&b);
        snap a = M.win_s0;
        if (jl_rt_verbose >= 3)
                jl_rt_say("window: %llu iterations in %.6f s (%.6f s each), median %.6f s (± %.6f s), power "
                          "± %.3f W over %u samples",
                          (unsigned long long)n, b.t - a.t, (b.t - a.t) / (double)n, median, median_err_s,
                          power_err_w, M.npw);
        /* the next window starts where this one ends, unless a decision changes the frequency */
        window_open(&b, iters);
        signature(&a, &b, (double)n, true, median, median_err_s, power_err_w);
}

static void time_guided_tick(snap *now_snap)
{
        snap *a = &M.tg_s0;
        if (a->c.valid && now_snap->c.valid && now_snap->c.instructions > a->c.instructions) {
                /* progress: giga-instructions retired */
                double gi = (double)(now_snap->c.instructions - a->c.instructions) / 1e9;
                signature(a, now_snap, gi, false, 0, NAN, NAN);
        } else {
                double dt = now_snap->t - a->t;
                double f = mean_khz(a, now_snap);
                if (isfinite(f) && dt > 0) {
                        M.app_ft += f * dt;
                        M.app_tt += dt;
                }
        }
        M.tg_s0 = *now_snap;
}

static void enter_time_guided(const char *why)
{
        if (M.time_guided)
                return;
        M.time_guided = true;
        take(&M.tg_s0);
        M.tg_t0 = M.tg_s0.t;
        char m[200];
        if (snprintf(m, sizeof(m), "time-guided (%s)%s", why,
                     M.ctr.fd_instr >= 0 ? ": progress measured in instructions"
                     : M.pol_on ? ": no progress measure without hardware counters, the frequency stays"
                                  " where the policy last set it"
                                : "") >= (int)sizeof(m))
                m[sizeof(m) - 2] = '~'; /* cut: said so */
        say_event("mode", 1, m);
}

static bool mgr_enter(void)
{
        if (!M.lock_needed)
                return true;
        return !__atomic_exchange_n(&mgr_lock, 1, __ATOMIC_ACQUIRE);
}

static void mgr_leave(void)
{
        if (M.lock_needed)
                __atomic_store_n(&mgr_lock, 0, __ATOMIC_RELEASE);
}

void jl_rt_manage_event(uint32_t event_id)
{
        if (!jl_rt_managing() || !mgr_enter())
                return;
        M.events++;
        if ((M.events & 1023u) == 0) {
                double t = now_s();
                double rate = (double)(M.events - M.rate_ev0) / (t - M.rate_t0);
                M.rate_t0 = t;
                M.rate_ev0 = M.events;
                if (!M.dyn_off && rate > M.cfg.max_call_rate) {
                        char m[160];
                        snprintf(m, sizeof(m),
                                 "%.0f MPI calls/s > %.0f: loop detection would cost more than it "
                                 "saves",
                                 rate, M.cfg.max_call_rate);
                        loop_end();
                        M.dyn_off = true;
                        enter_time_guided(m);
                } else if (!M.in_loop && !M.time_guided && t - M.last_loop_t > M.cfg.loop_wait_ms / 1000.0) {
                        char m[96];
                        snprintf(m, sizeof(m), "no loop for %u ms", M.cfg.loop_wait_ms);
                        enter_time_guided(m);
                }
                if (M.time_guided && t - M.tg_s0.t >= M.cfg.period_ms / 1000.0) {
                        snap s;
                        take(&s);
                        time_guided_tick(&s);
                }
        }
        if (M.dyn_off || !M.dyn) {
                mgr_leave();
                return;
        }
        jl_dynais_loop l;
        jl_dynais_state st = jl_dynais_push(M.dyn, event_id, &l);
        /* this event broke the loop of level 0 (an end reports the ended loop's fields, an end-new-loop the
         * new one's); when a level above speaks, level 0's state after the event tells */
        if (l.level == 0 && (st == JL_DYNAIS_END_LOOP || st == JL_DYNAIS_END_NEW_LOOP)) {
                loop_end();
                if (st == JL_DYNAIS_END_LOOP)
                        l.size = 0;
        }
        if (l.level != 0)
                jl_dynais_level(M.dyn, 0, &l);
        if (l.size == 0) {
                if (M.in_loop)
                        loop_end();
        } else if (!M.in_loop || l.id != M.loop_id || l.size != M.loop_size) {
                loop_end();
                M.in_loop = true;
                M.loop_id = l.id;
                M.loop_size = l.size;
                M.loop_iters = M.loop_iters0 = l.iterations;
                M.loop_pos = 0;
                M.loop_pt = M.loop_ft = M.loop_tt = 0;
                take(&M.loop_s0);
                if (M.time_guided) {
                        M.time_guided = false;
                        say_event("mode", 0, "loop-guided: a loop was found");
                }
                if (jl_rt_verbose >= 3)
                        jl_rt_say("new loop %08x:%u:0 after %llu iterations", l.id, l.size,
                                  (unsigned long long)l.iterations);
                M.win_open = false;
        } else if (l.iterations > M.loop_iters) {
                M.loop_pos = 0;
                iteration(l.iterations);
        } else
                M.loop_pos++;
        mgr_leave();
}

void jl_rt_manage_period(void)
{
        if (!jl_rt_managing() || !mgr_enter())
                return;
        snap s;
        take(&s);
        time_guided_tick(&s);
        mgr_leave();
}

/* The node's coefficient file (`joule learn`): $JOULE_COEFFS_DIR (else the default directory)/NODE.coeffs,
 * NODE from jouled's page (else the host name). Missing or invalid: one line at JOULE_VERBOSE >= 1, and the
 * model-free defaults. */
static void load_coeffs(void)
{
        char node[64] = "", path[4096], why[256] = "";
        jl_shm_page pg;
        if (M.connected && M.shm.page && jl_shm_read(M.shm.page, &pg) && pg.node[0])
                snprintf(node, sizeof(node), "%.63s", pg.node);
        if (!node[0] && gethostname(node, sizeof(node) - 1) < 0)
                node[0] = '\0';
        node[sizeof(node) - 1] = '\0';
        const char *dir = getenv("JOULE_COEFFS_DIR");
        if (!dir || !*dir)
                dir = JL_COEFFS_DIR_DEFAULT;
        if (!jl_coeffs_node_valid(node)) {
                if (jl_rt_verbose >= 1)
                        jl_rt_say("no coefficient file: the node's name \"%s\" is not one a file carries; "
                                  "model-free defaults",
                                  node);
                return;
        }
        snprintf(path, sizeof(path), "%s/%s.coeffs", dir, node);
        FILE *f = fopen(path, "re");
        if (!f) {
                int e = errno;
                if (jl_rt_verbose >= 1)
                        jl_rt_say(
                            "no coefficient file %s (%s): model-free defaults (an admin runs joule learn)",
                            path, strerror(e));
                return;
        }
        size_t cap = 1u << 22, len = 0;
        char *text = malloc(cap);
        if (text) {
                len = fread(text, 1, cap, f);
                if (ferror(f) || len == cap)
                        len = 0, snprintf(why, sizeof(why), "unreadable or larger than 4 MiB");
        }
        fclose(f);
        int r = -ENOMEM;
        if (text && len > 0)
                r = jl_coeffs_parse(text, len, node, &M.coeffs, why, sizeof(why));
        else if (text)
                r = -EINVAL;
        free(text);
        if (r < 0) {
                if (jl_rt_verbose >= 1)
                        jl_rt_say("coefficient file %s is not used (%s): model-free defaults", path,
                                  why[0] ? why : strerror(-r));
                return;
        }
        M.have_coeffs = true;
        if (jl_rt_verbose >= 2)
                jl_rt_say(
                    "coefficients of %s from %s: power curve %.2f W static, V(f_min)/V(f_max) %.3f; %zu "
                    "counter pairs",
                    M.coeffs.node, M.coeffs.date, M.coeffs.curve.static_w, M.coeffs.curve.vmin_ratio,
                    M.coeffs.npairs);
}

void jl_rt_manage_start(bool mpi, const cpu_set_t *cpus)
{
        char why[1024];
        int bad = jl_rt_config_parse(NULL, &M.cfg, why, sizeof(why));
        if (bad)
                jl_rt_say("%s", why);
        M.user.fd = -1;
        M.mpi = mpi;
        M.lock_needed = jl_rt_threaded(); /* known before MPI_Init returns (MPI_Init_thread's provided) */
        M.cpus = *cpus;
        M.ncpus = CPU_COUNT(&M.cpus);
        M.phase = JL_RT_PHASE_UNKNOWN;
        int first = -1;
        for (int c = 0; c < CPU_SETSIZE && first < 0; c++)
                if (CPU_ISSET(c, &M.cpus))
                        first = c;
        int n = first >= 0 ? jl_rt_cpufreq_list(first, M.freqs, JL_RT_FREQS_MAX) : -ENOENT;
        M.nfreqs = n > 0 ? (size_t)n : 0;
        if (first < 0 || jl_rt_cpufreq_max(first, &M.nominal_khz) < 0)
                M.nominal_khz = M.nfreqs ? M.freqs[M.nfreqs - 1] : 0;

        char sockwhy[256] = "";
        int r = jl_rt_report_connect();
        if (r == 0)
                r = jl_rt_shm_open(jl_client_socket_path(NULL), &M.shm, sockwhy, sizeof(sockwhy));
        M.connected = r == 0;
        select_gpus(true);
        if (!M.connected && (M.cfg.policy != JL_RT_MONITORING || jl_rt_verbose >= 1))
                jl_rt_say("jouled is not reachable at %s (%s): %s", jl_client_socket_path(NULL),
                          sockwhy[0] ? sockwhy : strerror(-r),
                          M.cfg.policy != JL_RT_MONITORING ? "the program runs unmanaged"
                                                           : "no power readings");
        if (M.cfg.report_path[0]) { /* named as jouled names the node, else by the host's short name */
                char host[64] = "";
                if (M.connected && M.shm.page) {
                        jl_shm_page pg;
                        if (jl_shm_read(M.shm.page, &pg))
                                snprintf(host, sizeof(host), "%.*s", (int)sizeof(pg.node), pg.node);
                }
                if (!host[0] && gethostname(host, sizeof(host) - 1) == 0) {
                        char *dot = strchr(host, '.');
                        if (dot)
                                *dot = '\0';
                }
                if (!host[0] || strchr(host, '/'))
                        snprintf(host, sizeof(host), "localhost");
                if (jl_rt_userfile_open(&M.user, M.cfg.report_path, host, why, sizeof(why)) < 0)
                        jl_rt_say("%s: no report file; the program runs on", why);
        }
        /* an MPI step's node master counts per CPU of the node's ranks' CPUs; a program without MPI is its
         * own step: its process and threads, with the processes it starts (inherit), which every process
         * of a `make -j` would otherwise multiply by CPUs x events fds */
        jl_rt_counters_open_step(&M.ctr, mpi ? &M.cpus : NULL);

        jl_rt_decision d;
        if (M.cfg.policy != JL_RT_MONITORING && M.nfreqs == 0) {
                jl_rt_say("no cpufreq on this node: %s cannot change frequencies; monitoring only",
                          jl_rt_policy_name(M.cfg.policy));
                M.cfg.policy = JL_RT_MONITORING;
        }
        if (M.cfg.policy != JL_RT_MONITORING && !M.connected)
                M.cfg.policy = JL_RT_MONITORING;
        M.def_khz = M.cfg.cpufreq_khz ? M.cfg.cpufreq_khz : M.nominal_khz;
        if (M.cfg.policy == JL_RT_MIN_TIME && !M.cfg.cpufreq_khz && M.nfreqs) {
                size_t i = jl_rt_freq_index_up(M.freqs, M.nfreqs, M.nominal_khz);
                M.def_khz = M.freqs[i >= 3 ? i - 3 : 0];
        }
        unsigned long learn_khz = 0;
        if (M.cfg.learning >= 0) { /* EAR's learning phase: one P-state for the whole run, no policy */
                if (M.nfreqs && M.connected) {
                        size_t top = jl_rt_freq_index_up(M.freqs, M.nfreqs, M.nominal_khz);
                        learn_khz =
                            M.freqs[(size_t)M.cfg.learning <= top ? top - (size_t)M.cfg.learning : 0];
                } else
                        jl_rt_say("JOULE_LEARNING=%d: %s: monitoring only", M.cfg.learning,
                                  M.nfreqs ? "jouled is not reachable" : "no cpufreq on this node");
                M.cfg.policy = JL_RT_MONITORING;
        }
        if (M.cfg.policy != JL_RT_MONITORING)
                load_coeffs();
        if (jl_rt_policy_init(&M.pol, M.cfg.policy, M.cfg.th, M.freqs, M.nfreqs, M.def_khz, &d) == 0) {
                if (M.have_coeffs)
                        jl_rt_policy_set_model(&M.pol, &M.coeffs.curve, M.coeffs.npairs ? &M.coeffs : NULL);
                M.pol_on = M.cfg.policy != JL_RT_MONITORING;
                M.def_khz = M.pol.def_khz ? M.pol.def_khz : M.def_khz;
        }
        if (mpi && jl_dynais_new(JL_DYNAIS_WINDOW_DEFAULT, JL_DYNAIS_LEVELS_DEFAULT, &M.dyn) < 0)
                M.dyn = NULL;
        take(&M.app_s0);
        M.last_loop_t = M.rate_t0 = M.app_s0.t;
        if (!mpi) {
                M.time_guided = true;
                M.tg_s0 = M.app_s0;
        }
        if (jl_rt_verbose >= 2) {
                char m[200];
                snprintf(m, sizeof(m),
                         "%s th %.3f, default %lu kHz, %zu frequencies, %d CPUs, counters %s (FLOPs %s, "
                         "memory %s, scope %s)",
                         jl_rt_policy_name(M.cfg.policy), M.cfg.th, M.def_khz, M.nfreqs, M.ncpus,
                         M.ctr.fd_instr >= 0 ? "yes" : "none", M.ctr.nfp ? "yes" : "none",
                         M.ctr.nmem ? "yes" : "none", jl_rt_ctr_scope_name(M.ctr.scope));
                jl_rt_say("%s", m);
                jl_rt_say("counters: %s; FLOPs: %s; memory: %s", M.ctr.scope_what, M.ctr.fp_what,
                          M.ctr.mem_what);
        }
        __atomic_store_n(&M.on, true, __ATOMIC_RELEASE);
        if (M.pol_on)
                apply(&d);
        if (learn_khz) {
                char m[128];
                snprintf(m, sizeof(m), "learning run at P-state %d: %lu kHz for the whole run",
                         M.cfg.learning, learn_khz);
                jl_rt_decision ld = {
                    .set = true, .khz = learn_khz, .kind = "learning", .value = (double)learn_khz};
                snprintf(ld.message, sizeof(ld.message), "%s", m);
                apply(&ld);
        }
        if (!mpi && M.pol_on && M.ctr.fd_instr < 0)
                say_event(
                    "mode", 1,
                    "time-guided: no progress measure without hardware counters, the frequency stays at "
                    "the default");
}

void jl_rt_manage_fini(void)
{
        if (!jl_rt_managing())
                return;
        /* no other thread is inside: wait for one that is (bounded) */
        for (int i = 0; i < 1000000 && __atomic_load_n(&mgr_lock, __ATOMIC_ACQUIRE); i++)
                ;
        __atomic_store_n(&M.on, false, __ATOMIC_RELEASE);
        loop_end();
        snap b;
        take(&b);
        double dt = b.t - M.app_s0.t, f = M.app_tt > 0 ? M.app_ft / M.app_tt : mean_khz(&M.app_s0, &b);
        jl_rt_app_record a = {.policy_th = M.cfg.policy == JL_RT_MONITORING ? NAN : M.cfg.th,
                              .time_s = dt,
                              .avg_power_w = power_between(&M.app_s0, &b, 0),
                              .pck_power_w = power_between(&M.app_s0, &b, 1),
                              .dram_power_w = power_between(&M.app_s0, &b, 2),
                              .avg_cpufreq_khz = isfinite(f) ? (uint64_t)llround(f) : 0,
                              .def_cpufreq_khz = M.def_khz,
                              .cpi = jl_rt_counts_cpi(&M.app_s0.c, &b.c),
                              .tpi = jl_rt_counts_tpi(&M.app_s0.c, &b.c),
                              .gbs = jl_rt_counts_gbs(&M.app_s0.c, &b.c, dt),
                              .gflops = jl_rt_counts_gflops(&M.app_s0.c, &b.c, dt)};
        a.energy_j = isfinite(a.avg_power_w) ? a.avg_power_w * dt : NAN;
        snprintf(a.app_name, sizeof(a.app_name), "%s", M.cfg.app_name);
        snprintf(a.policy, sizeof(a.policy), "%s", jl_rt_policy_name(M.cfg.policy));
        snprintf(a.tag, sizeof(a.tag), "%s", M.cfg.tag);
        int r = jl_rt_report_app(&a);
        user_write(jl_rt_userfile_app(&M.user, &a));
        if (jl_rt_verbose >= 2)
                jl_rt_say("application %s: policy %s th %.3f, %.3f s, %.2f J, %.2f W (package %.2f W, DRAM "
                          "%.2f W), "
                          "%llu kHz (default %llu kHz), CPI %.3f",
                          a.app_name, a.policy, a.policy_th, a.time_s, a.energy_j, a.avg_power_w,
                          a.pck_power_w, a.dram_power_w, (unsigned long long)a.avg_cpufreq_khz,
                          (unsigned long long)a.def_cpufreq_khz, a.cpi);
        if (r == -EOPNOTSUPP && jl_rt_verbose >= 3)
                jl_rt_say("(the application record was not stored: this jouled takes no runtime records)");
        /* the step's frequencies back to the default range (jouled also restores them at the step's end) */
        if (M.freq_changed && jl_rt_set_cpufreq(&M.cpus, 0) < 0 && jl_rt_verbose >= 1)
                jl_rt_say("jouled did not restore the default frequency range");
        jl_dynais_free(M.dyn);
        M.dyn = NULL;
        jl_coeffs_free(&M.coeffs);
        M.have_coeffs = false;
        jl_rt_counters_close(&M.ctr);
        jl_rt_shm_close(&M.shm);
        jl_rt_report_flush();
        size_t waiting, dropped, refused;
        jl_rt_report_stats(&waiting, &dropped, &refused);
        if ((waiting || dropped) && jl_rt_verbose >= 1)
                jl_rt_say("%zu records did not reach jouled (it was away until the end)%s",
                          waiting + dropped, M.cfg.report_path[0] ? "; they are in the report file" : "");
        if (refused && jl_rt_verbose >= 1)
                jl_rt_say("jouled refused %zu records sent late", refused);
        jl_rt_report_disconnect();
        jl_rt_userfile_close(&M.user);
}
