/* report.c - PROVISIONAL: the runtime's requests to jouled (report.h). Frequencies go through the same
 * local-socket request as libjoule-api's joule_set_cpufreq (JL_OP_SET_CPUFREQ, src/api/client.c); the
 * records (application, loops, events) are not carried by this jouled yet and return -EOPNOTSUPP (the
 * caller prints them at JOULE_VERBOSE >= 3). Replaced by the full implementation with jouled's new
 * requests. */
#include "report.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"

static char socket_path[108];

int jl_rt_report_connect(void)
{
        const char *p = jl_client_socket_path(NULL);
        int fd = -1;
        if (strlen(p) >= sizeof(socket_path))
                return -ENAMETOOLONG;
        snprintf(socket_path, sizeof(socket_path), "%s", p);
        int r = jl_client_connect(socket_path, &fd);
        if (r < 0)
                return r;
        close(fd);
        return 0;
}

void jl_rt_report_disconnect(void)
{
        socket_path[0] = '\0';
}

int jl_rt_set_cpufreq(const cpu_set_t *cpus, unsigned long khz)
{
        if (!cpus || khz > 100000000UL)
                return -EINVAL;
        if (!socket_path[0])
                return -ENOTCONN;
        jl_msg_request req = {.op = JL_OP_SET_CPUFREQ, .step_id = -1, .gpu = -1, .khz = khz};
        for (size_t cpu = 0; cpu < JL_MSG_CPUMASK_BYTES * 8 && cpu < CPU_SETSIZE; cpu++)
                if (CPU_ISSET(cpu, cpus)) {
                        req.cpumask[cpu / 8] |= (uint8_t)(1u << (cpu % 8));
                        req.cpumask_len = cpu / 8 + 1;
                }
        if (req.cpumask_len == 0)
                return -EINVAL;
        jl_client_reply rep = {.fd = -1};
        char why[256];
        int r = jl_client_request(socket_path, &req, JL_RT_REPORT_TIMEOUT_MS, &rep, why, sizeof(why));
        if (r == 0)
                r = rep.err;
        jl_client_reply_free(&rep);
        return r;
}

int jl_rt_report_app(const jl_rt_app_record *r)
{
        return r ? -EOPNOTSUPP : -EINVAL;
}

int jl_rt_report_loop(const jl_rt_loop_record *r)
{
        return r ? -EOPNOTSUPP : -EINVAL;
}

int jl_rt_report_event(const char *kind, double value, const char *message)
{
        (void)value;
        return kind && message ? -EOPNOTSUPP : -EINVAL;
}
