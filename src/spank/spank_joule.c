/* spank_joule.c - the Slurm SPANK plugin spank_joule.so (docs/slurm.md): the --joule* options of srun,
 * sbatch and salloc; on every node of every step (srun steps, batch, extern; on or off) a job step begin
 * and end at jouled with the job id, step id, user and the step's CPUs; with --joule=on the loader
 * prepended to LD_PRELOAD and the JOULE_* environment from the options and the `policies` section. It never
 * makes a job fail on joule's account: every problem is one line on the job's stderr (or slurmd's log). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/spank.h>

#include "client.h"
#include "config.h"
#include "config-joule.h"
#include "macro.h"
#include "fileio.h"
#include "parse.h"
#include "policy.h"

SPANK_PLUGIN(joule, 1);

#define JOULE_TIMEOUT_MS 500 /* per request to jouled: jouled down or hung adds at most about 1 s */

/* The plugin's state in one process (srun, sbatch, or one slurmstepd: one step on one node). */
static struct {
        bool default_on;
        char config[512];     /* config=FILE; "" the default search */
        char loader[512];     /* loader=PATH: the file LD_PRELOAD names */
        char libdir[512];     /* libdir=DIR: JOULE_LIBDIR for the loader; "" its compiled-in default */
        char coeffs_dir[512]; /* runtime.coefficients_dir: JOULE_COEFFS_DIR ("" the runtime's default) */
        jl_spank_opts opts;
        char option_error[256]; /* a bad value seen in the remote context (srun refused it already) */
        bool begun;             /* jouled accepted this step's begin */
        char job_id[32];
        int64_t step_id;
        char socket[128]; /* a unix socket path: at most 108 bytes */
        char notice[768]; /* lines for the job's stderr, written by the first task */
} g = {.opts = {.enabled = -1}};

static void notice(const char *fmt, ...) _printf_(1, 2);
static void notice(const char *fmt, ...)
{
        size_t n = strlen(g.notice);
        if (n + 2 >= sizeof(g.notice))
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g.notice + n, sizeof(g.notice) - n - 1, fmt, ap);
        va_end(ap);
        n = strlen(g.notice);
        g.notice[n] = '\n';
        g.notice[n + 1] = '\0';
}

static int opt_cb(const char *name, const char *value, int remote)
{
        char why[256];
        int r = jl_spank_parse_option(&g.opts, name, value, why, sizeof(why));
        if (r == 0)
                return 0;
        if (!remote) {
                /* srun/sbatch: refuse the command line, naming the option, as Slurm does for its own */
                slurm_error("joule: %s", why);
                return -1;
        }
        /* slurmstepd: never fail the step; say so once on the job's stderr */
        snprintf(g.option_error, sizeof(g.option_error), "%s", why);
        return 0;
}

static int cb_on(int v, const char *a, int r)
{
        return opt_cb("joule", a, r);
}
static int cb_policy(int v, const char *a, int r)
{
        return opt_cb("joule-policy", a, r);
}
static int cb_th(int v, const char *a, int r)
{
        return opt_cb("joule-policy-th", a, r);
}
static int cb_freq(int v, const char *a, int r)
{
        return opt_cb("joule-cpufreq", a, r);
}
static int cb_verbose(int v, const char *a, int r)
{
        return opt_cb("joule-verbose", a, r);
}
static int cb_tag(int v, const char *a, int r)
{
        return opt_cb("joule-tag", a, r);
}
static int cb_learning(int v, const char *a, int r)
{
        return opt_cb("joule-learning", a, r);
}

static struct spank_option options[] = {
    {"joule", "on|off", "joule: manage the job's energy with joule's runtime (accounted either way)", 2, 0,
     cb_on},
    {"joule-policy", "NAME", "joule: energy policy: monitoring, min_energy or min_time", 1, 0, cb_policy},
    {"joule-policy-th", "X", "joule: the policy's threshold (0..1)", 1, 0, cb_th},
    {"joule-cpufreq", "KHZ", "joule: the default CPU frequency in kHz (authorized users)", 1, 0, cb_freq},
    {"joule-verbose", "N", "joule: verbosity of joule's runtime (0..4)", 1, 0, cb_verbose},
    {"joule-tag", "TAG", "joule: a tag stored with the job's accounting", 1, 0, cb_tag},
    {"joule-learning", "N", "joule: a learning run at P-state N (authorized users)", 1, 0, cb_learning},
    SPANK_OPTIONS_TABLE_END,
};

