/* monitor.c - jouled's monitor: opens the providers, samples them every node.sample_ms on a timerfd (and
 * takes the sampler's guard reads of fast-wrapping counters in between),
 * publishes the node and domain energies (and the GPU domains' utilisation) into the shared-memory page
 * (seqlock) and a snapshot for the other services, and emits one periodic record every node.period to the
 * sink. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "jouled.h"
#include "log.h"
#include "macro.h"
#include "timeutil.h"

static size_t shm_map_size(void)
{
        long pg = sysconf(_SC_PAGESIZE);
        size_t p = pg > 0 ? (size_t)pg : 4096;
        return (sizeof(jl_shm_page) + p - 1) / p * p;
}

static int shm_open_page(jouled *d, char *err, size_t errlen)
{
        size_t size = shm_map_size();
        _cleanup_close_ int fd = memfd_create("jouled-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0) {
                int r = negative_errno();
                snprintf(err, errlen, "memfd_create: %s", strerror(-r));
                return r;
        }
        if (ftruncate(fd, (off_t)size) < 0) {
                int r = negative_errno();
                snprintf(err, errlen, "sizing the shared-memory page: %s", strerror(-r));
                return r;
        }
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
                int r = negative_errno();
                snprintf(err, errlen, "mapping the shared-memory page: %s", strerror(-r));
                return r;
        }
        /* Clients get a descriptor opened read-only (so PROT_WRITE mappings fail), and the memfd is sealed
         * against any new writable mapping, writes and resizing; only this mapping writes. */
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        int ro = open(path, O_RDONLY | O_CLOEXEC);
        if (ro < 0) {
                int r = negative_errno();
                munmap(p, size);
                snprintf(err, errlen, "reopening the shared-memory page read-only: %s", strerror(-r));
                return r;
        }
#ifdef F_SEAL_FUTURE_WRITE
        (void)fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL);
#else
        (void)fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
#endif
        jl_shm_page *pg = p;
        memset(pg, 0, size);
        pg->magic = JL_SHM_MAGIC;
        pg->version = JL_SHM_VERSION;
        pg->size = sizeof(jl_shm_page);
        jd_copy(pg->node, sizeof(pg->node), d->cfg.node.name);
        pg->step_id = -1;
        pg->jouled_pid = (uint64_t)getpid();
        d->shm = pg;
        d->shm_fd = TAKE_FD(fd);
        d->shm_ro_fd = ro;
        return 0;
}

int jd_monitor_open(jouled *d, char *err, size_t errlen)
{
        jl_provider_config pc;
        jl_provider_config_default(&pc);
        pc.estimate_idle_w = d->cfg.estimate.idle_w;
        pc.estimate_max_w = d->cfg.estimate.max_w;
        pc.hwmon_sensors = (const char *const *)d->cfg.measurement.hwmon_sensors;
        int r = jl_sampler_open(&pc, NULL, &d->sampler);
        if (r < 0) {
                snprintf(err, errlen, "opening the measurement providers: %s", strerror(-r));
                return r;
        }
        for (size_t i = 0; i < d->sampler->notes.n; i++)
                log_info("%s: %s", d->sampler->notes.items[i].subject, d->sampler->notes.items[i].reason);
        size_t nenergy = 0;
        for (size_t i = 0; i < d->sampler->channels.n; i++)
                nenergy += d->sampler->channels.items[i].kind == JL_KIND_ENERGY;
        if (nenergy == 0)
                log_warning(0, "no energy counter on this node: records will carry 0 J (see `joule info`)");
        if (nenergy > JL_SHM_DOMAINS_MAX)
                log_warning(0, "%zu energy domains; the first %d are published", nenergy,
                            JL_SHM_DOMAINS_MAX);
        r = shm_open_page(d, err, errlen);
        if (r < 0) {
                jl_sampler_free(d->sampler);
                d->sampler = NULL;
                return r;
        }
        return 0;
}

