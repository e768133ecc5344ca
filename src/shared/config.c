/* config.c - the YAML configuration: a schema of sections and keys with types and defaults, loaded with
 * libyaml's document API so that every error names the file, line and key. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "macro.h"
#include "parse.h"

typedef enum { T_STR, T_U64, T_I64, T_DOUBLE, T_BOOL, T_STRV, T_ENUM } key_type;

typedef struct {
        const char *section;
        const char *key;
        key_type type;
        size_t offset;
        const char *def;     /* default as text; NULL: unset */
        const char *choices; /* T_ENUM: "a|b|c" */
        double min, max;     /* numbers: allowed range (min == max: any) */
} key_desc;

#define K(sec, k, t, field, d, ...)                                                                          \
        {.section = sec, .key = k, .type = t, .offset = offsetof(joule_config, field), .def = d, __VA_ARGS__}

static const key_desc keys[] = {
        K("database", "url", T_STR, database.url, "/var/lib/joule/joule.db"),
        K("node", "name", T_STR, node.name, NULL),
        K("node", "period", T_DOUBLE, node.period_s, "10", .min = 0.01, .max = 86400),
        K("node", "dbd", T_STR, node.dbd, NULL),
        K("node", "socket", T_STR, node.socket, "/run/joule/jouled.sock"),
        K("node", "control_listen", T_STR, node.control_listen, NULL),
        K("node", "metrics_listen", T_STR, node.metrics_listen, NULL),
        K("node", "admins", T_STRV, node.admins, NULL),
        K("node", "partition", T_STR, node.partition, NULL),
        K("node", "island", T_STR, node.island, NULL),
        K("node", "spool", T_STR, node.spool, "/var/spool/joule/records.spool"),
        K("node", "sample_ms", T_DOUBLE, node.sample_ms, "1000", .min = 10, .max = 60000),
        K("node", "state_dir", T_STR, node.state_dir, "/var/lib/joule/jouled"),
        K("node", "munge_socket", T_STR, node.munge_socket, NULL),
        K("node", "user_steps_max", T_U64, node.user_steps_max, "4", .min = 0, .max = 64),
        K("dbd", "listen", T_STR, dbd.listen, "0.0.0.0:7420"),
        K("dbd", "batch_records", T_U64, dbd.batch_records, "1000", .min = 1, .max = 10000000),
        K("dbd", "batch_ms", T_U64, dbd.batch_ms, "1000", .min = 1, .max = 3600000),
        K("dbd", "aggregation_period", T_DOUBLE, dbd.aggregation_period_s, "60", .min = 1, .max = 86400),
        K("dbd", "max_memory_mb", T_U64, dbd.max_memory_mb, "256", .min = 1, .max = 1048576),
        K("dbd", "node_users", T_STRV, dbd.node_users, NULL),
        K("measurement", "sampling_rate", T_DOUBLE, measurement.sampling_rate_ms, "99", .min = 1,
          .max = 60000),
        K("measurement", "hwmon_sensors", T_STRV, measurement.hwmon_sensors, NULL),
        K("estimate", "idle_w", T_DOUBLE, estimate.idle_w, "10", .min = 0, .max = 100000),
        K("estimate", "max_w", T_DOUBLE, estimate.max_w, "100", .min = 0, .max = 100000),
        K("runner", "sleep_time_no_job", T_DOUBLE, runner.sleep_time_no_job, "300", .min = 0, .max = 86400),
        K("runner", "sleep_time_after_job", T_DOUBLE, runner.sleep_time_after_job, "300", .min = 0,
          .max = 86400),
        K("runner", "jobs_processing", T_ENUM, runner.jobs_processing, "fifo", .choices = "fifo|random"),
        K("runner", "time_between_control_workload_validations", T_DOUBLE,
          runner.time_between_control_workload_validations, "21600", .min = 0, .max = 31536000),
        K("runner", "control_workload", T_STR, runner.control_workload, NULL),
        K("runner", "cleanup_script", T_STR, runner.cleanup_script, NULL),
        K("runner", "temperature_max_tries", T_U64, runner.temperature_max_tries, "60", .min = 1,
          .max = 100000),
        K("runner", "system_checks", T_ENUM, runner.system_checks, "warn", .choices = "warn|fail"),
        K("runner", "baseline", T_DOUBLE, runner.baseline_s, "5", .min = 0, .max = 3600),
        K("runner", "temperature_check_interval", T_DOUBLE, runner.temperature_check_interval_s, "60",
          .min = 0.1, .max = 3600),
        K("runner", "control_comparison_window", T_U64, runner.control_comparison_window, "5", .min = 2,
          .max = 1000),
        K("runner", "control_threshold_type", T_ENUM, runner.control_threshold_type, "relative",
          .choices = "relative|absolute"),
        K("runner", "control_energy_threshold", T_DOUBLE, runner.control_energy_threshold, "0.05", .min = 0,
          .max = 1e12),
        K("runner", "control_power_threshold", T_DOUBLE, runner.control_power_threshold, "0.05", .min = 0,
          .max = 1e12),
        K("runner", "control_duration_threshold", T_DOUBLE, runner.control_duration_threshold, "0.05",
          .min = 0, .max = 1e12),
        K("runner", "control_error_reminder_s", T_DOUBLE, runner.control_error_reminder_s, "86400", .min = 0,
          .max = 31536000),
        K("runner", "spool_dir", T_STR, runner.spool_dir, NULL),
        K("machine", "id", T_I64, machine.id, "1", .min = 1, .max = 2147483647),
        K("machine", "description", T_STR, machine.description, NULL),
        K("machine", "base_temperature_value", T_DOUBLE, machine.base_temperature_value, "40", .min = -50,
          .max = 150),
        K("machine", "base_temperature_chip", T_STR, machine.base_temperature_chip, NULL),
        K("machine", "base_temperature_feature", T_STR, machine.base_temperature_feature, NULL),
        K("machine", "profile", T_ENUM, machine.profile, "benchmarking", .choices = "benchmarking|profiling"),
        K("smtp", "server", T_STR, smtp.server, NULL),
        K("smtp", "user", T_STR, smtp.user, NULL),
        K("smtp", "password", T_STR, smtp.password, NULL),
        K("smtp", "sender", T_STR, smtp.sender, "joule@localhost"),
        K("smtp", "starttls", T_BOOL, smtp.starttls, "true"),
        K("smtp", "retry_base", T_DOUBLE, smtp.retry_base_s, "60", .min = 0.001, .max = 86400),
        K("smtp", "retry_max", T_DOUBLE, smtp.retry_max_s, "3600", .min = 0.001, .max = 604800),
        K("smtp", "timeout", T_DOUBLE, smtp.timeout_s, "30", .min = 0.1, .max = 3600),
        K("smtp", "ca_file", T_STR, smtp.ca_file, NULL),
        K("admin", "notification_email", T_STR, admin.notification_email, NULL),
        K("policies", "default", T_ENUM, policies.default_policy, "monitoring", .choices = JOULE_POLICIES),
        K("policies", "min_energy_th", T_DOUBLE, policies.min_energy_th, "0.05", .min = 0, .max = 1),
        K("policies", "min_time_th", T_DOUBLE, policies.min_time_th, "0.7", .min = 0, .max = 1),
        K("policies", "default_cpufreq_khz", T_U64, policies.default_cpufreq_khz, "0", .min = 0,
          .max = 100000000),
        K("policies", "min_time_start_khz", T_U64, policies.min_time_start_khz, "0", .min = 0,
          .max = 100000000),
        K("policies", "user_policies", T_STRV, policies.user_policies, NULL, .choices = JOULE_POLICIES),
        K("policies", "authorized_users", T_STRV, policies.authorized_users, NULL),
        /* where `joule learn` writes NODE.coeffs and the runtime reads it (src/runtime/coeffs.h has the
         * same default) */
        K("runtime", "coefficients_dir", T_STR, runtime.coefficients_dir, "/var/lib/joule/coeffs"),
};

