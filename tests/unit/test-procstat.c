/* test-procstat.c - the /proc/stat and /proc/PID/stat parsers against good and bad text, utilization
 * deltas, CPU lists, and the process-tree walk and proc provider on this machine's real /proc. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "parse.h"
#include "procstat.h"
#include "provider.h"
#include "tap.h"
#include "timeutil.h"

static void test_proc_stat(void)
{
        jl_cpu_times t = {.user = 77};
        const char *full = "cpu  1000 20 300 8000 100 10 20 50 5 1\n"
                           "cpu0 500 10 150 4000 50 5 10 25 3 0\n"
                           "cpu1 500 10 150 4000 50 5 10 25 2 1\n"
                           "intr 12345 0 0 0\nctxt 999\nbtime 1700000000\n";
        is_int(jl_parse_proc_stat_cpu(full, &t), 2, "full /proc/stat: two cpuN lines");
        ok(t.user == 1000 && t.nice == 20 && t.system == 300 && t.idle == 8000 && t.iowait == 100 &&
               t.irq == 10 && t.softirq == 20 && t.steal == 50 && t.guest == 5 && t.guest_nice == 1,
           "all ten fields");

        is_int(jl_parse_proc_stat_cpu("cpu  1 2 3 4 5 6 7 8\n", &t), 0,
               "8 fields (no guest), no cpuN lines");
        ok(t.user == 1 && t.steal == 8 && t.guest == 0 && t.guest_nice == 0, "guest fields default to 0");
        is_int(jl_parse_proc_stat_cpu("cpu  1 2 3 4 5 6 7 8 9 10 11 12", &t), 0,
               "future extra fields ignored");
        is_int(jl_parse_proc_stat_cpu("cpu  18446744073709551615 0 0 0 0 0 0 0 0 0\n", &t), 0, "u64 max");
        ok(t.user == UINT64_MAX, "u64 max value");

        t.user = 77;
        is_int(jl_parse_proc_stat_cpu("", &t), -EINVAL, "empty text");
        is_int(jl_parse_proc_stat_cpu(NULL, &t), -EINVAL, "NULL");
        is_int(jl_parse_proc_stat_cpu("hello world\n", &t), -EINVAL, "garbage");
        is_int(jl_parse_proc_stat_cpu("\x01\x02\xff", &t), -EINVAL, "binary garbage");
        is_int(jl_parse_proc_stat_cpu("cpu  1 2 3", &t), -EINVAL, "truncated line");
        is_int(jl_parse_proc_stat_cpu("cpu  1 2 3 4 5 6 7\n", &t), -EINVAL, "7 fields: steal missing");
        is_int(jl_parse_proc_stat_cpu("cpu  -1 2 3 4 5 6 7 8 9 10\n", &t), -EINVAL, "negative");
        is_int(jl_parse_proc_stat_cpu("cpu  1 2 3 4 5 6 7 8 9 +10\n", &t), -EINVAL, "plus sign");
        is_int(jl_parse_proc_stat_cpu("cpu  99999999999999999999 2 3 4 5 6 7 8 9 10\n", &t), -ERANGE,
               "value above 2^64-1");
        is_int(jl_parse_proc_stat_cpu("cpu  123456789012345678901234567890123456789 2 3 4 5 6 7 8\n", &t),
               -ERANGE, "40-digit value");
        is_int(jl_parse_proc_stat_cpu("cpu  1 2 3 4 5 6 7 8x 9 10\n", &t), -EINVAL,
               "trailing garbage in a field");
        is_int(jl_parse_proc_stat_cpu("cpu  1 2 3 4 5 6 7 8 9 10 abc\n", &t), -EINVAL,
               "garbage field at the end");
        is_int(jl_parse_proc_stat_cpu("cpu  1.5 2 3 4 5 6 7 8\n", &t), -EINVAL, "fraction");
        is_int(jl_parse_proc_stat_cpu("cpu0 1 2 3 4 5 6 7 8\nintr 1\n", &t), -EINVAL,
               "missing aggregate line");
        is_int(jl_parse_proc_stat_cpu("intr 1 2 3\nctxt 5\n", &t), -EINVAL, "no cpu line at all");
        is_int(jl_parse_proc_stat_cpu("cpu  1 2 3 4 5 6 7 8\ncpu  1 2 3 4 5 6 7 8\n", &t), -EINVAL,
               "repeated aggregate line");
        is_int(jl_parse_proc_stat_cpu("cpu  1 2 3 4 5 6 7 8\ncpu0 1 2 3\n", &t), -EINVAL,
               "truncated cpu0 line");
        is_int(jl_parse_proc_stat_cpu("cpu  1 2 3 4 5 6 7 8\ncpuX 1 2 3 4 5 6 7 8\n", &t), -EINVAL,
               "cpuX label");
        is_int(jl_parse_proc_stat_cpu("cpu\n", &t), -EINVAL, "label without fields");
        is_int(t.user, 77, "failed parses leave the output untouched");

        /* The machine's own /proc/stat parses. */
        jl_proc_stat_reader r = JL_PROC_STAT_READER_INIT;
        is_int(jl_proc_stat_open(&r), 0, "open /proc/stat");
        int n = jl_proc_stat_read(&r, &t);
        ok(n >= 1, "this machine's /proc/stat: %d CPUs", n);
        ok(jl_proc_stat_read(&r, &t) == n, "re-read on the same descriptor");
        jl_proc_stat_close(&r);
}