void jd_monitor_close(jouled *d)
{
        if (d->shm)
                munmap(d->shm, shm_map_size());
        d->shm = NULL;
        if (d->shm_ro_fd >= 0)
                close(d->shm_ro_fd);
        if (d->shm_fd >= 0)
                close(d->shm_fd);
        d->shm_fd = d->shm_ro_fd = -1;
        jl_sampler_free(d->sampler);
        d->sampler = NULL;
}

static void publish_shm(jouled *d)
{
        jl_shm_page *p = d->shm;
        const jd_snapshot *s = &d->snap;
        jl_shm_write_begin(p);
        p->node_energy_uj = s->node_energy_uj;
        p->time_ms = s->t_ns / NSEC_PER_MSEC;
        p->samples = s->samples;
        p->power_w = s->node_power_w;
        p->ndomains = (uint32_t)s->ndomains;
        for (size_t i = 0; i < s->ndomains; i++) {
                jl_shm_domain *dom = &p->domains[i];
                jd_copy(dom->name, sizeof(dom->name), s->domains[i].name);
                dom->energy_uj = s->domains[i].energy_uj;
                dom->scope = (uint32_t)s->domains[i].scope;
                dom->flags = (s->domains[i].estimated ? JL_SHM_ESTIMATED : 0u) |
                             (s->domains[i].counted ? JL_SHM_COUNTED : 0u) |
                             (s->domains[i].has_util ? JL_SHM_UTIL : 0u);
                dom->util_gpu = s->domains[i].has_util ? s->domains[i].util_gpu : -1;
                dom->util_mem = s->domains[i].has_util ? s->domains[i].util_mem : -1;
                dom->util_gpu_s = s->domains[i].util_gpu_s;
                dom->util_cover_s = s->domains[i].util_cover_s;
                jd_copy(dom->gpu_uuid, sizeof(dom->gpu_uuid), s->domains[i].gpu_uuid);
                jd_copy(dom->gpu_pci, sizeof(dom->gpu_pci), s->domains[i].gpu_pci);
                jd_copy(dom->gpu_mig, sizeof(dom->gpu_mig), s->domains[i].gpu_mig);
                dom->gpu_minor = s->domains[i].gpu_minor;
        }
        if (d->nsteps > 0) {
                jd_copy(p->job_id, sizeof(p->job_id), d->steps[0].job_id);
                p->step_id = d->steps[0].step_id;
        } else {
                p->job_id[0] = '\0';
                p->step_id = -1;
        }
        jl_shm_write_end(p);
}

static jd_domain *domain_named(jd_snapshot *s, const char *name, size_t len)
{
        for (size_t i = 0; i < s->ndomains; i++)
                if (strncmp(s->domains[i].name, name, len) == 0 && s->domains[i].name[len] == '\0')
                        return &s->domains[i];
        return NULL;
}

/* Each GPU domain's utilisation from its "gpu-N/utilization" and "gpu-N/mem-utilization" channels (the
 * sampler's latest reading and its time-weighted sum). */
static void gpu_util(jouled *d)
{
        jl_sampler *sm = d->sampler;
        jd_snapshot *s = &d->snap;
        for (size_t i = 0; i < s->ndomains; i++) {
                s->domains[i].has_util = false;
                s->domains[i].util_gpu = s->domains[i].util_mem = NAN;
                s->domains[i].util_gpu_s = s->domains[i].util_cover_s = 0;
        }
        for (size_t i = 0; i < sm->channels.n; i++) {
                const jl_track *t = &sm->tracks[i];
                const jl_channel *c = &t->ch;
                const char *slash = strchr(c->name, '/');
                if (c->kind != JL_KIND_UTILIZATION || strcmp(c->provider, "nvml") != 0 || !slash ||
                    !t->have_value)
                        continue;
                jd_domain *dom = domain_named(s, c->name, (size_t)(slash - c->name));
                if (!dom)
                        continue;
                if (strcmp(slash, "/utilization") == 0) {
                        dom->has_util = true;
                        dom->util_gpu = t->value;
                        dom->util_gpu_s = t->weighted_sum;
                        dom->util_cover_s = t->weight_s;
                } else if (strcmp(slash, "/mem-utilization") == 0)
                        dom->util_mem = t->value;
        }
}

