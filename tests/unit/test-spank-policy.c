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

int main(void)
{
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
