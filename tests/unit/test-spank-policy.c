/* test-spank-policy.c - spank_joule.so's option values and the policies section's rights
 * (src/spank/policy.c): what each user may ask for, and what a step runs with when a request is refused. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "config.h"
#include "policy.h"
#include "tap.h"

static jl_spank_opts opts(void)
{
        return (jl_spank_opts){.enabled = -1};
}

static int cfg(joule_config *c, const char *yaml)
{
        char err[256] = "";
        joule_config_init(c);
        int r = joule_config_load_string(c, "t.yml", yaml, strlen(yaml), err, sizeof(err));
        if (r < 0)
                printf("# %s\n", err);
        return r;
}

/* mask as a CPU list, for the messages and comparisons */
static const char *list(const uint64_t *m, size_t nbits)
{
        static char buf[512];
        size_t n = 0;
        buf[0] = '\0';
        for (size_t c = 0; c < nbits; c++)
                if ((m[c / 64] >> (c % 64)) & 1)
                        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%zu", n ? "," : "", c);
        return buf;
}

static void test_cores(void)
{
        uint64_t m[2];
        /* 2 sockets x 2 cores x 2 threads, Linux's usual numbering: the siblings of CPUs 0-3 are 4-7 */
        jl_spank_cpu_topo smt[8];
        for (int c = 0; c < 8; c++)
                smt[c] = (jl_spank_cpu_topo){.cpu = c, .package = (c % 4) / 2, .core = c % 2};
        is_int(jl_spank_cores_to_cpus("0", smt, 8, m, 128), 2, "SMT: core 0 is two CPUs");
        is_str(list(m, 128), "0,4", "... CPUs 0 and 4");
        is_int(jl_spank_cores_to_cpus("2-3", smt, 8, m, 128), 4, "SMT: cores 2-3 (socket 1)");
        is_str(list(m, 128), "2,3,6,7", "... CPUs 2,3,6,7");
        /* one thread per core, CPUs alternating between the sockets; sparse core ids */
        jl_spank_cpu_topo alt[4] = {{0, 0, 0}, {1, 1, 0}, {2, 0, 8}, {3, 1, 8}};
        is_int(jl_spank_cores_to_cpus("1", alt, 4, m, 128), 1, "alternating sockets: core 1");
        is_str(list(m, 128), "2", "... is CPU 2 (socket 0's second core, core_id 8)");
        is_int(jl_spank_cores_to_cpus("2", alt, 4, m, 128), 1, "core 2");
        is_str(list(m, 128), "1", "... is CPU 1 (socket 1's first core)");
        /* the plain case: the ids are the CPU numbers */
        jl_spank_cpu_topo flat[4] = {{0, 0, 0}, {1, 0, 1}, {2, 0, 2}, {3, 0, 3}};
        is_int(jl_spank_cores_to_cpus("1-3", flat, 4, m, 128), 3, "one socket, one thread per core");
        is_str(list(m, 128), "1,2,3", "... the same numbers");
        /* bad input */
        is_int(jl_spank_cores_to_cpus("4", flat, 4, m, 128), -EINVAL, "a core beyond the node's: -EINVAL");
        is_int(jl_spank_cores_to_cpus("0-2,9", flat, 4, m, 128), -EINVAL, "one core beyond: -EINVAL");
        is_int(jl_spank_cores_to_cpus("x", flat, 4, m, 128), -EINVAL, "not a list: -EINVAL");
        is_int(jl_spank_cores_to_cpus("", flat, 4, m, 128), -EINVAL, "empty: -EINVAL");
        is_int(jl_spank_cores_to_cpus("3-1", flat, 4, m, 128), -EINVAL, "a backwards range: -EINVAL");
        is_int(jl_spank_cores_to_cpus("0", flat, 0, m, 128), -EINVAL, "no CPUs: -EINVAL");
        jl_spank_cpu_topo unk[2] = {{0, 0, 0}, {1, -1, 1}};
        is_int(jl_spank_cores_to_cpus("0", unk, 2, m, 128), -ENOENT,
               "a place unknown: -ENOENT (ids as CPUs)");
        jl_spank_cpu_topo big[2] = {{0, 0, 0}, {200, 0, 1}};
        is_int(jl_spank_cores_to_cpus("1", big, 2, m, 128), -EINVAL, "a CPU beyond the mask: -EINVAL");
}