void jd_sample_locked(jouled *d)
{
        jl_sampler *sm = d->sampler;
        jd_snapshot *s = &d->snap;
        uint64_t prev_energy = s->node_energy_uj, prev_t = s->t_ns;
        bool had = s->samples > 0;

        jl_sampler_sample(sm);
        s->t_ns = sm->t_last_ns;
        s->samples = sm->nsamples;
        s->ndomains = s->ntemps = s->nfreqs = 0;

        int node_idx = -1, est_idx = -1;
        bool have_summed = false;
        uint64_t summed = 0;
        double freq_sum = 0;
        size_t nfreq = 0;
        for (size_t i = 0; i < sm->channels.n; i++) {
                const jl_track *t = &sm->tracks[i];
                const jl_channel *c = &t->ch;
                if (c->kind == JL_KIND_ENERGY) {
                        if (s->ndomains >= JL_SHM_DOMAINS_MAX)
                                continue;
                        jd_domain *dom = &s->domains[s->ndomains];
                        jd_copy(dom->name, sizeof(dom->name), c->name);
                        dom->provider = c->provider;
                        jd_copy(dom->gpu_uuid, sizeof(dom->gpu_uuid), c->gpu_uuid);
                        jd_copy(dom->gpu_pci, sizeof(dom->gpu_pci), c->gpu_pci);
                        jd_copy(dom->gpu_mig, sizeof(dom->gpu_mig), c->gpu_mig);
                        dom->gpu_minor =
                            c->gpu_minor_known && c->gpu_minor <= INT32_MAX ? (int32_t)c->gpu_minor : -1;
                        dom->energy_uj = t->energy_uj;
                        dom->power_w = sm->nsamples >= 2 ? t->power_w : 0;
                        dom->scope = c->scope;
                        dom->estimated = c->estimated;
                        dom->counted = false;
                        dom->gaps = t->gaps;
                        dom->gap_ns = t->gap_ns;
                        /* the sampler reads wrapping counters as often as they need; an interval that
                         * was still too long (the daemon stalled) is a counted gap: say so once */
                        if (t->gaps && !d->wrap_warned) {
                                d->wrap_warned = true;
                                log_warning(
                                    0,
                                    "%s: %u interval(s) (%.0f ms in all) between reads were too long "
                                    "to unwrap its counter for certain (at the %.0f W it may draw it "
                                    "wraps every %.3f s); their energy is estimated and counted as gaps",
                                    c->name, t->gaps, (double)t->gap_ns / 1e6, jl_track_bound_w(t),
                                    (double)c->wrap_uj / 1e6 / jl_track_bound_w(t));
                        }
                        if (c->estimated) {
                                if (c->scope == JL_SCOPE_NODE && est_idx < 0)
                                        est_idx = (int)s->ndomains;
                        } else if (c->scope == JL_SCOPE_NODE) {
                                if (node_idx < 0)
                                        node_idx = (int)s->ndomains;
                        } else if (jl_scope_summed(c->scope)) {
                                have_summed = true;
                                summed += t->energy_uj;
                        }
                        s->ndomains++;
                } else if (c->kind == JL_KIND_TEMPERATURE && t->have_value && sm->values[i].err == 0) {
                        if (s->ntemps < JD_TEMPS_MAX) {
                                jd_copy(s->temps[s->ntemps].name, sizeof(s->temps[0].name), c->name);
                                s->temps[s->ntemps++].c = t->value;
                        }
                        if (!d->rec_open || isnan(d->rec_temp_max) || t->value > d->rec_temp_max)
                                d->rec_temp_max = t->value;
                } else if (c->kind == JL_KIND_FREQUENCY && strcmp(c->provider, "cpufreq") == 0 &&
                           t->have_value && sm->values[i].err == 0) {
                        if (s->nfreqs < JD_FREQS_MAX) {
                                jd_copy(s->freqs[s->nfreqs].cpu, sizeof(s->freqs[0].cpu), c->name);
                                s->freqs[s->nfreqs++].khz = t->value;
                        }
                        freq_sum += t->value;
                        nfreq++;
                }
        }
        /* The node energy: a measured whole-node domain (psys, IPMI, a power meter), else the sum of the
         * packages, DRAM and GPUs, else the estimate (flagged). */
        if (node_idx >= 0) {
                s->node_energy_uj = s->domains[node_idx].energy_uj;
                s->domains[node_idx].counted = true;
                s->node_source = "node";
                s->node_estimated = false;
        } else if (have_summed) {
                s->node_energy_uj = summed;
                for (size_t i = 0; i < s->ndomains; i++)
                        s->domains[i].counted =
                            !s->domains[i].estimated && jl_scope_summed(s->domains[i].scope);
                s->node_source = "domains";
                s->node_estimated = false;
        } else if (est_idx >= 0) {
                s->node_energy_uj = s->domains[est_idx].energy_uj;
                s->domains[est_idx].counted = true;
                s->node_source = "estimate";
                s->node_estimated = true;
        } else {
                s->node_energy_uj = 0;
                s->node_source = "none";
                s->node_estimated = false;
        }
        s->node_gaps = 0;
        s->node_gap_ns = 0;
        for (size_t i = 0; i < s->ndomains; i++)
                if (s->domains[i].counted) {
                        s->node_gaps += s->domains[i].gaps;
                        s->node_gap_ns += s->domains[i].gap_ns;
                }
        if (had && s->t_ns > prev_t && s->node_energy_uj >= prev_energy)
                s->node_power_w =
                    (double)(s->node_energy_uj - prev_energy) / 1e6 / ((double)(s->t_ns - prev_t) / 1e9);
        if (nfreq > 0) {
                d->rec_freq_sum += freq_sum / (double)nfreq;
                d->rec_freq_n++;
        }
        gpu_util(d);
        publish_shm(d);
        jd_share_update(d); /* share.c: the steps' shares of the energy since the last sample */
}

