/* jouled.h - the node daemon's shared state and the interfaces between its services: the monitor (sampling,
 * shared-memory page, periodic records), the request handlers (local socket and control port), the job
 * steps, the persistent state, the /metrics endpoint and the sink that records go to. One mutex (lock)
 * guards everything mutable here; every critical section is short and does no blocking I/O except the
 * monitor's sysfs reads. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "config.h"
#include "cputopo.h"
#include "msg.h"
#include "sampler.h"
#include "shm.h"

/* Open job steps: at most JD_USER_STEPS_MAX of them declared by users for themselves (accounting only, and
 * node.user_steps_max per user), so that root (slurmd, an admin) always has JD_STEPS_MAX - JD_USER_STEPS_MAX
 * slots however many steps users open. */
#define JD_STEPS_MAX 128
#define JD_USER_STEPS_MAX 64
#define JD_TEMPS_MAX 64
#define JD_FREQS_MAX 256
#define JD_WATCH_MAX 4
/* The runtime's records a user's processes may send per step: JD_RT_RATE per second, bursts of JD_RT_BURST
 * (a flood would otherwise crowd the node's periodic records out of the sink's queue); root is not limited.
 */
#define JD_RT_RATE 200.0
#define JD_RT_BURST 2000.0

/* server.c: a limit on log lines that others can cause (clients' faults, users' own job steps): at most
 * JD_LOG_LINES_MAX per JD_LOG_WINDOW_NS; the first line of a later window is preceded by the count of the
 * lines left out ("WHERE: N more lines about ABOUT were left out of the log"; where may be NULL). The
 * caller serialises the calls. */
#define JD_LOG_LINES_MAX 50
#define JD_LOG_WINDOW_NS (10 * NSEC_PER_SEC)
typedef struct {
        uint64_t window_ns; /* CLOCK_MONOTONIC start of the current window; 0: none yet */
        unsigned lines;     /* logged in it */
        uint64_t left_out;  /* left out in it */
} jd_log_limit;
bool jd_log_limit_ok(jd_log_limit *l, const char *where, const char *about);

typedef struct {
        char name[JL_SHM_NAME_MAX];
        const char *provider; /* static string */
        uint64_t energy_uj;   /* since jouled started */
        double power_w;       /* latest interval */
        jl_scope scope;
        bool estimated;
        bool counted;    /* part of the node energy */
        unsigned gaps;   /* intervals too long to unwrap for certain (docs/metrics.md, "Gaps") */
        uint64_t gap_ns; /* their total length */
        bool has_util;   /* a GPU's utilisation (its "NAME/utilization" channel): the fields below */
        double util_gpu, util_mem;       /* latest, 0..1 (util_mem NAN: none) */
        double util_gpu_s, util_cover_s; /* ∫ util_gpu dt and the time covered, s (shm.h) */
        char gpu_uuid[JL_SHM_UUID_MAX];  /* a GPU's identity, from its energy channel (shm.h): "" unknown */
        char gpu_pci[JL_SHM_PCI_MAX];
        int32_t gpu_minor;            /* -1 unknown */
        char gpu_mig[JL_SHM_MIG_MAX]; /* its MIG instances' UUIDs, comma-separated (shm.h) */
} jd_domain;

/* What the latest sample said: copied out under the lock by readers (query, /metrics). */
typedef struct {
        uint64_t t_ns; /* CLOCK_MONOTONIC of the sample */
        uint64_t samples;
        uint64_t node_energy_uj;
        double node_power_w;
        const char *node_source; /* "node", "domains", "estimate", "none" */
        bool node_estimated;
        unsigned node_gaps;   /* gaps of the domains counted in the node energy */
        uint64_t node_gap_ns; /* their total length */
        size_t ndomains;
        jd_domain domains[JL_SHM_DOMAINS_MAX];
        size_t ntemps;
        struct {
                char name[JL_NAME_MAX];
                double c;
        } temps[JD_TEMPS_MAX];
        size_t nfreqs;
        struct {
                char cpu[16];
                double khz;
        } freqs[JD_FREQS_MAX];
} jd_snapshot;

