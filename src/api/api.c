/* api.c - libjoule-api: the public functions of include/joule.h. joule_connect() asks jouled for its
 * shared-memory page (JL_OP_GET_SHM, the fd comes with SCM_RIGHTS) and maps it read-only; joule_energy()
 * reads it under the seqlock with no system call; the setters are one request each over the socket.
 * Connect and disconnect hold a mutex; readers announce themselves in a counter so that disconnect never
 * unmaps a page under a reader. Only joule_* is exported (visibility and the version script). */
#include "joule.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "config.h"
#include "macro.h"
#include "shm.h"
#include "timeutil.h"

#define API_EXPORT __attribute__((visibility("default")))

#define REQUEST_TIMEOUT_MS 10000 /* setting a frequency may wait on slow sysfs writes or NVML */
#define STALE_MIN_MS 3000        /* a page older than max(this, 10 samples) is stale */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(const jl_shm_page *) page;
static _Atomic unsigned readers;
static size_t page_len;
static char socket_path[108];             /* the socket of the last connect attempt (for the words) */
static _Atomic uint64_t stale_ms = 30000; /* from node.sample_ms at connect */

/* The calling thread's last error and jouled's words for it (joule_strerror repeats them). */
static _Thread_local int last_err;
static _Thread_local char last_detail[640];
static _Thread_local char words[1100];

/* Copy src into dst (size bytes), truncating. */
static void copy_str(char *dst, size_t size, const char *src)
{
        size_t n = strnlen(src, size - 1);
        memcpy(dst, src, n);
        dst[n] = '\0';
}

static int fail(int err, const char *detail)
{
        last_err = err;
        copy_str(last_detail, sizeof(last_detail), detail ? detail : "");
        return err;
}

/* The socket: $JOULE_SOCKET, else node.socket of the configuration. */
static int resolve_socket(void)
{
        const char *env = getenv("JOULE_SOCKET");
        uint64_t sample_ms = 1000;
        if (env && *env) {
                copy_str(socket_path, sizeof(socket_path), env);
                if (strlen(env) >= sizeof(socket_path))
                        return fail(-ENAMETOOLONG, env);
        } else {
                joule_config c;
                char err[512] = "";
                int r = joule_config_init(&c);
                if (r >= 0)
                        r = joule_config_load(&c, NULL, err, sizeof(err));
                if (r < 0) {
                        joule_config_free(&c);
                        char d[sizeof(last_detail)];
                        snprintf(d, sizeof(d), "configuration: %s", err[0] ? err : strerror(-r));
                        return fail(-EINVAL, d);
                }
                const char *p = jl_client_socket_path(c.node.socket);
                size_t n = strlen(p);
                copy_str(socket_path, sizeof(socket_path), p);
                if (c.node.sample_ms > 0)
                        sample_ms = (uint64_t)c.node.sample_ms;
                joule_config_free(&c);
                if (n >= sizeof(socket_path))
                        return fail(-ENAMETOOLONG, socket_path);
        }
        stale_ms = MAX((uint64_t)STALE_MIN_MS, 10 * sample_ms);
        return 0;
}

/* Map the page jouled passed and check that it is one this library knows. */
static int map_page(int fd, const jl_shm_page **ret)
{
        struct stat st;
        if (fstat(fd, &st) < 0)
                return fail(negative_errno(), "fstat of the shared page");
        if (!S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(jl_shm_page))
                return fail(-EPROTO, "the shared page is smaller than this library's layout");
        size_t len = sizeof(jl_shm_page);
        void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return fail(negative_errno(), "mmap of the shared page");
        const jl_shm_page *pg = p;
        const char *bad = NULL;
        if (pg->magic != JL_SHM_MAGIC)
                bad = "the shared page has a wrong magic number";
        else if (pg->version != JL_SHM_VERSION)
                bad = "the shared page has another layout version";
        else if (pg->size != sizeof(jl_shm_page))
                bad = "the shared page has another size";
        else if (pg->ndomains > JL_SHM_DOMAINS_MAX)
                bad = "the shared page claims too many domains";
        if (bad) {
                munmap(p, len);
                return fail(-EPROTO, bad);
        }
        uint64_t e, t;
        if (!jl_shm_read_energy(pg, &e, &t)) {
                munmap(p, len);
                return fail(-EAGAIN, "jouled kept the shared page busy");
        }
        uint64_t now_ms = now_ns(CLOCK_MONOTONIC) / NSEC_PER_MSEC;
        if (t > now_ms + 1000 || now_ms - t > stale_ms) {
                munmap(p, len);
                char d[128];
                snprintf(d, sizeof(d), "the shared page's last sample is %lld ms old",
                         (long long)now_ms - (long long)t);
                return fail(-ESTALE, d);
        }
        page_len = len;
        *ret = pg;
        return 0;
}

