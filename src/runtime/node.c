/* node.c - sysfs cpufreq (read only) and jouled's shared page for the runtime (node.h). */
#include "node.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
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

void jl_rt_gpus_parse(const char *value, jl_rt_gpus *ret)
{
        jl_rt_gpus g = {.all = value == NULL};
        for (const char *p = value; p && *p;) {
                size_t len = strcspn(p, ",");
                while (len > 0 && isspace((unsigned char)*p)) {
                        p++;
                        len--;
                }
                char tok[128];
                if (len >= sizeof(tok))
                        break;
                memcpy(tok, p, len);
                tok[len] = '\0';
                while (len > 0 && isspace((unsigned char)tok[len - 1]))
                        tok[--len] = '\0';
                uint64_t idx;
                if (strncmp(tok, "GPU-", 4) == 0 || strncmp(tok, "MIG-", 4) == 0)
                        g.uuid = g.all = true;
                else if (parse_u64(tok, &idx) == 0 && idx < 64)
                        g.mask |= UINT64_C(1) << idx;
                else
                        break; /* CUDA ignores an invalid entry and every one after it */
                p += len;
                p += *p == ',';
        }
        *ret = g;
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