typedef struct {
        char job_id[JL_MSG_NAME_MAX];
        int64_t step_id;
        char user[JL_MSG_NAME_MAX];
        uid_t uid;
        uint64_t cpumask[JL_CPU_MASK_WORDS]; /* the step's CPUs (every CPU when the begin named none) */
        uint64_t begin_us;                   /* realtime µs */
        uint64_t begin_energy_uj; /* node energy of this jouled instance at begin (or at restart) */
        uint64_t carried_uj;      /* energy accounted by an earlier instance before a restart */
        bool complete;            /* false: recovered after a restart, a gap is not measured */
        bool declared;            /* begun by root or node.admins (slurmd, an admin): the owner's frequency
                                   * rights come from it; false: a user's own step, accounting only */
        bool has_cpus;            /* the begin named the step's CPUs (the owner's CPU frequency rights) */
        /* processes whose end ends the step (JL_OP_WATCH_PID: `joule launch` and its command); persisted
         * with their start times so that a restarted jouled watches them again (a reused pid is not them) */
        double rt_tokens;      /* the runtime's records users may still send now (a token bucket) */
        uint64_t rt_refill_ns; /* CLOCK_MONOTONIC of its last refill; 0: never (full) */
        size_t nwatch;
        struct {
                pid_t pid;
                uint64_t start_ticks; /* /proc/PID/stat starttime */
                int fd;               /* pidfd; -1 when not open */
        } watch[JD_WATCH_MAX];
        pid_t share_leader;   /* share.c: the process that began the step (slurmstepd); 0 none */
        uint64_t share_uj;    /* share.c: the step's share of the node's energy so far */
        uint64_t share_ticks; /* share.c: CPU ticks of the leader's process tree at the last update */
} jd_step;

/* The cpufreq settings of a CPU before a step's first change of it (restored when the step ends). */
typedef struct {
        char job_id[JL_MSG_NAME_MAX];
        int64_t step_id;
        int cpu;
        char governor[32];         /* "": unknown (not written back) */
        uint64_t min_khz, max_khz; /* scaling_min_freq, scaling_max_freq */
        uint64_t setspeed_khz;     /* scaling_setspeed under the userspace governor; 0: none */
} jd_saved_freq;

typedef struct jd_sink jd_sink;
typedef struct jd_metrics jd_metrics;

typedef struct jouled {
        /* set once at start */
        const char *config_path; /* -c FILE; NULL: $JOULE_CONFIG or the default */
        int64_t rt_offset_ns;    /* realtime = monotonic + offset */
        uint64_t start_mono_ns;
        int stop_fd; /* eventfd: readable once the daemon stops */

        pthread_mutex_t lock; /* guards everything below */
        joule_config cfg;     /* the current configuration (reloadable keys change under the lock) */
        uint64_t period_ns, sample_ns;
        jl_sampler *sampler;
        jd_snapshot snap;
        jl_shm_page *shm;
        int shm_fd;    /* read-write memfd */
        int shm_ro_fd; /* the read-only descriptor handed to clients */

        /* the periodic record being accumulated */
        bool rec_open;
        uint64_t rec_start_ns;
        uint64_t rec_start_node_uj;
        uint64_t rec_start_gap_ns;
        uint64_t rec_start_dom_uj[JL_SHM_DOMAINS_MAX];
        double rec_temp_max;
        double rec_freq_sum;
        uint64_t rec_freq_n;
        uint64_t records_sent;
        bool wrap_warned;

        /* persistent state (state.c) */
        uint64_t next_seq;
        uint64_t seq_reserved; /* every seq below it may have been used: persisted before use */
        jd_step steps[JD_STEPS_MAX];
        size_t nsteps;
        jd_saved_freq *saved; /* what the open steps' frequency changes will restore */
        size_t nsaved, saved_cap;
        int watch_epfd; /* epoll of the watched processes' pidfds (0: not yet; in the local socket's loop) */
        uint64_t share_last_energy_uj; /* share.c: node energy at the last update */

        uid_t admin_uids[64]; /* node.admins resolved at start and at each reload */
        size_t nadmins;

        int state_lock_fd; /* node.state_dir/lock, held while jouled runs */
        int spool_lock_fd; /* node.spool + ".lock" (node.dbd set), held while jouled runs */

        jd_sink *sink;
        jd_metrics *metrics;
        jd_log_limit step_log; /* "job ... began/ended" lines of the steps users open for themselves */
} jouled;

/* Copy a string into a fixed buffer, cut to fit (names from providers and the wire are bounded anyway). */
static inline void jd_copy(char *dst, size_t size, const char *src)
{
        size_t n = strnlen(src, size - 1);
        memcpy(dst, src, n);
        dst[n] = '\0';
}

static inline uint64_t jd_realtime_us(const jouled *d, uint64_t mono_ns)
{
        return (uint64_t)((int64_t)mono_ns + d->rt_offset_ns) / 1000;
}

/* monitor.c */
int jd_monitor_open(jouled *d, char *err, size_t errlen);
void jd_monitor_close(jouled *d);
void *jd_monitor_thread(void *userdata);
/* Take a sample now (lock held): publishes the shm page and the snapshot. */
void jd_sample_locked(jouled *d);
void jd_record_restart_locked(jouled *d); /* open the next record window at the latest sample */

/* state.c: the state directory (node.state_dir). All called with the lock held (or before threads run). */
/* Create and lock PATH (a POSIX write lock, held until *ret_fd is closed; PATH holds our pid). -EBUSY with
 * the holder's pid in err when another process holds it. what names the locked thing in err. */