static void strv_free(char **v)
{
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

static void *field(joule_config *c, const key_desc *k)
{
        return (char *)c + k->offset;
}

static int errf(char *err, size_t errlen, const char *fmt, ...) _printf_(3, 4);
static int errf(char *err, size_t errlen, const char *fmt, ...)
{
        if (err && errlen) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(err, errlen, fmt, ap);
                va_end(ap);
        }
        return -EINVAL;
}

static bool in_choices(const char *v, const char *choices)
{
        size_t n = strlen(v);
        for (const char *p = choices; p && *p;) {
                const char *bar = strchr(p, '|');
                size_t len = bar ? (size_t)(bar - p) : strlen(p);
                if (len == n && strncmp(p, v, n) == 0)
                        return true;
                p = bar ? bar + 1 : NULL;
        }
        return false;
}

/* Set a scalar key from text. Returns 0 or -EINVAL with a reason in why. */
static int set_scalar(joule_config *c, const key_desc *k, const char *v, char *why, size_t whylen)
{
        void *f = field(c, k);
        int r = 0;
        switch (k->type) {
        case T_STR:
        case T_ENUM: {
                if (k->type == T_ENUM && !in_choices(v, k->choices)) {
                        snprintf(why, whylen, "'%s' is not one of %s", v, k->choices);
                        return -EINVAL;
                }
                char *s = strdup(v);
                if (!s)
                        return -ENOMEM;
                free(*(char **)f);
                *(char **)f = s;
                return 0;
        }
        case T_U64: {
                uint64_t u;
                r = parse_u64(v, &u);
                if (r == 0 && k->min != k->max && ((double)u < k->min || (double)u > k->max))
                        r = -ERANGE;
                if (r == 0)
                        *(uint64_t *)f = u;
                break;
        }
        case T_I64: {
                int64_t i;
                r = parse_i64(v, &i);
                if (r == 0 && k->min != k->max && ((double)i < k->min || (double)i > k->max))
                        r = -ERANGE;
                if (r == 0)
                        *(int64_t *)f = i;
                break;
        }
        case T_DOUBLE: {
                double d;
                r = parse_double(v, &d);
                if (r == 0 && k->min != k->max && (d < k->min || d > k->max))
                        r = -ERANGE;
                if (r == 0)
                        *(double *)f = d;
                break;
        }
        case T_BOOL:
                r = parse_bool(v, (bool *)f);
                if (r < 0) {
                        snprintf(why, whylen, "expected true or false, got '%s'", v);
                        return -EINVAL;
                }
                return 0;
        case T_STRV:
                snprintf(why, whylen, "expected a list");
                return -EINVAL;
        }
        if (r == -ERANGE && k->min != k->max)
                snprintf(why, whylen, "'%s' is out of range (%g..%g)", v, k->min, k->max);
        else if (r < 0)
                snprintf(why, whylen, "expected a %s, got '%s'",
                         k->type == T_DOUBLE ? "number" : "non-negative integer", v);
        return r < 0 ? -EINVAL : 0;
}

