/* share.c - each job step's share of the node's energy on a shared node (docs/slurm.md, "Shared nodes"):
 * between two samples the node's energy is split among the jobs whose steps have a live leader process
 * (the process that began the step: slurmstepd, through the Slurm plugin) in proportion to the CPU time of
 * their processes (each leader and all its descendants, /proc/PID/stat: utime + stime + cutime + cstime,
 * so that reaped children count), evenly when none used any; each open step of a job accrues its job's
 * share. Steps without a live leader (`joule job begin` by hand, steps read back after a restart) take no
 * part and keep the node's energy. Called with the lock held, after each sample. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jouled.h"
#include "macro.h"

typedef struct {
        pid_t pid, ppid;
        uint64_t ticks;
} proc_cpu;

/* Every process's parent and CPU ticks (its own and its reaped children's). */
static int read_procs(proc_cpu **ret, size_t *ret_n)
{
        DIR *dir = opendir("/proc");
        if (!dir)
                return -errno;
        proc_cpu *v = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        while ((de = readdir(dir))) {
                if (!isdigit((unsigned char)de->d_name[0]))
                        continue;
                char path[300], buf[1024];
                snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                ssize_t k = read(fd, buf, sizeof(buf) - 1);
                close(fd);
                if (k <= 0)
                        continue;
                buf[k] = '\0';
                char *p = strrchr(buf, ')'); /* the command may hold spaces and parentheses */
                unsigned long long f[15];
                int ppid;
                /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
                 * stime cutime cstime */
                if (!p ||
                    sscanf(p + 1, " %*c %d %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
                           &ppid, &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8], &f[9],
                           &f[10], &f[11], &f[12]) != 14)
                        continue;
                if (n == cap) {
                        cap = cap ? 2 * cap : 512;
                        proc_cpu *nv = realloc(v, cap * sizeof(*v));
                        if (!nv) {
                                free(v);
                                closedir(dir);
                                return -ENOMEM;
                        }
                        v = nv;
                }
                v[n++] =
                    (proc_cpu){.pid = atoi(de->d_name), .ppid = ppid, .ticks = f[9] + f[10] + f[11] + f[12]};
        }
        closedir(dir);
        *ret = v;
        *ret_n = n;
        return 0;
}

static int cmp_pid(const void *a, const void *b)
{
        pid_t x = ((const proc_cpu *)a)->pid, y = ((const proc_cpu *)b)->pid;
        return (x > y) - (x < y);
}

/* CPU ticks of each leader's process tree (the leader and its descendants): every process walks up its
 * ancestors (v sorted by pid, found by binary search; at most 64 levels) until it meets a leader. */
static void tree_ticks(proc_cpu *v, size_t n, const pid_t *leaders, size_t nleaders, uint64_t *ret)
{
        memset(ret, 0, nleaders * sizeof(*ret));
        qsort(v, n, sizeof(*v), cmp_pid);
        for (size_t i = 0; i < n; i++) {
                const proc_cpu *p = &v[i];
                for (int depth = 0; p && depth < 64; depth++) {
                        size_t l = 0;
                        while (l < nleaders && leaders[l] != p->pid)
                                l++;
                        if (l < nleaders) {
                                ret[l] += v[i].ticks;
                                break;
                        }
                        if (p->ppid <= 1)
                                break;
                        proc_cpu key = {.pid = p->ppid};
                        p = bsearch(&key, v, n, sizeof(*v), cmp_pid);
                }
        }
}

static bool leader_alive(const jd_step *st)
{
        return st->share_leader > 0 && (kill(st->share_leader, 0) == 0 || errno == EPERM);
}

void jd_share_update(jouled *d)
{
        uint64_t e = d->snap.node_energy_uj;
        uint64_t de = e >= d->share_last_energy_uj ? e - d->share_last_energy_uj : 0;
        d->share_last_energy_uj = e;
        bool any = false;
        for (size_t i = 0; i < d->nsteps; i++)
                any |= d->steps[i].share_leader > 0;
        if (!any)
                return;
        proc_cpu *v = NULL;
        size_t n = 0;
        if (read_procs(&v, &n) < 0)
                return;
        uint64_t delta[JD_STEPS_MAX] = {0}, ticks[JD_STEPS_MAX];
        bool live[JD_STEPS_MAX] = {false};
        pid_t leaders[JD_STEPS_MAX];
        for (size_t i = 0; i < d->nsteps; i++) {
                live[i] = d->steps[i].share_leader > 0 && leader_alive(&d->steps[i]);
                leaders[i] = live[i] ? d->steps[i].share_leader : -1;
        }
        tree_ticks(v, n, leaders, d->nsteps, ticks);
        for (size_t i = 0; i < d->nsteps; i++) {
                jd_step *st = &d->steps[i];
                if (!live[i])
                        continue;
                delta[i] = ticks[i] > st->share_ticks ? ticks[i] - st->share_ticks : 0;
                st->share_ticks = MAX(ticks[i], st->share_ticks);
        }
        /* per job: the CPU time of all its live steps; the total over jobs */
        uint64_t job_delta[JD_STEPS_MAX] = {0}, total = 0;
        size_t first[JD_STEPS_MAX], njobs = 0; /* first[i]: index of the first step of i's job */
        for (size_t i = 0; i < d->nsteps; i++) {
                first[i] = i;
                if (!live[i])
                        continue;
                for (size_t j = 0; j < i; j++)
                        if (live[j] && strcmp(d->steps[j].job_id, d->steps[i].job_id) == 0) {
                                first[i] = first[j];
                                break;
                        }
                if (first[i] == i)
                        njobs++;
                job_delta[first[i]] += delta[i];
                total += delta[i];
        }
        for (size_t i = 0; i < d->nsteps; i++) {
                if (!live[i])
                        continue;
                jd_step *st = &d->steps[i];
                if (total > 0)
                        st->share_uj += (uint64_t)((long double)de * job_delta[first[i]] / total);
                else
                        st->share_uj += de / njobs;
        }
        free(v);
}

void jd_share_begin(jouled *d, jd_step *st, pid_t leader)
{
        proc_cpu *v = NULL;
        size_t n = 0;
        st->share_leader = leader;
        st->share_uj = 0;
        st->share_ticks = 0;
        if (leader <= 0 || read_procs(&v, &n) < 0)
                return;
        uint64_t t;
        tree_ticks(v, n, &leader, 1, &t);
        st->share_ticks = t;
        free(v);
}
