/* node.c - sysfs cpufreq (read only) and jouled's shared page for the runtime (node.h). */
#include "node.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"
#include "fileio.h"
#include "parse.h"

#define CPUFREQ "/sys/devices/system/cpu/cpu%d/cpufreq/%s"

static int read_khz(int cpu, const char *file, unsigned long *ret)
{
        char path[128];
        uint64_t v;
        snprintf(path, sizeof(path), CPUFREQ, cpu, file);
        int r = read_u64_path(path, &v);
        if (r < 0)
                return r;
        if (v == 0 || v > 100000000u)
                return -EINVAL;
        *ret = (unsigned long)v;
        return 0;
}

int jl_rt_cpufreq_max(int cpu, unsigned long *ret_khz)
{
        return read_khz(cpu, "cpuinfo_max_freq", ret_khz);
}

int jl_rt_cpufreq_list(int cpu, unsigned long *freqs, size_t max)
{
        char path[128], buf[4096];
        size_t n = 0;
        snprintf(path, sizeof(path), CPUFREQ, cpu, "scaling_available_frequencies");
        if (read_text_path(path, buf, sizeof(buf)) >= 0) {
                char *save = NULL;
                for (char *tok = strtok_r(buf, " \t\n", &save); tok && n < max;
                     tok = strtok_r(NULL, " \t\n", &save)) {
                        uint64_t v;
                        if (parse_u64(tok, &v) < 0 || v == 0 || v > 100000000u)
                                return -EINVAL;
                        freqs[n++] = (unsigned long)v;
                }
                if (n > 0) {
                        /* ascending (drivers list them descending) */
                        for (size_t i = 1; i < n; i++)
                                for (size_t j = i; j > 0 && freqs[j - 1] > freqs[j]; j--) {
                                        unsigned long t = freqs[j];
                                        freqs[j] = freqs[j - 1];
                                        freqs[j - 1] = t;
                                }
                        return (int)n;
                }
        }
        unsigned long lo, hi;
        int r = read_khz(cpu, "cpuinfo_min_freq", &lo);
        if (r < 0)
                return r;
        r = read_khz(cpu, "cpuinfo_max_freq", &hi);
        if (r < 0)
                return r;
        if (lo > hi)
                return -EINVAL;
        for (unsigned long f = lo; f <= hi && n < max; f += 100000)
                freqs[n++] = f;
        if (n < max && freqs[n - 1] != hi)
                freqs[n++] = hi;
        return (int)n;
}

int jl_rt_cpufreq_cur(const cpu_set_t *cpus, double *ret_khz)
{
        double sum = 0;
        unsigned n = 0;
        for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
                unsigned long khz;
                if (!CPU_ISSET(cpu, cpus) || read_khz(cpu, "scaling_cur_freq", &khz) < 0)
                        continue;
                sum += (double)khz;
                n++;
        }
        if (n == 0)
                return -ENOENT;
        *ret_khz = sum / n;
        return 0;
}

int jl_rt_shm_open(const char *socket_path, jl_rt_shm *ret, char *why, size_t whylen)
{
        jl_msg_request req = {.op = JL_OP_GET_SHM, .step_id = -1, .gpu = -1};
        jl_client_reply rep = {.fd = -1};
        char w[256] = "";
        int r = jl_client_request(socket_path, &req, 1000, &rep, w, sizeof(w));
        if (r < 0) {
                if (why)
                        snprintf(why, whylen, "%s%s%s", strerror(-r), w[0] ? ": " : "", w);
                return r;
        }
        if (rep.err < 0 || rep.fd < 0) {
                r = rep.err < 0 ? rep.err : -EPROTO;
                if (why)
                        snprintf(why, whylen, "%s",
                                 rep.message[0] ? rep.message : "no shared page in the reply");
                jl_client_reply_free(&rep);
                return r;
        }
        struct stat st;
        void *p = MAP_FAILED;
        if (fstat(rep.fd, &st) == 0 && (size_t)st.st_size >= sizeof(jl_shm_page))
                p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, rep.fd, 0);
        size_t len = p == MAP_FAILED ? 0 : (size_t)st.st_size;
        jl_client_reply_free(&rep);
        if (p == MAP_FAILED) {
                if (why)
                        snprintf(why, whylen, "the shared page cannot be mapped");
                return -EPROTO;
        }
        const jl_shm_page *pg = p;
        if (pg->magic != JL_SHM_MAGIC || pg->version != JL_SHM_VERSION || pg->size != sizeof(jl_shm_page)) {
                munmap(p, len);
                if (why)
                        snprintf(why, whylen, "the shared page has a layout this runtime does not know");
                return -EPROTONOSUPPORT;
        }
        *ret = (jl_rt_shm){.page = pg, .len = len};
        return 0;
}