int main(void)
{
        test_cores();
        jl_spank_opts o = opts();
        char why[256];

        /* option values */
        is_int(jl_spank_parse_option(&o, "joule", NULL, why, sizeof(why)), 0, "--joule alone");
        is_int(o.enabled, 1, "... is on");
        o.enabled = -1;
        is_int(jl_spank_parse_option(&o, "joule", "", why, sizeof(why)), 0,
               "--joule alone as slurmstepd passes it (an empty value)");
        is_int(o.enabled, 1, "... is on");
        is_int(jl_spank_parse_option(&o, "joule", "off", why, sizeof(why)), 0, "--joule=off");
        is_int(o.enabled, 0, "... is off");
        is_int(jl_spank_parse_option(&o, "joule", "maybe", why, sizeof(why)), -EINVAL,
               "--joule=maybe refused");
        ok(strstr(why, "--joule=maybe") != NULL, "... naming the option: %s", why);
        is_int(jl_spank_parse_option(&o, "joule-policy", "min_energy", why, sizeof(why)), 0,
               "a known policy");
        is_int(jl_spank_parse_option(&o, "joule-policy", "max_speed", why, sizeof(why)), -EINVAL,
               "an unknown policy refused");
        ok(strstr(why, "--joule-policy=max_speed") != NULL, "... naming the option: %s", why);
        is_int(jl_spank_parse_option(&o, "joule-policy", NULL, why, sizeof(why)), -EINVAL,
               "a policy needs a value");
        is_int(jl_spank_parse_option(&o, "joule-policy-th", "0.1", why, sizeof(why)), 0, "threshold 0.1");
        is_near(o.th, 0.1, 1e-12, "... read");
        is_int(jl_spank_parse_option(&o, "joule-policy-th", "1.5", why, sizeof(why)), -EINVAL,
               "threshold 1.5");
        is_int(jl_spank_parse_option(&o, "joule-policy-th", "-0.1", why, sizeof(why)), -EINVAL,
               "threshold < 0");
        is_int(jl_spank_parse_option(&o, "joule-policy-th", "nan", why, sizeof(why)), -EINVAL,
               "threshold nan");
        is_int(jl_spank_parse_option(&o, "joule-policy-th", "0.1x", why, sizeof(why)), -EINVAL,
               "threshold 0.1x");
        is_int(jl_spank_parse_option(&o, "joule-cpufreq", "2400000", why, sizeof(why)), 0,
               "cpufreq 2400000");
        is_int(jl_spank_parse_option(&o, "joule-cpufreq", "0", why, sizeof(why)), -EINVAL, "cpufreq 0");
        is_int(jl_spank_parse_option(&o, "joule-cpufreq", "2.4GHz", why, sizeof(why)), -EINVAL,
               "cpufreq 2.4GHz");
        is_int(jl_spank_parse_option(&o, "joule-cpufreq", "99999999999999999999", why, sizeof(why)), -EINVAL,
               "cpufreq overflow");
        is_int(jl_spank_parse_option(&o, "joule-verbose", "4", why, sizeof(why)), 0, "verbose 4");
        is_int(jl_spank_parse_option(&o, "joule-verbose", "5", why, sizeof(why)), -EINVAL, "verbose 5");
        is_int(jl_spank_parse_option(&o, "joule-tag", "run_1", why, sizeof(why)), 0, "tag run_1");
        is_int(jl_spank_parse_option(&o, "joule-tag", "a b", why, sizeof(why)), -EINVAL,
               "a tag with a space");
        is_int(jl_spank_parse_option(&o, "joule-tag", "a\"b", why, sizeof(why)), -EINVAL,
               "a tag with a quote");
        char long_tag[80];
        memset(long_tag, 'x', sizeof(long_tag) - 1);
        long_tag[sizeof(long_tag) - 1] = '\0';
        is_int(jl_spank_parse_option(&o, "joule-tag", long_tag, why, sizeof(why)), -EINVAL, "a 79-byte tag");
        is_int(jl_spank_parse_option(&o, "joule-learning", "3", why, sizeof(why)), 0, "learning 3");
        is_int(jl_spank_parse_option(&o, "joule-learning", "64", why, sizeof(why)), -EINVAL, "learning 64");
        is_int(jl_spank_parse_option(&o, "jewel", "1", why, sizeof(why)), -ENOENT, "not joule's option");

        /* rights */
        joule_config c;
        is_int(cfg(&c, "policies:\n  default: monitoring\n  min_energy_th: 0.05\n  min_time_th: 0.7\n"
                       "  default_cpufreq_khz: 2600000\n  min_time_start_khz: 2000000\n"
                       "  user_policies: [monitoring, min_energy]\n  authorized_users: [alice]\n"),
               0, "a policies section");
        jl_spank_env e;
        char refusal[512];

        o = opts();
        is_int(jl_spank_resolve(&o, &c, false, "bob", &e, refusal, sizeof(refusal)), 0,
               "no options: nothing refused");
        ok(!e.enabled && strcmp(e.policy, "monitoring") == 0 && isnan(e.th) && e.cpufreq_khz == 2600000 &&
               e.learning == -1 && refusal[0] == '\0',
           "no options, default=off: off, monitoring from policies.default_cpufreq_khz");
        is_int(jl_spank_resolve(&o, &c, true, "bob", &e, refusal, sizeof(refusal)), 0, "default=on");
        ok(e.enabled, "... on");

        o = opts();
        jl_spank_parse_option(&o, "joule", "on", why, sizeof(why));
        jl_spank_parse_option(&o, "joule-policy", "min_energy", why, sizeof(why));
        is_int(jl_spank_resolve(&o, &c, false, "bob", &e, refusal, sizeof(refusal)), 0,
               "a user may choose min_energy (user_policies)");
        ok(e.enabled && strcmp(e.policy, "min_energy") == 0 && fabs(e.th - 0.05) < 1e-12,
           "... with its threshold");
        jl_spank_parse_option(&o, "joule-policy-th", "0.1", why, sizeof(why));
        is_int(jl_spank_resolve(&o, &c, false, "bob", &e, refusal, sizeof(refusal)), 0,
               "a user may raise min_energy's threshold (0.1 > 0.05)");
        is_near(e.th, 0.1, 1e-12, "... to 0.1");
        jl_spank_parse_option(&o, "joule-policy-th", "0.01", why, sizeof(why));
        is_int(jl_spank_resolve(&o, &c, false, "bob", &e, refusal, sizeof(refusal)), 1,
               "a user may not lower min_energy's threshold");
        ok(strstr(refusal, "bob") && strstr(refusal, "--joule-policy-th=0.01") &&
               strstr(refusal, "monitoring"),
           "... one line saying who, what and the default the job runs with: %s", refusal);
        ok(e.enabled && strcmp(e.policy, "monitoring") == 0 && isnan(e.th),
           "... and the job runs with the defaults");
        is_int(jl_spank_resolve(&o, &c, false, "alice", &e, refusal, sizeof(refusal)), 0,
               "an authorized user may lower it");
        is_near(e.th, 0.01, 1e-12, "... to 0.01");
        is_int(jl_spank_resolve(&o, &c, false, "root", &e, refusal, sizeof(refusal)), 0,
               "root may lower it");

        o = opts();
        jl_spank_parse_option(&o, "joule-policy", "min_time", why, sizeof(why));
        jl_spank_parse_option(&o, "joule-verbose", "2", why, sizeof(why));
        jl_spank_parse_option(&o, "joule-tag", "t1", why, sizeof(why));
        is_int(jl_spank_resolve(&o, &c, true, "bob", &e, refusal, sizeof(refusal)), 1,
               "min_time is not among user_policies: refused");
        ok(strstr(refusal, "min_time") && strstr(refusal, "user_policies"), "... saying so: %s", refusal);
        ok(strcmp(e.policy, "monitoring") == 0 && e.verbose == 2 && strcmp(e.tag, "t1") == 0,
           "... the default policy, verbosity and tag kept");
        is_int(jl_spank_resolve(&o, &c, true, "alice", &e, refusal, sizeof(refusal)), 0,
               "alice may choose min_time");
        ok(strcmp(e.policy, "min_time") == 0 && fabs(e.th - 0.7) < 1e-12 && e.cpufreq_khz == 2000000,
           "... from policies.min_time_start_khz with min_time_th");

        o = opts();
        jl_spank_parse_option(&o, "joule-cpufreq", "1800000", why, sizeof(why));
        is_int(jl_spank_resolve(&o, &c, true, "bob", &e, refusal, sizeof(refusal)), 1,
               "--joule-cpufreq: refused");
        ok(strstr(refusal, "--joule-cpufreq") && e.cpufreq_khz == 2600000, "... the default frequency: %s",
           refusal);
        is_int(jl_spank_resolve(&o, &c, true, "alice", &e, refusal, sizeof(refusal)), 0, "... alice may");
        is_int(e.cpufreq_khz, 1800000, "... 1800000 kHz");

        o = opts();
        jl_spank_parse_option(&o, "joule-learning", "2", why, sizeof(why));
        is_int(jl_spank_resolve(&o, &c, true, "bob", &e, refusal, sizeof(refusal)), 1,
               "--joule-learning: refused");
        is_int(e.learning, -1, "... no learning run");
        is_int(jl_spank_resolve(&o, &c, true, "alice", &e, refusal, sizeof(refusal)), 0, "... alice may");
        is_int(e.learning, 2, "... at P-state 2");
        joule_config_free(&c);

        /* no section: every policy for everyone, no authorized user but root */
        is_int(cfg(&c, ""), 0, "no policies section");
        o = opts();
        jl_spank_parse_option(&o, "joule-policy", "min_time", why, sizeof(why));
        is_int(jl_spank_resolve(&o, &c, true, "bob", &e, refusal, sizeof(refusal)), 0,
               "every policy for every user by default");
        ok(e.cpufreq_khz == 0, "no frequency configured: none set (the runtime's nominal maximum)");
        jl_spank_parse_option(&o, "joule-cpufreq", "1800000", why, sizeof(why));
        is_int(jl_spank_resolve(&o, &c, true, "bob", &e, refusal, sizeof(refusal)), 1,
               "frequencies for nobody but root by default");
        joule_config_free(&c);
        return tap_done();
}