int joule_config_init(joule_config *c)
{
        *c = (joule_config){0};
        char why[128];
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
                if (keys[i].def) {
                        int r = set_scalar(c, &keys[i], keys[i].def, why, sizeof(why));
                        if (r < 0) {
                                joule_config_free(c);
                                return r;
                        }
                }
        char host[256];
        if (gethostname(host, sizeof(host)) == 0) {
                host[sizeof(host) - 1] = '\0';
                c->node.name = strdup(host);
        }
        if (!c->node.name)
                c->node.name = strdup("localhost");
        return c->node.name ? 0 : -ENOMEM;
}

void joule_config_free(joule_config *c)
{
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
                void *f = field(c, &keys[i]);
                if (keys[i].type == T_STR || keys[i].type == T_ENUM)
                        free(*(char **)f);
                else if (keys[i].type == T_STRV)
                        strv_free(*(char ***)f);
        }
        free(c->path);
        *c = (joule_config){0};
}

static const key_desc *find_key(const char *section, const char *key, bool *section_known)
{
        *section_known = false;
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
                if (strcmp(keys[i].section, section) == 0) {
                        *section_known = true;
                        if (strcmp(keys[i].key, key) == 0)
                                return &keys[i];
                }
        return NULL;
}

static int set_list(joule_config *c, const key_desc *k, yaml_document_t *doc, yaml_node_t *seq,
                    const char *name, char *err, size_t errlen)
{
        size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
        char **v = calloc(n + 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        size_t i = 0;
        for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
                yaml_node_t *item = yaml_document_get_node(doc, *it);
                if (!item || item->type != YAML_SCALAR_NODE) {
                        strv_free(v);
                        return errf(err, errlen, "%s:%zu: %s.%s: list items must be plain values", name,
                                    item ? item->start_mark.line + 1 : 0, k->section, k->key);
                }
                const char *val = (const char *)item->data.scalar.value;
                if (k->choices && !in_choices(val, k->choices)) {
                        strv_free(v);
                        return errf(err, errlen, "%s:%zu: %s.%s: '%s' is not one of %s", name,
                                    item->start_mark.line + 1, k->section, k->key, val, k->choices);
                }
                v[i] = strdup(val);
                if (!v[i++]) {
                        strv_free(v);
                        return -ENOMEM;
                }
        }
        strv_free(*(char ***)field(c, k));
        *(char ***)field(c, k) = v;
        return 0;
}