API_EXPORT int joule_connect(void)
{
        pthread_mutex_lock(&lock);
        int r = 0;
        if (atomic_load(&page))
                goto out;
        r = resolve_socket();
        if (r < 0)
                goto out;
        jl_msg_request req = {.op = JL_OP_GET_SHM, .step_id = -1, .gpu = -1};
        jl_client_reply rep = {.fd = -1};
        char why[256] = "";
        r = jl_client_request(socket_path, &req, REQUEST_TIMEOUT_MS, &rep, why, sizeof(why));
        if (r < 0) {
                fail(r, why);
                goto out;
        }
        if (rep.err < 0) {
                r = fail(rep.err, rep.message);
        } else if (rep.fd < 0) {
                r = fail(-EPROTO, "jouled's reply carried no shared page");
        } else {
                const jl_shm_page *pg;
                r = map_page(rep.fd, &pg);
                if (r == 0)
                        atomic_store(&page, pg);
        }
        jl_client_reply_free(&rep);
out:
        pthread_mutex_unlock(&lock);
        return r;
}

API_EXPORT int joule_energy(uint64_t *energy_mj, uint64_t *time_ms)
{
        int r = 0;
        atomic_fetch_add(&readers, 1);
        const jl_shm_page *pg = atomic_load(&page);
        uint64_t e = 0, t = 0;
        if (!pg)
                r = -ENOTCONN;
        else if (!jl_shm_read_energy(pg, &e, &t))
                r = -EAGAIN;
        atomic_fetch_sub(&readers, 1);
        if (r < 0)
                return fail(r, NULL);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        uint64_t now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
        if (now_ms > t && now_ms - t > atomic_load_explicit(&stale_ms, memory_order_relaxed)) {
                char d[96];
                snprintf(d, sizeof(d), "its last sample is %llu ms old", (unsigned long long)(now_ms - t));
                return fail(-ESTALE, d);
        }
        if (energy_mj)
                *energy_mj = e / 1000;
        if (time_ms)
                *time_ms = t;
        return 0;
}

API_EXPORT void joule_energy_diff(uint64_t ebegin, uint64_t eend, uint64_t *ediff, uint64_t tbegin,
                                  uint64_t tend, uint64_t *tdiff)
{
        if (ediff)
                *ediff = eend - ebegin; /* unsigned: modulo 2^64, right across a wrap */
        if (tdiff)
                *tdiff = tend - tbegin;
}

/* One request to jouled; its refusal's words are kept for joule_strerror. */
static int request(const jl_msg_request *req)
{
        char path[sizeof(socket_path)];
        pthread_mutex_lock(&lock);
        bool connected = atomic_load(&page) != NULL;
        memcpy(path, socket_path, sizeof(path));
        pthread_mutex_unlock(&lock);
        if (!connected)
                return fail(-ENOTCONN, NULL);

        jl_client_reply rep = {.fd = -1};
        char why[256] = "";
        int r = jl_client_request(path, req, REQUEST_TIMEOUT_MS, &rep, why, sizeof(why));
        if (r < 0)
                return fail(r, why);
        r = rep.err < 0 ? fail(rep.err, rep.message) : 0;
        jl_client_reply_free(&rep);
        return r;
}

API_EXPORT int joule_set_cpufreq(const cpu_set_t *mask, unsigned long khz)
{
        if (!mask)
                return fail(-EINVAL, "the CPU mask is NULL");
        if (khz > 100000000UL)
                return fail(-EINVAL, "the frequency is absurd (above 100 GHz)");
        jl_msg_request req = {.op = JL_OP_SET_CPUFREQ, .step_id = -1, .gpu = -1, .khz = khz};
        jl_msg_request_add_cpuset(&req, mask);
        if (req.cpumask_len == 0)
                return fail(-EINVAL, "the CPU mask is empty");
        return request(&req);
}