/* Start the next record's window at the latest sample. Lock held. */
void jd_record_restart_locked(jouled *d)
{
        d->rec_open = true;
        d->rec_start_ns = d->snap.t_ns;
        d->rec_start_node_uj = d->snap.node_energy_uj;
        d->rec_start_gap_ns = d->snap.node_gap_ns;
        for (size_t i = 0; i < d->snap.ndomains; i++)
                d->rec_start_dom_uj[i] = d->snap.domains[i].energy_uj;
        d->rec_temp_max = NAN;
        d->rec_freq_sum = 0;
        d->rec_freq_n = 0;
}

/* Close the current window at the latest sample into m. Lock held. */
static int record_build(jouled *d, jl_msg_record *m)
{
        const jd_snapshot *s = &d->snap;
        uint64_t seq;
        int r = jd_state_next_seq(d, &seq);
        if (r < 0)
                return r;
        *m = (jl_msg_record){.seq = seq, .step_id = -1};
        jd_copy(m->node, sizeof(m->node), d->cfg.node.name);
        m->start_us = jd_realtime_us(d, d->rec_start_ns);
        m->end_us = jd_realtime_us(d, s->t_ns);
        m->energy_uj = s->node_energy_uj - d->rec_start_node_uj;
        double dur_s = (double)(s->t_ns - d->rec_start_ns) / 1e9;
        m->avg_power_w = dur_s > 0 ? (double)m->energy_uj / 1e6 / dur_s : 0;
        m->temp_max_c = d->rec_temp_max;
        m->gap_us = (s->node_gap_ns - d->rec_start_gap_ns) / NSEC_PER_USEC;
        m->freq_avg_khz = d->rec_freq_n ? d->rec_freq_sum / (double)d->rec_freq_n : NAN;
        if (d->nsteps > 0) {
                jd_copy(m->job_id, sizeof(m->job_id), d->steps[0].job_id);
                m->step_id = d->steps[0].step_id;
        }
        for (size_t i = 0; i < s->ndomains && m->ndomains < JL_MSG_DOMAINS_MAX; i++) {
                jd_copy(m->domains[m->ndomains].name, sizeof(m->domains[0].name), s->domains[i].name);
                m->domains[m->ndomains++].energy_uj = s->domains[i].energy_uj - d->rec_start_dom_uj[i];
        }
        return 0;
}