static void test_delta(void)
{
        jl_cpu_times a = {.user = 100,
                          .nice = 0,
                          .system = 50,
                          .idle = 800,
                          .iowait = 50,
                          .irq = 0,
                          .softirq = 0,
                          .steal = 0};
        jl_cpu_times b = a;
        b.user += 200;
        b.system += 50;
        b.steal += 50;
        b.idle += 600;
        b.iowait += 100;
        double u = -1, s = -1;
        is_int(jl_cpu_times_delta(&a, &b, &u, &s), 0, "delta");
        is_near(u, 300.0 / 1000.0, 1e-12, "utilization 0.3 (steal counts as busy)");
        is_near(s, 0.05, 1e-12, "steal 0.05");
        u = -1;
        is_int(jl_cpu_times_delta(&a, &a, &u, &s), -EAGAIN, "no tick passed");
        is_near(u, -1, 0, "output untouched");
        jl_cpu_times c = b;
        c.iowait = a.iowait - 10; /* iowait going backwards */
        c.idle = b.idle;
        is_int(jl_cpu_times_delta(&b, &c, &u, &s), -EAGAIN, "only a backwards field: no tick");
        c.user = b.user + 10;
        is_int(jl_cpu_times_delta(&b, &c, &u, &s), 0, "backwards iowait counts as 0");
        is_near(u, 1.0, 1e-12, "utilization 1");
        jl_cpu_times big = {.user = UINT64_MAX, .idle = UINT64_MAX};
        jl_cpu_times zero = {0};
        is_int(jl_cpu_times_delta(&zero, &big, &u, &s), 0, "huge deltas do not overflow");
        is_near(u, 0.5, 1e-9, "utilization 0.5 from huge values");
}