void jl_rt_shm_close(jl_rt_shm *s)
{
        if (s->page)
                munmap((void *)s->page, s->len);
        *s = (jl_rt_shm){0};
}

int jl_rt_shm_energy(const jl_rt_shm *s, jl_rt_energy *ret)
{
        jl_shm_page pg;
        if (!s->page)
                return -ENOTCONN;
        if (!jl_shm_read(s->page, &pg))
                return -EAGAIN;
        jl_rt_energy e = {.node_uj = pg.node_energy_uj,
                          .pkg_uj = UINT64_MAX,
                          .dram_uj = UINT64_MAX,
                          .time_ms = pg.time_ms,
                          .jouled_pid = pg.jouled_pid};
        for (uint32_t i = 0; i < pg.ndomains && i < JL_SHM_DOMAINS_MAX; i++) {
                const char *name = pg.domains[i].name;
                uint64_t *sum = strncmp(name, "package-", 8) == 0 ? &e.pkg_uj
                                : strncmp(name, "dram-", 5) == 0  ? &e.dram_uj
                                                                  : NULL;
                if (!sum)
                        continue;
                *sum = (*sum == UINT64_MAX ? 0 : *sum) + pg.domains[i].energy_uj;
        }
        *ret = e;
        return 0;
}

void jl_rt_gpu_env_get(jl_rt_gpu_env *ret)
{
        *ret = (jl_rt_gpu_env){.step_gpus = getenv("SLURM_STEP_GPUS"),
                               .job_gpus = getenv("SLURM_JOB_GPUS"),
                               .cuda_visible = getenv("CUDA_VISIBLE_DEVICES"),
                               .cuda_order = getenv("CUDA_DEVICE_ORDER")};
}

typedef struct {
        unsigned idx; /* NVML's, the N of "gpu-N" */
        const jl_shm_domain *d;
} page_gpu;

/* The page's GPU domains in NVML index order; returns how many. */
static size_t page_gpus(const jl_shm_page *page, page_gpu gpus[static JL_SHM_DOMAINS_MAX])
{
        size_t n = 0;
        for (uint32_t i = 0; i < page->ndomains && i < JL_SHM_DOMAINS_MAX; i++) {
                const jl_shm_domain *d = &page->domains[i];
                uint64_t idx;
                if (strncmp(d->name, "gpu-", 4) != 0 || parse_u64(d->name + 4, &idx) < 0 || idx >= 64)
                        continue;
                size_t j = n++;
                for (; j > 0 && gpus[j - 1].idx > idx; j--)
                        gpus[j] = gpus[j - 1];
                gpus[j] = (page_gpu){.idx = (unsigned)idx, .d = d};
        }
        return n;
}

/* The next comma-separated entry of *p, trimmed, into tok; false at the end or for one too long. */
static bool next_entry(const char **p, char *tok, size_t size, bool *ret_too_long)
{
        *ret_too_long = false;
        if (!*p || !**p)
                return false;
        const char *s = *p;
        size_t len = strcspn(s, ",");
        *p = s + len + (s[len] == ',');
        while (len > 0 && isspace((unsigned char)*s)) {
                s++;
                len--;
        }
        while (len > 0 && isspace((unsigned char)s[len - 1]))
                len--;
        if (len >= size) {
                *ret_too_long = true;
                tok[0] = '\0';
                return true;
        }
        memcpy(tok, s, len);
        tok[len] = '\0';
        return true;
}

static bool blank(const char *s)
{
        for (; s && *s; s++)
                if (!isspace((unsigned char)*s))
                        return false;
        return true;
}

static void note(jl_rt_gpus *g, const char *fmt, const char *var, const char *what)
{
        size_t len = strlen(g->note);
        if (len + 3 >= sizeof(g->note))
                return;
        if (len)
                len += (size_t)snprintf(g->note + len, sizeof(g->note) - len, "; ");
        snprintf(g->note + len, sizeof(g->note) - len, fmt, var, what);
}