static int apply_document(joule_config *c, yaml_document_t *doc, const char *name, char *err, size_t errlen)
{
        yaml_node_t *root = yaml_document_get_root_node(doc);
        if (!root)
                return 0; /* an empty file: defaults */
        if (root->type != YAML_MAPPING_NODE)
                return errf(err, errlen, "%s:%zu: the top level must be a mapping of sections", name,
                            root->start_mark.line + 1);
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
                yaml_node_t *sk = yaml_document_get_node(doc, p->key);
                yaml_node_t *sv = yaml_document_get_node(doc, p->value);
                if (!sk || sk->type != YAML_SCALAR_NODE)
                        return errf(err, errlen, "%s:%zu: section names must be plain words", name,
                                    sk ? sk->start_mark.line + 1 : 0);
                const char *section = (const char *)sk->data.scalar.value;
                bool known;
                find_key(section, "", &known);
                if (!known)
                        return errf(err, errlen, "%s:%zu: unknown section '%s'", name, sk->start_mark.line + 1,
                                    section);
                if (sv->type == YAML_SCALAR_NODE && sv->data.scalar.length == 0)
                        continue; /* "section:" with nothing under it */
                if (sv->type != YAML_MAPPING_NODE)
                        return errf(err, errlen, "%s:%zu: %s: expected a mapping of keys", name,
                                    sv->start_mark.line + 1, section);
                for (yaml_node_pair_t *q = sv->data.mapping.pairs.start; q < sv->data.mapping.pairs.top; q++) {
                        yaml_node_t *kk = yaml_document_get_node(doc, q->key);
                        yaml_node_t *kv = yaml_document_get_node(doc, q->value);
                        if (!kk || kk->type != YAML_SCALAR_NODE || !kv)
                                return errf(err, errlen, "%s:%zu: %s: keys must be plain words", name,
                                            kk ? kk->start_mark.line + 1 : 0, section);
                        const char *key = (const char *)kk->data.scalar.value;
                        size_t line = kk->start_mark.line + 1;
                        const key_desc *k = find_key(section, key, &known);
                        if (!k)
                                return errf(err, errlen, "%s:%zu: unknown key '%s.%s'", name, line, section,
                                            key);
                        int r;
                        char why[200];
                        if (k->type == T_STRV) {
                                if (kv->type == YAML_SEQUENCE_NODE)
                                        r = set_list(c, k, doc, kv, name, err, errlen);
                                else if (kv->type == YAML_SCALAR_NODE) {
                                        /* a single value stands for a list of one */
                                        const char *val = (const char *)kv->data.scalar.value;
                                        if (k->choices && !in_choices(val, k->choices))
                                                return errf(err, errlen,
                                                            "%s:%zu: %s.%s: '%s' is not one of %s", name,
                                                            line, section, key, val, k->choices);
                                        char **v = calloc(2, sizeof(char *));
                                        if (!v || !(v[0] = strdup((const char *)kv->data.scalar.value))) {
                                                free(v);
                                                return -ENOMEM;
                                        }
                                        strv_free(*(char ***)field(c, k));
                                        *(char ***)field(c, k) = v;
                                        r = 0;
                                } else
                                        r = errf(err, errlen, "%s:%zu: %s.%s: expected a list", name, line,
                                                 section, key);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        if (kv->type != YAML_SCALAR_NODE)
                                return errf(err, errlen, "%s:%zu: %s.%s: expected a single value, not a %s",
                                            name, line, section, key,
                                            kv->type == YAML_MAPPING_NODE ? "mapping" : "list");
                        r = set_scalar(c, k, (const char *)kv->data.scalar.value, why, sizeof(why));
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0)
                                return errf(err, errlen, "%s:%zu: %s.%s: %s", name, line, section, key, why);
                }
        }
        return 0;
}

int joule_config_load_string(joule_config *c, const char *name, const char *text, size_t len, char *err,
                             size_t errlen)
{
        yaml_parser_t parser;
        yaml_document_t doc;
        if (!yaml_parser_initialize(&parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
        if (!yaml_parser_load(&parser, &doc)) {
                int r = errf(err, errlen, "%s:%zu: %s%s%s", name, parser.problem_mark.line + 1,
                             parser.problem ? parser.problem : "malformed YAML",
                             parser.context ? " " : "", parser.context ? parser.context : "");
                yaml_parser_delete(&parser);
                return r;
        }
        int r = apply_document(c, &doc, name, err, errlen);
        yaml_document_delete(&doc);
        yaml_parser_delete(&parser);
        return r;
}

int joule_config_load(joule_config *c, const char *path, char *err, size_t errlen)
{
        bool explicit_path = path != NULL;
        if (!path)
                path = getenv("JOULE_CONFIG");
        if (path && *path == '\0')
                path = NULL;
        explicit_path = explicit_path || path != NULL;
        if (!path)
                path = JOULE_CONFIG_DEFAULT_PATH;
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f) {
                if (errno == ENOENT && !explicit_path)
                        return 0; /* no file: defaults */
                int r = -errno;
                errf(err, errlen, "%s: %s", path, strerror(errno));
                return r;
        }
        char *buf = NULL;
        size_t size = 0;
        FILE *mem = open_memstream(&buf, &size);
        if (!mem)
                return -ENOMEM;
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
                fwrite(chunk, 1, n, mem);
        fclose(mem);
        if (size > 4 * 1024 * 1024) {
                free(buf);
                return errf(err, errlen, "%s: the file is too large for a configuration", path);
        }
        int r = joule_config_load_string(c, path, buf ? buf : "", size, err, errlen);
        free(buf);
        if (r < 0)
                return r;
        free(c->path);
        c->path = strdup(path);
        return c->path ? 0 : -ENOMEM;
}