static void parse_args(int ac, char **av)
{
        for (int i = 0; i < ac; i++) {
                const char *a = av[i];
                if (strcmp(a, "default=on") == 0)
                        g.default_on = true;
                else if (strcmp(a, "default=off") == 0)
                        g.default_on = false;
                else if (strncmp(a, "config=", 7) == 0)
                        snprintf(g.config, sizeof(g.config), "%s", a + 7);
                else if (strncmp(a, "loader=", 7) == 0)
                        snprintf(g.loader, sizeof(g.loader), "%s", a + 7);
                else if (strncmp(a, "libdir=", 7) == 0)
                        snprintf(g.libdir, sizeof(g.libdir), "%s", a + 7);
                else
                        slurm_error(
                            "joule: plugstack.conf: unknown argument '%s' (default=on|off, config=FILE, "
                            "loader=PATH, libdir=DIR) ignored",
                            a);
        }
        if (!g.loader[0])
                snprintf(g.loader, sizeof(g.loader), "%s", JOULE_LOADER_PATH);
}

int slurm_spank_init(spank_t sp, int ac, char **av)
{
        parse_args(ac, av);
        spank_context_t ctx = spank_context();
        if (ctx == S_CTX_LOCAL || ctx == S_CTX_REMOTE || ctx == S_CTX_ALLOCATOR)
                for (struct spank_option *o = options; o->name; o++)
                        if (spank_option_register(sp, o) != ESPANK_SUCCESS)
                                slurm_error("joule: cannot register --%s", o->name);
        return 0;
}

/* The cores of the step as a list ("0-3,8"): Slurm's abstract core ids of the step on this node (the job's
 * for the batch and extern steps); cpus_to_mask makes CPUs of them. */
static void step_cpus(spank_t sp, char *buf, size_t len)
{
        char *cores = NULL;
        buf[0] = '\0';
        if (spank_get_item(sp, S_STEP_ALLOC_CORES, &cores) != ESPANK_SUCCESS || !cores || !*cores)
                if (spank_get_item(sp, S_JOB_ALLOC_CORES, &cores) != ESPANK_SUCCESS || !cores)
                        return;
        snprintf(buf, len, "%s", cores);
}

/* The online CPUs' places (topology/physical_package_id, core_id) from sysfs, malloc'd; 0 or -errno. */
static int read_topology(jl_spank_cpu_topo **ret, size_t *ret_n)
{
        enum { MAXCPU = JL_MSG_CPUMASK_BYTES * 8 };
        uint64_t online[MAXCPU / 64] = {0};
        char buf[4096];
        if (read_text_path("/sys/devices/system/cpu/online", buf, sizeof(buf)) < 0)
                return -ENOENT;
        int n = parse_cpu_list(buf, online, MAXCPU);
        if (n <= 0)
                return -EINVAL;
        jl_spank_cpu_topo *t = calloc((size_t)n, sizeof(*t));
        if (!t)
                return -ENOMEM;
        size_t k = 0;
        for (int c = 0; c < MAXCPU && k < (size_t)n; c++) {
                if (!((online[c / 64] >> (c % 64)) & 1))
                        continue;
                char path[128];
                int64_t pkg = -1, core = -1;
                snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/topology/physical_package_id",
                         c);
                (void)read_i64_path(path, &pkg);
                snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/topology/core_id", c);
                (void)read_i64_path(path, &core);
                t[k++] = (jl_spank_cpu_topo){.cpu = c,
                                             .package = pkg >= 0 && pkg < INT32_MAX ? (int)pkg : -1,
                                             .core = core >= 0 && core < INT32_MAX ? (int)core : -1};
        }
        *ret = t;
        *ret_n = k;
        return 0;
}