int jd_lock_take(const char *path, const char *what, int *ret_fd, char *err, size_t errlen);
/* Lock node.state_dir (jd_lock_take), then read the sequence number and the open steps. */
int jd_state_load(jouled *d, char *err, size_t errlen);
/* Take the next sequence number, reserving a new block on disk first when needed. */
int jd_state_next_seq(jouled *d, uint64_t *ret_seq);
/* Rewrite the open steps file (atomic rename). */
int jd_state_save_steps(jouled *d);
/* Rewrite node.state_dir/cpufreq: the saved settings of the CPUs that open steps changed (fsync'd). */
int jd_state_save_freqs(jouled *d);

/* ops.c: request handling, shared by the local socket and the control port. */
typedef struct {
        uid_t uid;
        gid_t gid;
        pid_t pid;     /* 0 when unknown (control port) */
        bool remote;   /* control port (MUNGE-authenticated) */
        char desc[96]; /* "pid 123 uid 1000" / "127.0.0.1:5555 uid 0": for the log */
} jd_peer;

/* Handle one request. Fills rep (rep->text points into *ret_text, malloc'd, caller frees); sets
 * *ret_send_fd to a descriptor to pass with the reply (GET_SHM) or -1. Never fails: errors go in rep->err.
 */
void jd_handle_request(jouled *d, const jd_peer *peer, const jl_msg_request *req, jl_msg_reply *rep,
                       char **ret_text, int *ret_send_fd);
/* The watched processes (JL_OP_WATCH_PID): start watching on epfd (the local socket's loop calls it once at
 * start: the steps of an earlier run are watched again, those whose process is gone end now, and saved
 * frequencies of steps no longer open are restored), and handle the pidfds that became readable. */
void jd_watch_start(jouled *d, int epfd);
void jd_watch_reap(jouled *d);
/* The node status as JSON (QUERY); malloc'd. */
char *jd_query_json(jouled *d);
bool jd_user_is_admin(jouled *d, uid_t uid);

/* server.c: the epoll loops of the local socket and the control port. */
typedef struct jd_server jd_server;
int jd_server_open_local(jouled *d, const char *path, jd_server **ret, char *err, size_t errlen);
int jd_server_open_control(jouled *d, const char *listen, jd_server **ret, char *err, size_t errlen);
void *jd_server_thread(void *userdata);
void jd_server_free(jd_server *s);

/* sink.c: where records and job messages go, in sequence order, without ever blocking the caller: a queue
 * drained by the sink's own thread into the store (database.url; node.dbd absent) or into the reporter
 * (node.dbd set). */
int jd_sink_open(const joule_config *cfg, jd_sink **ret, char *err, size_t errlen);
int jd_sink_record(jd_sink *s, const jl_msg_record *m);
int jd_sink_job(jd_sink *s, const jl_msg_job *m);
int jd_sink_rt(jd_sink *s, const jl_msg_rt *m); /* a runtime record (applications, loops, events) */
/* For the status: messages waiting, messages delivered, the last error ("" when none; copied). */
void jd_sink_status(jd_sink *s, uint64_t *ret_queued, uint64_t *ret_delivered, char *err, size_t errlen);
const char *jd_sink_kind(const jd_sink *s); /* "store" or "dbd" */
/* The highest sequence number already handed over in an earlier run (the reporter's spool); 0: none. */
uint64_t jd_sink_last_seq(jd_sink *s);
/* Log the reporter's connection changes once each (monitor thread, outside the lock). */
void jd_sink_log_changes(jd_sink *s);
/* Stop: deliver what is queued, then free. The store gets at most 0.5 s (none when its last batch failed),
 * then what it has not taken goes to node.state_dir/pending; the dbd gets at most timeout_ms while it is
 * connected and acknowledges something every second (the rest stays in the spool). */
void jd_sink_close(jd_sink *s, unsigned timeout_ms);

/* metrics.c: /metrics (libmicrohttpd, its own thread). */
int jd_metrics_start(jouled *d, const char *listen, jd_metrics **ret, char *err, size_t errlen);
void jd_metrics_stop(jd_metrics *m);

/* Whether a socket address (struct sockaddr) is on the loopback: 127.0.0.0/8, ::1, ::ffff:127.x. */
bool jd_addr_is_loopback(const void *sockaddr);
/* Parse "host:port" (IPv4 dotted, "[v6]" or a name resolved now) into a socket address. */
int jd_parse_listen(const char *s, void *ret_sockaddr, unsigned *ret_len, char *err, size_t errlen);

/* share.c: each step's share of the node's energy by the CPU time of its processes (docs/slurm.md). Lock
 * held. jd_share_update after every sample; jd_share_begin when a declared step begins (leader: the
 * requesting process, 0 for none). A step whose leader is alive at its end gets its share as its energy. */
void jd_share_update(jouled *d);
void jd_share_begin(jouled *d, jd_step *st, pid_t leader);
