/* test-config.c - the YAML configuration: defaults, good files, and errors that name file, line and key. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "tap.h"

static int load(joule_config *c, const char *text, char *err, size_t errlen)
{
        joule_config_init(c);
        err[0] = '\0';
        return joule_config_load_string(c, "t.yml", text, strlen(text), err, errlen);
}

int main(void)
{
        joule_config c;
        char err[512];

        is_int(load(&c, "", err, sizeof(err)), 0, "empty file: defaults");
        is_near(c.node.period_s, 10, 0, "node.period default 10 s");
        is_str(c.node.socket, "/run/joule/jouled.sock", "node.socket default");
        ok(c.node.name && c.node.name[0], "node.name defaults to the host name");
        ok(c.node.dbd == NULL, "node.dbd absent by default");
        is_near(c.runner.sleep_time_no_job, 300, 0, "runner.sleep_time_no_job 300");
        is_str(c.runner.jobs_processing, "fifo", "runner.jobs_processing fifo");
        is_near(c.measurement.sampling_rate_ms, 99, 0, "measurement.sampling_rate 99 ms");
        joule_config_free(&c);

        is_int(load(&c,
                    "database:\n  url: postgresql://joule@127.0.0.1/joule\n"
                    "node:\n  name: n001\n  period: 2.5\n  admins: [root, alice]\n"
                    "machine:\n  id: 3\n  description: \"Fujitsu TX1330\"\n  base_temperature_value: 30\n"
                    "  base_temperature_chip: coretemp-isa-0000\n  base_temperature_feature: Package id 0\n"
                    "estimate:\n  idle_w: 5\n  max_w: 35\n"
                    "measurement:\n  hwmon_sensors: coretemp-*/Package id *\n",
                    err, sizeof(err)),
               0, "a full file loads");
        is_str(c.database.url, "postgresql://joule@127.0.0.1/joule", "database.url");
        is_str(c.node.name, "n001", "node.name");
        is_near(c.node.period_s, 2.5, 0, "node.period 2.5");
        ok(c.node.admins && !strcmp(c.node.admins[0], "root") && !strcmp(c.node.admins[1], "alice") &&
                   !c.node.admins[2],
           "node.admins list");
        is_int(c.machine.id, 3, "machine.id");
        is_str(c.machine.base_temperature_feature, "Package id 0", "feature with spaces");
        ok(c.measurement.hwmon_sensors && !strcmp(c.measurement.hwmon_sensors[0], "coretemp-*/Package id *") &&
                   !c.measurement.hwmon_sensors[1],
           "a single value is a list of one");
        joule_config_free(&c);

        is_int(load(&c, "node:\n  name: a\n  perod: 5\n", err, sizeof(err)), -EINVAL, "unknown key");
        is_str(err, "t.yml:3: unknown key 'node.perod'", "message names file, line and key");
        joule_config_free(&c);

        is_int(load(&c, "nodes:\n  name: a\n", err, sizeof(err)), -EINVAL, "unknown section");
        ok(strstr(err, "t.yml:1:") && strstr(err, "'nodes'"), "section error names line and section: %s", err);
        joule_config_free(&c);

        is_int(load(&c, "node:\n  period: fast\n", err, sizeof(err)), -EINVAL, "wrong type");
        ok(strstr(err, "t.yml:2: node.period: expected a number, got 'fast'") != NULL, "type error: %s", err);
        joule_config_free(&c);

        is_int(load(&c, "node:\n  period: -3\n", err, sizeof(err)), -EINVAL, "out of range");
        ok(strstr(err, "out of range") != NULL, "range error: %s", err);
        joule_config_free(&c);

        is_int(load(&c, "dbd:\n  batch_records: 1e3\n", err, sizeof(err)), -EINVAL, "integer key with a float");
        joule_config_free(&c);

        is_int(load(&c, "node:\n  name: a\n", err, sizeof(err)), 0, "node.user_steps_max has a default");
        ok(c.node.user_steps_max == 4, "node.user_steps_max defaults to 4");
        joule_config_free(&c);
        is_int(load(&c, "node:\n  user_steps_max: 0\n", err, sizeof(err)), 0, "node.user_steps_max 0: none");
        joule_config_free(&c);
        is_int(load(&c, "node:\n  user_steps_max: 65\n", err, sizeof(err)), -EINVAL,
               "node.user_steps_max above the users' 64 slots is refused");
        joule_config_free(&c);

        is_int(load(&c, "runner:\n  jobs_processing: lifo\n", err, sizeof(err)), -EINVAL, "enum");
        ok(strstr(err, "fifo|random") != NULL, "enum error lists the choices: %s", err);
        joule_config_free(&c);

        is_int(load(&c, "node: [1, 2]\n", err, sizeof(err)), -EINVAL, "section is not a mapping");
        joule_config_free(&c);
        is_int(load(&c, "- a\n- b\n", err, sizeof(err)), -EINVAL, "top level is a list");
        joule_config_free(&c);
        is_int(load(&c, "node:\n  name: [a\n", err, sizeof(err)), -EINVAL, "malformed YAML");
        ok(strstr(err, "t.yml:") != NULL, "YAML error names the file: %s", err);
        joule_config_free(&c);
        is_int(load(&c, "node:\n  name:\n    x: 1\n", err, sizeof(err)), -EINVAL, "mapping where a value belongs");
        joule_config_free(&c);
        is_int(load(&c, "smtp:\n  starttls: perhaps\n", err, sizeof(err)), -EINVAL, "bad boolean");
        joule_config_free(&c);
        is_int(load(&c, "\x01\x02\xff", err, sizeof(err)), -EINVAL, "binary garbage");
        joule_config_free(&c);

        /* runtime.coefficients_dir: the learning run's files */
        is_int(load(&c, "", err, sizeof(err)), 0, "runtime: defaults");
        is_str(c.runtime.coefficients_dir, "/var/lib/joule/coeffs", "runtime.coefficients_dir's default");
        joule_config_free(&c);
        is_int(load(&c, "runtime:\n  coefficients_dir: /srv/coeffs\n", err, sizeof(err)), 0,
               "runtime: set (%s)", err);
        is_str(c.runtime.coefficients_dir, "/srv/coeffs", "runtime.coefficients_dir");
        joule_config_free(&c);
        is_int(load(&c, "runtime:\n  coefficients_dir: [a, b]\n", err, sizeof(err)), -EINVAL,
               "runtime.coefficients_dir: a list is refused");
        joule_config_free(&c);

        /* policies: defaults, a full section, and refusals naming line and key */
        is_int(load(&c, "", err, sizeof(err)), 0, "policies: defaults");
        is_str(c.policies.default_policy, "monitoring", "policies.default defaults to monitoring");
        is_near(c.policies.min_energy_th, 0.05, 1e-12, "policies.min_energy_th defaults to 0.05");
        is_near(c.policies.min_time_th, 0.7, 1e-12, "policies.min_time_th defaults to 0.7");
        is_int(c.policies.default_cpufreq_khz, 0, "policies.default_cpufreq_khz: 0 (the nominal maximum)");
        ok(c.policies.user_policies == NULL && c.policies.authorized_users == NULL,
           "policies.user_policies (all) and authorized_users (none) unset by default");
        joule_config_free(&c);
        is_int(load(&c,
                    "policies:\n  default: min_energy\n  min_energy_th: 0.1\n  min_time_th: 0.5\n"
                    "  default_cpufreq_khz: 2400000\n  min_time_start_khz: 2000000\n"
                    "  user_policies: [monitoring, min_energy]\n  authorized_users: [alice, bob]\n",
                    err, sizeof(err)),
               0, "policies: a full section (%s)", err);
        is_str(c.policies.default_policy, "min_energy", "policies.default");
        is_int(c.policies.default_cpufreq_khz, 2400000, "policies.default_cpufreq_khz");
        is_int(c.policies.min_time_start_khz, 2000000, "policies.min_time_start_khz");
        ok(c.policies.user_policies && c.policies.user_policies[1] && !c.policies.user_policies[2] &&
               strcmp(c.policies.user_policies[1], "min_energy") == 0,
           "policies.user_policies as a list");
        ok(c.policies.authorized_users && strcmp(c.policies.authorized_users[0], "alice") == 0,
           "policies.authorized_users as a list");
        joule_config_free(&c);
        is_int(load(&c, "policies:\n  user_policies: [monitoring, fastest]\n", err, sizeof(err)), -EINVAL,
               "policies.user_policies: an unknown policy is refused");
        ok(strstr(err, "t.yml:2: policies.user_policies: 'fastest'") != NULL, "... naming line and key: %s",
           err);
        joule_config_free(&c);
        is_int(load(&c, "policies:\n  user_policies: fastest\n", err, sizeof(err)), -EINVAL,
               "policies.user_policies: a single unknown policy is refused");
        joule_config_free(&c);
        is_int(load(&c, "policies:\n  default: max_power\n", err, sizeof(err)), -EINVAL,
               "policies.default: an unknown policy is refused");
        joule_config_free(&c);
        is_int(load(&c, "policies:\n  min_energy_th: 1.5\n", err, sizeof(err)), -EINVAL,
               "policies.min_energy_th above 1 is refused");
        joule_config_free(&c);

        joule_config_init(&c);
        is_int(joule_config_load(&c, "/nonexistent/joule.yml", err, sizeof(err)), -ENOENT,
               "an explicit missing file is an error");
        joule_config_free(&c);
        return tap_done();
}
