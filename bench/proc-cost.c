/* proc-cost.c - runs a command and reports what the command's own process cost, excluding its children:
 * CPU time from /proc/PID/schedstat (the scheduler's exact on-CPU nanoseconds) and /proc/PID/stat (utime +
 * stime, clock ticks), both read once the process has exited but before it is reaped (waitid(WNOWAIT)),
 * so that they are final; its peak RSS from /proc/PID/status VmHWM, polled while it runs; and the rusage
 * of the whole tree (the process and its reaped children) from wait4(). Used by bench/run.sh for
 * `joule measure -- sleep 10`: joule's own cost without sleep's.
 *   proc-cost [--timeout S] [-o FILE] -- CMD [ARGS...]
 * Prints one line of key=value pairs on stdout (or into FILE); exits with the command's exit code. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long read_hwm_kib(pid_t pid)
{
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return -1;
        long kib = -1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

static long long read_schedstat_ns(pid_t pid)
{
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return -1;
        long long ns = -1;
        if (fscanf(f, "%lld", &ns) != 1)
                ns = -1;
        fclose(f);
        return ns;
}

/* utime, stime, cutime, cstime (fields 14-17) and num_threads (field 20) of /proc/PID/stat. */
static int read_stat(pid_t pid, long long t[4], long *nthreads)
{
        char path[64], buf[2048];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *p = strrchr(buf, ')'); /* the command name may hold spaces */
        if (!p)
                return -EINVAL;
        /* after ')': field 3 (state) onwards */
        char state;
        long long skip;
        int k = sscanf(
            p + 1, " %c %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %ld",
            &state, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &t[0], &t[1],
            &t[2], &t[3], &skip, &skip, nthreads);
        return k == 18 ? 0 : -EINVAL;
}

int main(int argc, char **argv)
{
        double timeout_s = 120;
        const char *out_path = NULL;
        int i = 1;
        for (; i < argc; i++) {
                if (strcmp(argv[i], "--") == 0) {
                        i++;
                        break;
                }
                if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
                        timeout_s = strtod(argv[++i], NULL);
                else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
                        out_path = argv[++i];
                else
                        break;
        }
        if (i >= argc || !(timeout_s > 0)) {
                fprintf(stderr, "usage: proc-cost [--timeout S] [-o FILE] -- CMD [ARGS...]\n");
                return 2;
        }

        double t0 = now_s();
        pid_t pid = fork();
        if (pid < 0) {
                perror("proc-cost: fork");
                return 1;
        }
        if (pid == 0) {
                execvp(argv[i], argv + i);
                perror("proc-cost: exec");
                _exit(127);
        }

        long hwm = -1, nthreads = 0, nthreads_max = 0;
        bool killed = false;
        for (;;) {
                siginfo_t si = {0};
                if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT | WNOHANG) < 0) {
                        perror("proc-cost: waitid");
                        return 1;
                }
                if (si.si_pid == pid)
                        break;
                long h = read_hwm_kib(pid);
                if (h > hwm)
                        hwm = h;
                long long t[4];
                if (read_stat(pid, t, &nthreads) == 0 && nthreads > nthreads_max)
                        nthreads_max = nthreads;
                if (!killed && now_s() - t0 > timeout_s) {
                        fprintf(stderr, "proc-cost: timeout after %.0f s, killing %d\n", timeout_s,
                                (int)pid);
                        kill(pid, SIGKILL);
                        killed = true;
                }
                nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
        }
        double wall = now_s() - t0;

        /* A zombie now: its own counters are final and still readable. */
        long long own_ns = read_schedstat_ns(pid);
        long long t[4] = {-1, -1, -1, -1};
        read_stat(pid, t, &nthreads);
        long tck = sysconf(_SC_CLK_TCK);

        int status;
        struct rusage ru;
        if (wait4(pid, &status, 0, &ru) != pid) {
                perror("proc-cost: wait4");
                return 1;
        }
        FILE *out = out_path ? fopen(out_path, "we") : stdout;
        if (!out) {
                perror("proc-cost: -o");
                return 1;
        }
        double tree_ms = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
                         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
        fprintf(out,
                "wall_s=%.3f own_cpu_ms=%.3f own_stat_ms=%.0f children_stat_ms=%.0f tree_cpu_ms=%.3f "
                "tree_maxrss_kib=%ld hwm_kib=%ld threads=%ld exit=%d\n",
                wall, own_ns >= 0 ? (double)own_ns / 1e6 : -1.0,
                t[0] >= 0 ? (double)(t[0] + t[1]) * 1e3 / (double)tck : -1.0,
                t[2] >= 0 ? (double)(t[2] + t[3]) * 1e3 / (double)tck : -1.0, tree_ms, ru.ru_maxrss, hwm,
                nthreads_max, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        if (out != stdout)
                fclose(out);
        else
                fflush(stdout);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