/* Slurm's node-global ids: "0,2" or ranges "0-3"; each a GPU's minor number (/dev/nvidiaN, below 256). */
#define SLURM_GPU_IDS 1024
static void select_slurm(const char *var, const char *value, const page_gpu *gpus, size_t n, jl_rt_gpus *g)
{
        bool have_minor = false;
        for (size_t i = 0; i < n; i++)
                have_minor |= gpus[i].d->gpu_minor >= 0;
        if (!have_minor)
                note(g, "%s: the page holds no minor numbers (%s): ids taken as NVML indices", var,
                     "jouled's NVML cannot tell them");
        const char *p = value;
        char tok[64];
        bool too_long;
        while (next_entry(&p, tok, sizeof(tok), &too_long)) {
                uint64_t ids[SLURM_GPU_IDS / 64] = {0}; /* an id or a range of them, as a CPU list's */
                if (too_long || parse_cpu_list(tok, ids, SLURM_GPU_IDS) <= 0) {
                        note(g, "%s: \"%s\" is no GPU id: ignored", var, too_long ? "(too long)" : tok);
                        continue;
                }
                for (uint64_t id = 0; id < SLURM_GPU_IDS; id++) {
                        if (!(ids[id / 64] & (UINT64_C(1) << (id % 64))))
                                continue;
                        bool found = false;
                        for (size_t i = 0; i < n; i++)
                                if (have_minor
                                        ? gpus[i].d->gpu_minor >= 0 && (uint64_t)gpus[i].d->gpu_minor == id
                                        : gpus[i].idx == id) {
                                        g->mask |= UINT64_C(1) << gpus[i].idx;
                                        found = true;
                                }
                        if (!found) {
                                char w[32];
                                snprintf(w, sizeof(w), "%" PRIu64, id);
                                note(g, "%s: id %s matches no GPU of this node: ignored", var, w);
                        }
                }
        }
}