static void test_pid_stat(void)
{
        jl_pid_stat st = {.pid = 77};
        const char *plain =
            "6168 (cat) R 6161 6161 3491 0 -1 4194304 97 0 0 0 12 34 5 6 20 0 1 0 125839 3133440 366 "
            "18446744073709551615 94911552958464 94911552978345 140730698979120 0 0 0 0 0 0 0 0 0 "
            "17 0 0 0 0 0 0\n";
        is_int(jl_parse_pid_stat(plain, &st), 0, "plain stat");
        ok(st.pid == 6168 && st.ppid == 6161 && st.state == 'R', "pid, ppid, state");
        is_str(st.comm, "cat", "comm");
        ok(st.utime == 12 && st.stime == 34 && st.cutime == 5 && st.cstime == 6,
           "utime stime cutime cstime");
        ok(st.num_threads == 1 && st.starttime == 125839, "threads, starttime");

        is_int(jl_parse_pid_stat("42 (my prog) S 1 42 42 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 99 0 0\n", &st), 0,
               "comm with a space");
        is_str(st.comm, "my prog", "comm 'my prog'");
        ok(st.utime == 7 && st.stime == 8, "fields after a spaced comm");
        is_int(jl_parse_pid_stat("43 (a) b) (c ) S 1 1 1 0 -1 0 0 0 0 0 9 10 11 12 20 0 3 0 100 0 0\n", &st),
               0, "comm with ')' and '(' inside");
        is_str(st.comm, "a) b) (c ", "comm up to the last ')'");
        ok(st.utime == 9 && st.cstime == 12 && st.num_threads == 3, "fields after a tricky comm");
        is_int(jl_parse_pid_stat("44 () Z 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100\n", &st), 0,
               "empty comm, zombie, exactly 22 fields");
        ok(st.state == 'Z', "state Z");
        is_int(jl_parse_pid_stat("45 (x) S 1 1 1 0 -1 0 0 0 0 0 1 2 3 4 -2 -5 1 0 100\n", &st), 0,
               "negative priority and nice are valid");

        st.pid = 77;
        is_int(jl_parse_pid_stat("", &st), -EINVAL, "empty");
        is_int(jl_parse_pid_stat(NULL, &st), -EINVAL, "NULL");
        is_int(jl_parse_pid_stat("garbage", &st), -EINVAL, "garbage");
        is_int(jl_parse_pid_stat("46 (x S 1 1 1 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 100\n", &st), -EINVAL,
               "no ')'");
        is_int(jl_parse_pid_stat("(x) S 1 1 1 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 100\n", &st), -EINVAL,
               "no pid");
        is_int(jl_parse_pid_stat("-4 (x) S 1 1 1 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 100\n", &st), -EINVAL,
               "negative pid");
        is_int(jl_parse_pid_stat("47 (x) S 1 1 1 0 -1 0 0 0 0 0 1 2 3\n", &st), -EINVAL, "truncated");
        is_int(jl_parse_pid_stat("48 (x) S 1 1 1 0 -1 0 0 0 0 0 -1 2 3 4 20 0 1 0 100\n", &st), -EINVAL,
               "negative utime");
        is_int(jl_parse_pid_stat("49 (x) S 1 1 1 0 -1 0 0 0 0 0 1 2 -3 4 20 0 1 0 100\n", &st), -EINVAL,
               "negative cutime");
        is_int(jl_parse_pid_stat("50 (x) S 1 1 1 0 -1 0 0 0 0 0 99999999999999999999 2 3 4 20 0 1 0 100\n",
                                 &st),
               -ERANGE, "utime above 2^64-1");
        is_int(jl_parse_pid_stat("51 (x) S 1 1 1 0 -1 0 0 0 0 0 1x 2 3 4 20 0 1 0 100\n", &st), -EINVAL,
               "garbage field");
        is_int(jl_parse_pid_stat("52 (x) SS 1 1 1 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 100\n", &st), -EINVAL,
               "two-letter state");
        is_int(jl_parse_pid_stat("53 (x)S 1 1 1 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 100\n", &st), -EINVAL,
               "no space after ')'");
        is_int(jl_parse_pid_stat("99999999999 (x) S 1 1 1 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 100\n", &st),
               -ERANGE, "pid beyond int");
        is_int(st.pid, 77, "failed parses leave the output untouched");
}

static void test_cpu_list(void)
{
        uint64_t m[2] = {0, 0};
        is_int(parse_cpu_list("0-3\n", m, 128), 4, "online '0-3'");
        uint64_t m2[2] = {0, 0};
        is_int(parse_cpu_list("0-3,2-5", m2, 128), 6, "overlapping ranges counted once");
        uint64_t m3[2] = {0, 0};
        is_int(parse_cpu_list("0,127", m3, 128), 2, "last CPU");
        ok(m3[1] == UINT64_C(1) << 63, "bit 127");
        is_int(parse_cpu_list("1-", m3, 128), -EINVAL, "open range");
        is_int(parse_cpu_list("-1", m3, 128), -EINVAL, "negative");
        is_int(parse_cpu_list("a", m3, 128), -EINVAL, "letter");
        is_int(parse_cpu_list("0-3 junk", m3, 128), -EINVAL, "trailing junk");
        is_int(parse_cpu_list("99999999999999999999999", m3, 128), -ERANGE, "huge CPU number");
        is_int(parse_cpu_list("128", m3, 128), -ERANGE, "CPU beyond the mask");
}

/* Spin on the CPU for `ms` of CPU time. */
static void spin_cpu_ms(long ms)
{
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        double end = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + (double)ms / 1e3;
        static volatile unsigned long sink;
        do {
                for (int i = 0; i < 100000; i++)
                        sink = sink + (unsigned long)i;
                clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        } while ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9 < end);
}