/* The step's cores (Slurm's abstract core ids) as the CPUs jouled knows: through the node's topology, or,
 * when it is unknown, the core ids taken as CPU numbers (right on nodes with one thread per core whose CPUs
 * are numbered socket by socket). */
static int cpus_to_mask(const char *s, jl_msg_request *req)
{
        uint64_t mask[JL_MSG_CPUMASK_BYTES / 8] = {0};
        jl_spank_cpu_topo *topo = NULL;
        size_t ntopo = 0;
        int n = -ENOENT;
        if (read_topology(&topo, &ntopo) == 0)
                n = jl_spank_cores_to_cpus(s, topo, ntopo, mask, JL_MSG_CPUMASK_BYTES * 8);
        free(topo);
        if (n == -ENOENT) {
                memset(mask, 0, sizeof(mask));
                n = parse_cpu_list(s, mask, JL_MSG_CPUMASK_BYTES * 8);
        }
        if (n <= 0)
                return n < 0 ? n : -EINVAL;
        req->cpumask_len = 0;
        jl_msg_request_add_cpumask(req, mask, JL_MSG_CPUMASK_BYTES * 8);
        return 0;
}

/* One request to jouled; on failure the words in why. */
static int jouled_request(jl_msg_request *req, jl_client_reply *rep, char *why, size_t whylen)
{
        char w[256] = "";
        int r = jl_client_request(g.socket, req, JOULE_TIMEOUT_MS, rep, w, sizeof(w));
        if (r < 0) {
                if (r == -ENOENT || r == -ECONNREFUSED)
                        snprintf(why, whylen, "jouled is not running (%s)", g.socket);
                else
                        snprintf(why, whylen, "jouled at %s: %s%s%s", g.socket, strerror(-r),
                                 w[0] ? ": " : "", w);
                return r;
        }
        if (rep->err < 0) {
                snprintf(why, whylen, "jouled refused: %s",
                         rep->message[0] ? rep->message : strerror(-rep->err));
                r = rep->err;
                jl_client_reply_free(rep);
                return r;
        }
        return 0;
}

static void set_env(spank_t sp, const char *name, const char *value)
{
        if (spank_setenv(sp, name, value, 1) != ESPANK_SUCCESS)
                notice("joule: cannot set %s in the job's environment", name);
}

static void setup_environment(spank_t sp, const jl_spank_env *e)
{
        char buf[8192], old[4000];
        /* the loader first, before what the user preloads (as EAR's plugin does) */
        if (spank_getenv(sp, "LD_PRELOAD", old, sizeof(old)) == ESPANK_SUCCESS && old[0])
                snprintf(buf, sizeof(buf), "%s:%s", g.loader, old);
        else
                snprintf(buf, sizeof(buf), "%s", g.loader);
        if (access(g.loader, R_OK) < 0)
                notice("joule: the runtime's loader %s is not readable here (%s); the job runs unmanaged",
                       g.loader, strerror(errno));
        else
                set_env(sp, "LD_PRELOAD", buf);
        set_env(sp, "JOULE_POLICY", e->policy);
        if (!isnan(e->th)) {
                snprintf(buf, sizeof(buf), "%g", e->th);
                set_env(sp, "JOULE_POLICY_TH", buf);
        }
        if (e->cpufreq_khz) {
                snprintf(buf, sizeof(buf), "%" PRIu64, e->cpufreq_khz);
                set_env(sp, "JOULE_CPUFREQ", buf);
        }
        snprintf(buf, sizeof(buf), "%u", e->verbose);
        set_env(sp, "JOULE_VERBOSE", buf);
        if (e->tag[0])
                set_env(sp, "JOULE_TAG", e->tag);
        if (e->learning >= 0) {
                snprintf(buf, sizeof(buf), "%d", e->learning);
                set_env(sp, "JOULE_LEARNING", buf);
        }
        set_env(sp, "JOULE_SOCKET", g.socket);
        if (g.coeffs_dir[0]) /* the node's learnt coefficients (joule learn) */
                set_env(sp, "JOULE_COEFFS_DIR", g.coeffs_dir);
        if (g.libdir[0])
                set_env(sp, "JOULE_LIBDIR", g.libdir);
}