static int cmp_pci(const void *a, const void *b)
{
        const page_gpu *x = a, *y = b;
        int c = strcasecmp(x->d->gpu_pci, y->d->gpu_pci);
        return c ? c : x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* A UUID or a prefix of one (tok's first len characters): the one page GPU with an identity that starts
 * with it, among its own UUID (mig false: "GPU-…") or its MIG instances' UUIDs (mig true: gpu_mig,
 * comma-separated, "MIG-…"); -ENOENT none, -EEXIST several. */
static int match_uuid(const char *tok, size_t len, const page_gpu *gpus, size_t n, bool mig,
                      unsigned *ret_idx)
{
        int found = -1;
        for (size_t i = 0; i < n; i++) {
                const jl_shm_domain *d = gpus[i].d;
                const char *m = mig ? d->gpu_mig : d->gpu_uuid;
                const char *end = m + strnlen(m, mig ? sizeof(d->gpu_mig) : sizeof(d->gpu_uuid));
                while (m < end) {
                        const char *sep = mig ? memchr(m, ',', (size_t)(end - m)) : NULL;
                        size_t one = sep ? (size_t)(sep - m) : (size_t)(end - m);
                        if (one >= len && strncasecmp(m, tok, len) == 0) {
                                if (found >= 0)
                                        return -EEXIST;
                                found = (int)i;
                        }
                        m += one + (sep != NULL);
                }
        }
        if (found < 0)
                return -ENOENT;
        *ret_idx = gpus[found].idx;
        return 0;
}

static void select_cuda(const jl_rt_gpu_env *env, const page_gpu *gpus, size_t n, jl_rt_gpus *g)
{
        static const char var[] = "CUDA_VISIBLE_DEVICES";
        /* CUDA's default order ("fastest first", which joule cannot know) taken as PCI bus order */
        bool by_bus = !env->cuda_order || strcmp(env->cuda_order, "PCI_BUS_ID") != 0;
        page_gpu order[JL_SHM_DOMAINS_MAX];
        memcpy(order, gpus, n * sizeof(*gpus));
        if (by_bus) {
                bool have_pci = true;
                for (size_t i = 0; i < n; i++)
                        have_pci &= gpus[i].d->gpu_pci[0] != '\0';
                if (have_pci)
                        qsort(order, n, sizeof(*order), cmp_pci);
        }
        bool have_uuid = false;
        for (size_t i = 0; i < n; i++)
                have_uuid |= gpus[i].d->gpu_uuid[0] != '\0';
        const char *p = env->cuda_visible;
        char tok[128];
        bool too_long;
        while (next_entry(&p, tok, sizeof(tok), &too_long)) {
                unsigned idx;
                uint64_t k;
                int r = -ENOENT;
                if (too_long)
                        r = -EINVAL;
                else if (strncasecmp(tok, "GPU-", 4) == 0 || strncasecmp(tok, "MIG-GPU-", 8) == 0) {
                        /* MIG-GPU-<uuid>/<gi>/<ci> (drivers before R470) names its parent GPU */
                        bool mig = tok[0] == 'M' || tok[0] == 'm';
                        const char *u = tok + (mig ? 4 : 0);
                        size_t len = mig ? strcspn(u, "/") : strlen(u);
                        if (!have_uuid) {
                                note(g, "%s: \"%s\": the page holds no UUIDs: every GPU", var, tok);
                                g->all = true;
                                return;
                        }
                        r = len > 4 ? match_uuid(u, len, gpus, n, false, &idx) : -ENOENT;
                        if (r == -EEXIST) {
                                note(g,
                                     "%s: \"%s\" is the prefix of several GPUs' UUIDs: the list ends there",
                                     var, tok);
                                return;
                        }
                } else if (strncasecmp(tok, "MIG-", 4) == 0) {
                        /* MIG-<uuid> (R470 and later): an instance jouled listed under its GPU. NVML counts
                         * no utilisation per instance: the GPU's stands for it (shared with its other
                         * instances' steps). Not listed (MIG off, or set up again since jouled started):
                         * every GPU, as nothing better is known. */
                        size_t len = strlen(tok);
                        r = len > 4 ? match_uuid(tok, len, gpus, n, true, &idx) : -ENOENT;
                        if (r == -EEXIST) {
                                note(g,
                                     "%s: \"%s\" is the prefix of several MIG instances' UUIDs: the list "
                                     "ends there",
                                     var, tok);
                                return;
                        }
                        if (r < 0) {
                                note(g,
                                     "%s: \"%s\" is a MIG instance that jouled's page does not list: every "
                                     "GPU",
                                     var, tok);
                                g->all = true;
                                return;
                        }
                        note(g, "%s: \"%s\" is a MIG instance: its GPU's utilisation stands for it", var,
                             tok);
                } else if (parse_u64(tok, &k) == 0) {
                        for (size_t i = 0; i < n && r < 0; i++)
                                if (by_bus ? i == k : gpus[i].idx == k) {
                                        idx = by_bus ? order[i].idx : gpus[i].idx;
                                        r = 0;
                                }
                } else
                        r = -EINVAL;
                if (r < 0) {
                        if (tok[0] && !too_long)
                                note(g, "%s: \"%s\" matches no GPU of this node: the list ends there", var,
                                     tok);
                        return; /* CUDA ignores an invalid entry and every one after it */
                }
                g->mask |= UINT64_C(1) << idx;
        }
}

void jl_rt_gpus_select(const jl_rt_gpu_env *env, const jl_shm_page *page, jl_rt_gpus *ret)
{
        jl_rt_gpus g = {0};
        page_gpu gpus[JL_SHM_DOMAINS_MAX];
        size_t n = page ? page_gpus(page, gpus) : 0;
        if (!blank(env->step_gpus)) {
                g.source = "SLURM_STEP_GPUS";
                select_slurm(g.source, env->step_gpus, gpus, n, &g);
        } else if (!blank(env->job_gpus)) {
                g.source = "SLURM_JOB_GPUS";
                select_slurm(g.source, env->job_gpus, gpus, n, &g);
        } else if (env->cuda_visible) {
                g.source = "CUDA_VISIBLE_DEVICES";
                select_cuda(env, gpus, n, &g);
        } else
                g.all = true;
        if (g.all)
                g.mask = 0;
        *ret = g;
}

void jl_rt_gpus_format(const jl_rt_gpus *g, char *buf, size_t size)
{
        if (size == 0)
                return;
        if (g->all || g->mask == 0) {
                snprintf(buf, size, "%s", g->all ? "every GPU" : "none");
                return;
        }
        size_t len = 0;
        buf[0] = '\0';
        for (unsigned i = 0; i < 64 && len < size; i++)
                if (g->mask & (UINT64_C(1) << i))
                        len += (size_t)snprintf(buf + len, size - len, "%sgpu-%u", len ? "," : "", i);
}

int jl_rt_shm_gpu_util(const jl_rt_shm *s, const jl_rt_gpus *gpus, jl_rt_gpu_util *ret)
{
        jl_shm_page pg;
        if (!s->page)
                return -ENOTCONN;
        if (!jl_shm_read(s->page, &pg))
                return -EAGAIN;
        jl_rt_gpu_util u = {.jouled_pid = pg.jouled_pid};
        for (uint32_t i = 0; i < pg.ndomains && i < JL_SHM_DOMAINS_MAX; i++) {
                const jl_shm_domain *d = &pg.domains[i];
                uint64_t idx;
                if (!(d->flags & JL_SHM_UTIL) || strncmp(d->name, "gpu-", 4) != 0 ||
                    parse_u64(d->name + 4, &idx) < 0)
                        continue;
                if (!gpus->all && (idx >= 64 || !(gpus->mask & (UINT64_C(1) << idx))))
                        continue;
                u.busy_s += d->util_gpu_s;
                u.cover_s += d->util_cover_s;
                u.ngpus++;
        }
        if (u.ngpus == 0)
                return -ENODATA;
        *ret = u;
        return 0;
}

double jl_rt_gpu_util_mean(const jl_rt_gpu_util *a, const jl_rt_gpu_util *b)
{
        if (a->jouled_pid != b->jouled_pid || a->ngpus != b->ngpus || !(b->cover_s > a->cover_s) ||
            b->busy_s < a->busy_s)
                return NAN;
        double m = (b->busy_s - a->busy_s) / (b->cover_s - a->cover_s);
        return m < 0 ? 0 : m > 1 ? 1 : m;
}