static void test_tree(void)
{
        uint64_t ticks = 7;
        is_int(jl_proc_tree_ticks(0, &ticks), -EINVAL, "pid 0");
        is_int(jl_proc_tree_ticks(0x3ffffff0, &ticks), -ESRCH, "no such process");
        is_int(ticks, 7, "untouched");

        /* A child that spins, with a grandchild that spins and a reaped great-grandchild that spun. */
        int go[2];
        if (pipe(go) < 0)
                return;
        fflush(stdout); /* children must not inherit (and print again) buffered TAP lines */
        pid_t child = fork();
        if (child == 0) {
                pid_t gc = fork();
                if (gc == 0) {
                        pid_t ggc = fork();
                        if (ggc == 0) {
                                spin_cpu_ms(300);
                                _exit(0);
                        }
                        waitpid(ggc, NULL, 0);
                        spin_cpu_ms(300);
                        char c;
                        (void)!read(go[0], &c, 1);
                        _exit(0);
                }
                spin_cpu_ms(300);
                char c;
                (void)!read(go[0], &c, 1);
                waitpid(gc, NULL, 0);
                _exit(0);
        }
        close(go[0]);

        /* proc provider on the child's tree, on the real /proc. */
        jl_provider_config cfg;
        jl_provider_config_default(&cfg);
        cfg.pid = child;
        jl_channels ch = {0};
        jl_notes notes = {0};
        void *state = NULL;
        is_int(jl_provider_proc.open(&cfg, &ch, &notes, &state), 0, "proc provider opens");
        is_int(ch.n, 3, "three channels with a pid");
        if (ch.n == 3) {
                is_str(ch.items[0].name, "cpu-utilization", "channel 0");
                is_str(ch.items[1].name, "cpu-steal", "channel 1");
                is_str(ch.items[2].name, "process-utilization", "channel 2");
                ok(ch.items[2].kind == JL_KIND_UTILIZATION && ch.items[2].scope == JL_SCOPE_OTHER,
                   "utilization, scope other");
        }

        /* Wait until all three spinners have used their 900 ms of CPU time (2 CPUs: ~0.5 s or more). */
        long clk = sysconf(_SC_CLK_TCK);
        uint64_t t0 = mono_ns();
        do {
                struct timespec ts = {0, 50 * 1000 * 1000};
                nanosleep(&ts, NULL);
                if (jl_proc_tree_ticks(child, &ticks) < 0)
                        ticks = 0;
        } while ((double)ticks / (double)clk < 0.85 && mono_ns() - t0 < 10 * NSEC_PER_SEC);
        ok((double)ticks / (double)clk >= 0.85,
           "the tree's CPU time includes child, grandchild and reaped great-grandchild: %.2f s",
           (double)ticks / (double)clk);

        jl_value v[3] = {{0}};
        is_int(jl_provider_proc.read(state, v), 0, "read");
        is_int(v[0].err, 0, "cpu-utilization readable");
        ok(v[0].gauge >= 0 && v[0].gauge <= 1, "cpu-utilization %.3f in 0..1", v[0].gauge);
        ok(v[1].err == 0 && v[1].gauge >= 0 && v[1].gauge <= 1, "cpu-steal %.3f in 0..1", v[1].gauge);
        is_int(v[2].err, 0, "process-utilization readable");
        /* The tree's CPU time was checked above; a loaded machine stretches the wall time, so only ask that
         * the spinners show at all. */
        ok(v[2].gauge > 0.05 && v[2].gauge <= 1, "process-utilization %.3f: the spinners show", v[2].gauge);

        (void)!write(go[1], "xx", 2);
        close(go[1]);
        waitpid(child, NULL, 0);
        v[2] = (jl_value){0};
        is_int(jl_provider_proc.read(state, v), 0, "read after the tree is gone");
        is_int(v[2].err, -ESRCH, "process-utilization: -ESRCH once the root is reaped");
        jl_provider_proc.close(state);
        jl_channels_free(&ch);
        jl_notes_free(&notes);

        /* A pid that does not exist: two channels and a note. */
        cfg.pid = child;
        jl_channels ch2 = {0};
        jl_notes notes2 = {0};
        is_int(jl_provider_proc.open(&cfg, &ch2, &notes2, &state), 0, "proc provider with a dead pid opens");
        is_int(ch2.n, 2, "two channels");
        ok(notes2.n == 1 && notes2.items[0].err == -ESRCH, "a note says the process is gone");
        jl_value w[2] = {{0}};
        struct timespec ts = {0, 30 * 1000 * 1000};
        nanosleep(&ts, NULL);
        is_int(jl_provider_proc.read(state, w), 0, "read");
        jl_provider_proc.close(state);
        jl_channels_free(&ch2);
        jl_notes_free(&notes2);
}

int main(void)
{
        test_proc_stat();
        test_delta();
        test_pid_stat();
        test_cpu_list();
        test_tree();
        return tap_done();
}
