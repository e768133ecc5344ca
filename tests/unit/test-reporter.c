/* test-reporter.c - the reporter's spool without a dbd (tests/system/test-dbd.sh covers the link): what
 * submit refuses, messages kept across a restart in order, a torn tail cut off, a foreign file refused. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reporter.h"
#include "tap.h"

static jl_msg_record rec(const char *node, uint64_t seq)
{
        jl_msg_record m = {.seq = seq,
                           .start_us = seq * 1000000,
                           .end_us = (seq + 1) * 1000000,
                           .energy_uj = 1000 + seq,
                           .avg_power_w = 0.001,
                           .temp_max_c = NAN,
                           .freq_avg_khz = NAN,
                           .step_id = -1};
        snprintf(m.node, sizeof(m.node), "%s", node);
        return m;
}

int main(void)
{
        char dir[] = "/tmp/joule-test-reporter.XXXXXX";
        if (!mkdtemp(dir))
                return 1;
        char spool[256], err[512] = "";
        snprintf(spool, sizeof(spool), "%s/sub/dir/records.spool", dir);
        /* port 1 on loopback: nothing listens, the reporter keeps retrying */
        jl_reporter_opts o = {.node = "n1", .dbd = "127.0.0.1:1", .spool = spool, .backoff_max_ms = 200};
        jl_reporter *r;
        is_int(jl_reporter_new(&o, &r, err, sizeof(err)), 0, "reporter starts with the dbd down (%s)", err);

        jl_msg_record m = rec("n2", 1);
        is_int(jl_reporter_submit_record(r, &m), -EINVAL, "another node's record is refused");
        m = rec("n1", 0);
        is_int(jl_reporter_submit_record(r, &m), -EINVAL, "seq 0 is refused");
        int bad = 0;
        for (uint64_t s = 1; s <= 100; s++) {
                m = rec("n1", s);
                bad += jl_reporter_submit_record(r, &m) != 0;
        }
        is_int(bad, 0, "100 records queued");
        m = rec("n1", 100);
        is_int(jl_reporter_submit_record(r, &m), -EINVAL, "a seq not above the last is refused");
        m = rec("n1", 101);
        strcpy(m.job_id, "12a");
        is_int(jl_reporter_submit_record(r, &m), -EINVAL, "a job id that is not decimal is refused");
        jl_msg_job j = {.seq = 101, .end = false, .step_id = 0, .time_us = 5};
        strcpy(j.node, "n1");
        strcpy(j.job_id, "777");
        strcpy(j.user, "bob smith");
        is_int(jl_reporter_submit_job(r, &j), -EINVAL, "a user name with a space is refused");
        strcpy(j.user, "bob");
        is_int(jl_reporter_submit_job(r, &j), 0, "a job begin is queued");
        jl_reporter_status st;
        jl_reporter_get_status(r, &st);
        ok(st.pending == 101 && st.last_seq == 101 && !st.connected,
           "status: 101 pending, last seq 101, not connected");
        for (int i = 0; i < 100 && !st.last_error[0]; i++) {
                usleep(20000);
                jl_reporter_get_status(r, &st);
        }
        ok(st.last_error[0] != '\0', "the status says why: %s", st.last_error);
        jl_reporter_free(r, 0);

        struct stat sb;
        is_int(stat(spool, &sb), 0, "the spool exists (directories created)");
        off_t size = sb.st_size;
        is_int(jl_reporter_new(&o, &r, err, sizeof(err)), 0, "reporter restarts on the spool");
        jl_reporter_get_status(r, &st);
        ok(st.pending == 101 && st.last_seq == 101 && st.spool_dropped_bytes == 0,
           "101 messages back from the spool");
        m = rec("n1", 101);
        is_int(jl_reporter_submit_record(r, &m), -EINVAL, "seq continues above the spool's last");
        m = rec("n1", 102);
        is_int(jl_reporter_submit_record(r, &m), 0, "and 102 is taken");
        jl_reporter_free(r, 0);

        /* a torn tail: half an entry's header and garbage */
        int fd = open(spool, O_WRONLY | O_APPEND);
        ok(fd >= 0 && write(fd, "\0\0\1\0garbage", 11) == 11, "a torn tail appended");
        close(fd);
        is_int(jl_reporter_new(&o, &r, err, sizeof(err)), 0, "reporter starts on a torn spool");
        jl_reporter_get_status(r, &st);
        ok(st.pending == 102 && st.spool_dropped_bytes == 11,
           "102 messages kept, the 11 torn bytes cut off");
        jl_reporter_free(r, 0);
        is_int(stat(spool, &sb), 0, "spool still there");
        ok(sb.st_size > size, "and it grew by record 102 only");

        /* renamed node: its old messages are reported and dropped */
        jl_reporter_opts o2 = o;
        o2.node = "n1-renamed";
        is_int(jl_reporter_new(&o2, &r, err, sizeof(err)), 0, "a renamed node starts");
        jl_reporter_get_status(r, &st);
        /* (the words may already be replaced by the thread's first connect error: last_error is the latest)
         */
        ok(st.pending == 0 && st.last_seq == 0 &&
               (strstr(st.last_error, "another node name") || strstr(st.last_error, "connect")),
           "old name's messages dropped: %s", st.last_error);
        jl_reporter_free(r, 0);

        /* not a spool */
        fd = open(spool, O_WRONLY | O_TRUNC);
        ok(fd >= 0 && write(fd, "hello world, not a spool", 24) == 24, "spool overwritten with text");
        close(fd);
        is_int(jl_reporter_new(&o, &r, err, sizeof(err)), -EINVAL, "a foreign file is refused: %s", err);
        o.dbd = "no-port";
        is_int(jl_reporter_new(&o, &r, err, sizeof(err)), -EINVAL, "a bad node.dbd is refused: %s", err);

        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd) != 0)
                return 1;
        return tap_done();
}