/* The step id as sacct shows it: 0, 1, ..., batch, extern, interactive. */
static const char *step_name(uint32_t step, char buf[static 16])
{
        if (step == SLURM_BATCH_SCRIPT)
                return "batch";
        if (step == SLURM_EXTERN_CONT)
                return "extern";
        if (step == SLURM_INTERACTIVE_STEP)
                return "interactive";
        snprintf(buf, 16, "%" PRIu32, step);
        return buf;
}

/* slurmstepd, as root, once per step and node, after the options are known: the begin at jouled, then
 * the rights and the environment. */
int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
        if (spank_context() != S_CTX_REMOTE)
                return 0;
        uint32_t job = 0, step = 0;
        uid_t uid = 0;
        if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS ||
            spank_get_item(sp, S_JOB_STEPID, &step) != ESPANK_SUCCESS ||
            spank_get_item(sp, S_JOB_UID, &uid) != ESPANK_SUCCESS) {
                slurm_error("joule: cannot read the job's id, step or user from Slurm; not accounted");
                return 0;
        }
        char user[64];
        struct passwd *pw = getpwuid(uid);
        if (pw && strlen(pw->pw_name) < sizeof(user))
                snprintf(user, sizeof(user), "%s", pw->pw_name);
        else
                snprintf(user, sizeof(user), "%u", (unsigned)uid);

        joule_config cfg;
        char err[512] = "";
        if (joule_config_init(&cfg) < 0)
                return 0;
        if (joule_config_load(&cfg, g.config[0] ? g.config : NULL, err, sizeof(err)) < 0) {
                notice("joule: the configuration cannot be read (%s); the job runs with joule's defaults",
                       err);
                joule_config_free(&cfg);
                joule_config_init(&cfg);
        }
        snprintf(g.socket, sizeof(g.socket), "%s", jl_client_socket_path(cfg.node.socket));
        snprintf(g.coeffs_dir, sizeof(g.coeffs_dir), "%s",
                 cfg.runtime.coefficients_dir ? cfg.runtime.coefficients_dir : "");
        snprintf(g.job_id, sizeof(g.job_id), "%" PRIu32, job);
        g.step_id = (int64_t)step; /* batch, extern, interactive: Slurm's special ids, as slurm.h has them */

        /* the begin: every step, on or off */
        jl_msg_request req = {.op = JL_OP_JOB_BEGIN, .gpu = -1, .step_id = g.step_id};
        snprintf(req.job_id, sizeof(req.job_id), "%s", g.job_id);
        snprintf(req.user, sizeof(req.user), "%s", user);
        char cpus[1024], why[1024], name[16];
        step_cpus(sp, cpus, sizeof(cpus));
        if (cpus[0] && cpus_to_mask(cpus, &req) < 0)
                slurm_info("joule: the step's cores '%s' are not a CPU list; the step declares no CPUs",
                           cpus);
        jl_client_reply rep = {.fd = -1};
        int r = jouled_request(&req, &rep, why, sizeof(why));
        if (r < 0) {
                notice("joule: job %s step %s not accounted on this node: %s; it runs unmanaged", g.job_id,
                       step_name(step, name), why);
                slurm_info("joule: job %s step %" PRId64 " not accounted: %s", g.job_id, g.step_id, why);
        } else {
                g.begun = true;
                jl_client_reply_free(&rep);
        }

        if (g.option_error[0])
                notice("joule: %s; the option is ignored", g.option_error);
        jl_spank_env e;
        char refusal[512];
        if (jl_spank_resolve(&g.opts, &cfg, g.default_on, user, &e, refusal, sizeof(refusal)) > 0)
                notice("%s", refusal);
        /* a step jouled did not take has no frequency rights and nowhere to report: no runtime (which would
         * only wait on the same jouled at the program's start and end) */
        if (e.enabled && step != SLURM_EXTERN_CONT && g.begun)
                setup_environment(sp, &e);
        joule_config_free(&cfg);
        return 0;
}

/* The first task of the step on this node writes what the plugin has to say on the job's stderr. */
int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
        int local = -1;
        if (!g.notice[0] || spank_get_item(sp, S_TASK_ID, &local) != ESPANK_SUCCESS || local != 0)
                return 0;
        fputs(g.notice, stderr);
        fflush(stderr);
        return 0;
}