API_EXPORT int joule_set_gpufreq(int gpu, unsigned long khz)
{
        if (gpu < 0 || gpu >= 1024)
                return fail(-EINVAL, "the GPU index is out of range");
        if (khz > 100000000UL)
                return fail(-EINVAL, "the frequency is absurd (above 100 GHz)");
        jl_msg_request req = {.op = JL_OP_SET_GPUFREQ, .step_id = -1, .gpu = gpu, .khz = khz};
        return request(&req);
}

API_EXPORT int joule_set_gpufreq_list(int n, const unsigned long *khz)
{
        if (n < 1 || n > JL_MSG_GPUS_MAX || !khz)
                return fail(-EINVAL, "the list must hold 1 to 16 frequencies");
        jl_msg_request req = {.op = JL_OP_SET_GPUFREQ_LIST, .step_id = -1, .gpu = -1};
        for (int i = 0; i < n; i++) {
                if (khz[i] > 100000000UL)
                        return fail(-EINVAL, "a frequency is absurd (above 100 GHz)");
                req.gpu_khz[i] = khz[i];
        }
        req.ngpus = (size_t)n;
        return request(&req);
}

API_EXPORT void joule_disconnect(void)
{
        pthread_mutex_lock(&lock);
        const jl_shm_page *pg = atomic_exchange(&page, NULL);
        if (pg) {
                /* wait (bounded) for readers that loaded the pointer before it went */
                for (int i = 0; i < 100000 && atomic_load(&readers) != 0; i++)
                        sched_yield();
                if (atomic_load(&readers) == 0)
                        munmap((void *)pg, page_len);
                /* else: a reader is stuck (stopped by a debugger?); leave the page mapped */
        }
        pthread_mutex_unlock(&lock);
}

static const char *base_words(int err)
{
        switch (err) {
        case 0:
                return "success";
        case ENOENT:
                return "jouled is not running (no socket at %s)";
        case ECONNREFUSED:
                return "jouled is not running (the socket %s refuses connections)";
        case EACCES:
                return "permission denied on jouled's socket %s";
        case EPERM:
                return "jouled refused: only root and the owner of the job running there may do this";
        case ENOTCONN:
                return "not connected to jouled: call joule_connect() first";
        case EPROTO:
                return "jouled's shared energy page is not one this library knows (garbage, or another "
                       "joule version)";
        case EPROTONOSUPPORT:
                return "jouled speaks another protocol version than this library";
        case ESTALE:
                return "jouled's shared energy page is stale: jouled stopped updating it (restarted or "
                       "hung); call joule_disconnect() and joule_connect() again";
        case EAGAIN:
                return "jouled kept the shared energy page busy; try again";
        case ETIMEDOUT:
                return "jouled did not answer in time on %s";
        case ECONNRESET:
        case EPIPE:
                return "jouled closed the connection on %s";
        case EBADMSG:
                return "jouled sent a malformed reply";
        case EINVAL:
                return "invalid argument (or configuration)";
        case ENAMETOOLONG:
                return "the socket path is too long (%s)";
        case ENOMEM:
                return "out of memory";
        case ENODEV:
                return "no such device on this node (CPU or GPU)";
        case EOPNOTSUPP:
                return "this node cannot do that (no driver for it)";
        case ERANGE:
                return "the frequency is outside what the hardware supports";
        case EBUSY:
                return "jouled is busy with a conflicting request";
        default:
                return NULL;
        }
}

API_EXPORT const char *joule_strerror(int err)
{
        int e = err < 0 ? -err : err;
        const char *fmt = base_words(e);
        char base[384];
        if (!fmt) {
                char buf[128];
                const char *s = strerror_r(e, buf, sizeof(buf));
                snprintf(base, sizeof(base), "joule: %s", s);
        } else {
                char p[sizeof(socket_path)];
                pthread_mutex_lock(&lock);
                memcpy(p, socket_path, sizeof(p));
                pthread_mutex_unlock(&lock);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
                snprintf(base, sizeof(base), fmt, p[0] ? p : "/run/joule/jouled.sock");
#pragma GCC diagnostic pop
        }
        if (e != 0 && -e == last_err && last_detail[0])
                snprintf(words, sizeof(words), "%s: %s", base, last_detail);
        else
                snprintf(words, sizeof(words), "%s", base);
        return words;
}
