/* policy.c - spank_joule.so's option values and the policies section's rights (see policy.h). */
#include "policy.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

static bool known_policy(const char *p)
{
        return strcmp(p, "monitoring") == 0 || strcmp(p, "min_energy") == 0 || strcmp(p, "min_time") == 0;
}

static bool in_list(char **list, const char *s)
{
        for (char **p = list; p && *p; p++)
                if (strcmp(*p, s) == 0)
                        return true;
        return false;
}

static int bad(char *why, size_t whylen, const char *name, const char *value, const char *expected)
{
        if (why && whylen)
                snprintf(why, whylen, "--%s=%s: %s", name, value ? value : "", expected);
        return -EINVAL;
}

int jl_spank_parse_option(jl_spank_opts *o, const char *name, const char *value, char *why, size_t whylen)
{
        if (strcmp(name, "joule") == 0) {
                /* --joule alone: srun passes no value, slurmstepd an empty one */
                if (!value || !*value || strcmp(value, "on") == 0 || strcmp(value, "1") == 0 ||
                    strcmp(value, "yes") == 0)
                        o->enabled = 1;
                else if (strcmp(value, "off") == 0 || strcmp(value, "0") == 0 || strcmp(value, "no") == 0)
                        o->enabled = 0;
                else
                        return bad(why, whylen, name, value, "expected on or off");
                return 0;
        }
        if (!value)
                return bad(why, whylen, name, value, "a value is required");
        if (strcmp(name, "joule-policy") == 0) {
                if (!known_policy(value))
                        return bad(why, whylen, name, value, "expected monitoring, min_energy or min_time");
                snprintf(o->policy, sizeof(o->policy), "%s", value);
                o->policy_set = true;
        } else if (strcmp(name, "joule-policy-th") == 0) {
                double d;
                if (parse_double(value, &d) < 0 || !(d >= 0 && d <= 1))
                        return bad(why, whylen, name, value, "expected a number from 0 to 1");
                o->th = d;
                o->th_set = true;
        } else if (strcmp(name, "joule-cpufreq") == 0) {
                uint64_t k;
                if (parse_u64(value, &k) < 0 || k == 0 || k > 100000000)
                        return bad(why, whylen, name, value, "expected a frequency in kHz (e.g. 2400000)");
                o->cpufreq_khz = k;
                o->cpufreq_set = true;
        } else if (strcmp(name, "joule-verbose") == 0) {
                uint64_t v;
                if (parse_u64(value, &v) < 0 || v > JL_SPANK_VERBOSE_MAX)
                        return bad(why, whylen, name, value, "expected a level from 0 to 4");
                o->verbose = (unsigned)v;
                o->verbose_set = true;
        } else if (strcmp(name, "joule-tag") == 0) {
                size_t n = strlen(value);
                if (n == 0 || n >= JL_SPANK_TAG_MAX)
                        return bad(why, whylen, name, value, "expected a tag of 1 to 63 characters");
                for (const char *p = value; *p; p++)
                        if (*p <= ' ' || *p > '~' || *p == '"' || *p == '\'' || *p == '\\')
                                return bad(why, whylen, name, value,
                                           "expected printable characters without spaces or quotes");
                memcpy(o->tag, value, n + 1);
                o->tag_set = true;
        } else if (strcmp(name, "joule-learning") == 0) {
                uint64_t v;
                if (parse_u64(value, &v) < 0 || v >= JL_SPANK_LEARNING_MAX)
                        return bad(why, whylen, name, value, "expected a P-state index from 0 to 63");
                o->learning = (unsigned)v;
                o->learning_set = true;
        } else
                return -ENOENT;
        return 0;
}

bool jl_spank_user_authorized(const joule_config *c, const char *user)
{
        return strcmp(user, "root") == 0 || in_list(c->policies.authorized_users, user);
}

static bool user_may_choose(const joule_config *c, const char *policy)
{
        if (!c->policies.user_policies) /* not configured: every policy */
                return true;
        return in_list(c->policies.user_policies, policy);
}

static double default_th(const joule_config *c, const char *policy)
{
        if (strcmp(policy, "min_energy") == 0)
                return c->policies.min_energy_th;
        if (strcmp(policy, "min_time") == 0)
                return c->policies.min_time_th;
        return NAN;
}

static uint64_t default_khz(const joule_config *c, const char *policy)
{
        return strcmp(policy, "min_time") == 0 ? c->policies.min_time_start_khz
                                               : c->policies.default_cpufreq_khz;
}

