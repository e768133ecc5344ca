/* rt-record.h - a runtime record as it travels (proto's jl_msg_rt) turned into the store's row
 * (jl_store_rt), for the two places that store them: jouled writing its own store and joule-dbd. Header
 * only, so that neither src/store nor src/proto depends on the other; the row points into the message. */
#pragma once

#include "cluster.h"
#include "msg.h"

static inline void jl_rt_record_to_store(const jl_msg_rt *m, jl_store_rt *ret)
{
        int64_t job = 0;
        (void)jl_msg_job_id_parse(m->job_id, &job);
        *ret = (jl_store_rt){.kind = m->kind,
                             .node = m->node,
                             .seq = m->seq,
                             .job_id = job,
                             .step_id = m->step_id,
                             .time_us = (int64_t)m->time_us,
                             .name = m->name,
                             .policy = m->policy,
                             .tag = m->tag,
                             .message = m->message,
                             .policy_th = m->policy_th,
                             .time_s = m->time_s,
                             .energy_j = m->energy_j,
                             .avg_power_w = m->avg_power_w,
                             .pck_power_w = m->pck_power_w,
                             .dram_power_w = m->dram_power_w,
                             .cpi = m->cpi,
                             .tpi = m->tpi,
                             .gbs = m->gbs,
                             .gflops = m->gflops,
                             .time_per_iteration_s = m->time_per_iteration_s,
                             .value = m->value,
                             .iterations = (int64_t)m->iterations,
                             .avg_cpufreq_khz = (int64_t)m->avg_cpufreq_khz,
                             .def_cpufreq_khz = (int64_t)m->def_cpufreq_khz};
}