/* slurmstepd, as root, when the step ends on this node however it ends (normally, scancel, a time limit,
 * its processes killed): the end at jouled. */
int slurm_spank_exit(spank_t sp, int ac, char **av)
{
        if (spank_context() != S_CTX_REMOTE || !g.begun)
                return 0;
        jl_msg_request req = {.op = JL_OP_JOB_END, .gpu = -1, .step_id = g.step_id};
        snprintf(req.job_id, sizeof(req.job_id), "%s", g.job_id);
        jl_client_reply rep = {.fd = -1};
        char why[1024];
        if (jouled_request(&req, &rep, why, sizeof(why)) < 0)
                slurm_error("joule: job %s step %" PRId64 ": the end was not accounted: %s", g.job_id,
                            g.step_id, why);
        else
                jl_client_reply_free(&rep);
        g.begun = false;
        return 0;
}

/* The value of "key":"..." or "key":N after p in jouled's QUERY JSON (its own output: no escapes in ids). */
static const char *json_field(const char *p, const char *key, char *buf, size_t len)
{
        char pat[64];
        snprintf(pat, sizeof(pat), "\"%s\":", key);
        const char *q = strstr(p, pat);
        if (!q)
                return NULL;
        q += strlen(pat);
        if (*q == '"')
                q++;
        size_t n = strcspn(q, "\",}");
        if (n >= len)
                return NULL;
        memcpy(buf, q, n);
        buf[n] = '\0';
        return q + n;
}

/* slurmd, as root, at the end of the job on this node (the job epilog): close every step of the job that
 * is still open at jouled, i.e. whose slurmstepd died without its exit (kill -9 of slurmstepd). */
int slurm_spank_job_epilog(spank_t sp, int ac, char **av)
{
        uint32_t job = 0;
        if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS)
                return 0;
        parse_args(ac, av); /* slurm_spank_init is not called in this context */
        joule_config cfg;
        char err[512];
        if (joule_config_init(&cfg) < 0)
                return 0;
        if (joule_config_load(&cfg, g.config[0] ? g.config : NULL, err, sizeof(err)) < 0) {
                joule_config_free(&cfg);
                joule_config_init(&cfg);
        }
        snprintf(g.socket, sizeof(g.socket), "%s", jl_client_socket_path(cfg.node.socket));
        joule_config_free(&cfg);

        jl_msg_request req = {.op = JL_OP_QUERY, .gpu = -1, .step_id = -1};
        jl_client_reply rep = {.fd = -1};
        char why[1024], jid[32];
        if (jouled_request(&req, &rep, why, sizeof(why)) < 0) {
                slurm_info("joule: job %" PRIu32 ": the job's open steps not looked for: %s", job, why);
                return 0;
        }
        snprintf(jid, sizeof(jid), "%" PRIu32, job);
        const char *p = rep.text ? strstr(rep.text, "\"jobs\":") : NULL;
        int64_t steps[64];
        size_t n = 0;
        char val[64], sval[64];
        while (p && n < ARRAY_SIZE(steps) && (p = json_field(p, "job_id", val, sizeof(val)))) {
                const char *q = json_field(p, "step_id", sval, sizeof(sval));
                int64_t s;
                if (!q)
                        break;
                p = q;
                if (strcmp(val, jid) == 0 && parse_i64(sval, &s) == 0)
                        steps[n++] = s;
        }
        jl_client_reply_free(&rep);
        for (size_t i = 0; i < n; i++) {
                jl_msg_request end = {.op = JL_OP_JOB_END, .gpu = -1, .step_id = steps[i]};
                snprintf(end.job_id, sizeof(end.job_id), "%s", jid);
                jl_client_reply r2 = {.fd = -1};
                if (jouled_request(&end, &r2, why, sizeof(why)) == 0) {
                        slurm_info("joule: job %s step %" PRId64 " was still open at the job's end: closed",
                                   jid, steps[i]);
                        jl_client_reply_free(&r2);
                }
        }
        return 0;
}