int jl_spank_resolve(const jl_spank_opts *o, const joule_config *c, bool default_on, const char *user,
                     jl_spank_env *ret, char *refusal, size_t refusallen)
{
        const char *def = c->policies.default_policy ? c->policies.default_policy : "monitoring";
        jl_spank_env e = {.enabled = o->enabled < 0 ? default_on : o->enabled == 1, .learning = -1};
        snprintf(e.policy, sizeof(e.policy), "%s", o->policy_set ? o->policy : def);
        bool authorized = jl_spank_user_authorized(c, user);
        char why[200] = "";

        if (!authorized) {
                if (o->policy_set && !user_may_choose(c, o->policy))
                        snprintf(why, sizeof(why), "policy %s is not among policies.user_policies",
                                 o->policy);
                else if (o->cpufreq_set)
                        snprintf(why, sizeof(why), "--joule-cpufreq is for policies.authorized_users");
                else if (o->learning_set)
                        snprintf(why, sizeof(why), "--joule-learning is for policies.authorized_users");
                else if (o->th_set && strcmp(e.policy, "monitoring") != 0 && o->th < default_th(c, e.policy))
                        /* a smaller threshold trades energy for time: min_energy's allowed slowdown and
                         * min_time's required efficiency may only be raised by other users */
                        snprintf(
                            why, sizeof(why),
                            "--joule-policy-th=%g is below %s's default %g (only policies.authorized_users "
                            "may lower it)",
                            o->th, e.policy, default_th(c, e.policy));
        }
        if (why[0]) {
                snprintf(e.policy, sizeof(e.policy), "%s", def);
                e.th = default_th(c, def);
                e.cpufreq_khz = default_khz(c, def);
        } else {
                e.th = o->th_set && strcmp(e.policy, "monitoring") != 0 ? o->th : default_th(c, e.policy);
                e.cpufreq_khz = o->cpufreq_set ? o->cpufreq_khz : default_khz(c, e.policy);
                e.learning = o->learning_set ? (int)o->learning : -1;
        }
        e.verbose = o->verbose_set ? o->verbose : 0;
        if (o->tag_set)
                snprintf(e.tag, sizeof(e.tag), "%s", o->tag);
        if (refusal && refusallen) {
                if (why[0])
                        snprintf(
                            refusal, refusallen,
                            "joule: user %s may not make this request: %s; the job runs with the default "
                            "policy %s",
                            user, why, def);
                else
                        refusal[0] = '\0';
        }
        *ret = e;
        return why[0] ? 1 : 0;
}

static int cmp_place(const void *a, const void *b)
{
        const jl_spank_cpu_topo *x = a, *y = b;
        if (x->package != y->package)
                return x->package < y->package ? -1 : 1;
        if (x->core != y->core)
                return x->core < y->core ? -1 : 1;
        return (x->cpu > y->cpu) - (x->cpu < y->cpu);
}

int jl_spank_cores_to_cpus(const char *cores, const jl_spank_cpu_topo *topo, size_t n, uint64_t *ret_mask,
                           size_t nbits)
{
        if (!cores || !topo || n == 0 || !ret_mask || nbits == 0)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (topo[i].package < 0 || topo[i].core < 0 || topo[i].cpu < 0)
                        return -ENOENT;
        jl_spank_cpu_topo *s = malloc(n * sizeof(*s));
        /* the core ids as a list: at most one bit per CPU of the node, so n bits suffice */
        size_t words = (n + 63) / 64;
        uint64_t *want = calloc(words, sizeof(*want));
        int r = -ENOMEM;
        if (!s || !want)
                goto out;
        memcpy(s, topo, n * sizeof(*s));
        qsort(s, n, sizeof(*s), cmp_place);
        r = parse_cpu_list(cores, want, words * 64);
        if (r <= 0) {
                r = -EINVAL;
                goto out;
        }
        memset(ret_mask, 0, (nbits + 63) / 64 * sizeof(uint64_t));
        size_t k = 0, set = 0, wanted = 0, found = 0;
        for (size_t i = 0; i < words * 64; i++)
                wanted += (want[i / 64] >> (i % 64)) & 1;
        for (size_t i = 0; i < n; i++) {
                if (i > 0 && (s[i].package != s[i - 1].package || s[i].core != s[i - 1].core))
                        k++; /* the next core */
                if (k >= words * 64 || !((want[k / 64] >> (k % 64)) & 1))
                        continue;
                if (i == 0 || s[i].package != s[i - 1].package || s[i].core != s[i - 1].core)
                        found++;
                if ((size_t)s[i].cpu >= nbits) {
                        r = -EINVAL;
                        goto out;
                }
                ret_mask[s[i].cpu / 64] |= UINT64_C(1) << (s[i].cpu % 64);
                set++;
        }
        r = found == wanted ? (int)set : -EINVAL; /* a core id beyond the node's cores */
out:
        free(s);
        free(want);
        return r;
}