static int arm_at(int tfd, uint64_t t_ns)
{
        struct itimerspec its = {.it_value = ns_to_timespec(t_ns)};
        return timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0 ? negative_errno() : 0;
}

void *jd_monitor_thread(void *userdata)
{
        jouled *d = userdata;
        _cleanup_close_ int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (tfd < 0) {
                log_error(errno, "monitor: timerfd_create: %s", strerror(errno));
                return NULL;
        }
        /* Regular samples every node.sample_ms; in between, the guard reads the sampler asks for (only the
         * providers of counters that would otherwise wrap unseen, as often as their power needs). */
        pthread_mutex_lock(&d->lock);
        uint64_t armed_ns = d->sample_ns;
        jl_sampler_set_interval(d->sampler, armed_ns);
        pthread_mutex_unlock(&d->lock);
        uint64_t next_ns = mono_ns() + armed_ns;
        for (;;) {
                pthread_mutex_lock(&d->lock);
                uint64_t wake_ns = MIN(next_ns, jl_sampler_next_due_ns(d->sampler));
                pthread_mutex_unlock(&d->lock);
                if (arm_at(tfd, wake_ns) < 0) {
                        log_error(errno, "monitor: arming the timer: %s", strerror(errno));
                        break;
                }
                struct pollfd pfd[2] = {{.fd = tfd, .events = POLLIN}, {.fd = d->stop_fd, .events = POLLIN}};
                if (poll(pfd, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        log_error(errno, "monitor: poll: %s", strerror(errno));
                        break;
                }
                if (pfd[1].revents)
                        break;
                uint64_t ticks;
                if (read(tfd, &ticks, sizeof(ticks)) < 0)
                        continue;
                uint64_t now = mono_ns();
                if (now < next_ns) {
                        pthread_mutex_lock(&d->lock);
                        jl_sampler_guard_at(d->sampler, now);
                        pthread_mutex_unlock(&d->lock);
                        continue;
                }
                /* the next regular sample: one period on, or one period from now after a stall */
                next_ns = next_ns + armed_ns > now ? next_ns + armed_ns : now + armed_ns;

                jl_msg_record rec;
                bool emit = false;
                pthread_mutex_lock(&d->lock);
                jd_sample_locked(d);
                if (!d->rec_open)
                        jd_record_restart_locked(d);
                else if (d->snap.t_ns - d->rec_start_ns + d->sample_ns / 2 >= d->period_ns) {
                        int r = record_build(d, &rec);
                        if (r < 0)
                                log_error(r,
                                          "monitor: cannot persist the next sequence number in %s: %s; "
                                          "this period's record is kept open",
                                          d->cfg.node.state_dir, strerror(-r));
                        else {
                                emit = true;
                                d->records_sent++;
                                jd_record_restart_locked(d);
                                if (d->nsteps > 0)
                                        (void)jd_state_save_steps(d);
                        }
                }
                /* queued under the lock so that the sink sees sequence numbers in order */
                int qr = emit ? jd_sink_record(d->sink, &rec) : 0;
                uint64_t want_ns = d->sample_ns;
                pthread_mutex_unlock(&d->lock);
                if (emit)
                        jd_sink_log_changes(d->sink);
                if (qr < 0)
                        log_error(qr, "monitor: record %llu not queued: %s", (unsigned long long)rec.seq,
                                  strerror(-qr));
                if (want_ns != armed_ns) {
                        pthread_mutex_lock(&d->lock);
                        jl_sampler_set_interval(d->sampler, want_ns);
                        pthread_mutex_unlock(&d->lock);
                        next_ns = next_ns - armed_ns + want_ns;
                        armed_ns = want_ns;
                }
        }
        return NULL;
}
