/* scenario.c - the scenario loader: libyaml's document API, a strict walk over the known keys, and errors
 * that name the file, line and key (the style of src/shared/config.c). */
#include "scenario.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "macro.h"
#include "parse.h"

typedef struct {
        const char *file;
        yaml_document_t *doc;
        char *err;
        size_t errlen;
} ctx;

static int fail(ctx *c, const yaml_node_t *at, const char *key, const char *fmt, ...) _printf_(4, 5);
static int fail(ctx *c, const yaml_node_t *at, const char *key, const char *fmt, ...)
{
        if (c->err && c->errlen) {
                char why[512];
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(why, sizeof(why), fmt, ap);
                va_end(ap);
                size_t line = at ? at->start_mark.line + 1 : 1;
                if (key && *key)
                        snprintf(c->err, c->errlen, "%s:%zu: %s: %s", c->file, line, key, why);
                else
                        snprintf(c->err, c->errlen, "%s:%zu: %s", c->file, line, why);
        }
        return -EINVAL;
}

static const char *type_name(const yaml_node_t *n)
{
        switch (n->type) {
        case YAML_MAPPING_NODE:
                return "a mapping";
        case YAML_SEQUENCE_NODE:
                return "a list";
        default:
                return "a single value";
        }
}

/* A plain empty scalar, "~" or "null": YAML's null. */
static bool is_null(const yaml_node_t *n)
{
        if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return false;
        const char *v = (const char *)n->data.scalar.value;
        return n->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
               strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

static size_t seq_len(const yaml_node_t *n)
{
        return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static size_t map_len(const yaml_node_t *n)
{
        return (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
}

static void strv_free(char **v, size_t n)
{
        if (!v)
                return;
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static void env_free(jl_scenario_env *e)
{
        strv_free(e->names, e->n);
        strv_free(e->values, e->n);
        *e = (jl_scenario_env){0};
}

/* Copy a scalar that must be a non-empty string without NUL bytes, of at most `max` bytes. */
static int get_string(ctx *c, const yaml_node_t *n, const char *key, size_t max, bool allow_empty, char **ret)
{
        if (n->type != YAML_SCALAR_NODE)
                return fail(c, n, key, "expected a string, not %s", type_name(n));
        if (is_null(n) && !allow_empty)
                return fail(c, n, key, "must not be empty");
        size_t len = n->data.scalar.length;
        const char *v = (const char *)n->data.scalar.value;
        if (memchr(v, '\0', len))
                return fail(c, n, key, "contains a NUL byte");
        if (len == 0 && !allow_empty)
                return fail(c, n, key, "must not be empty");
        if (len > max)
                return fail(c, n, key, "longer than %zu bytes", max);
        char *s = strndup(v, len);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* A list of commands; a null value is an empty list when allow_null. */
static int get_commands(ctx *c, const yaml_node_t *n, const char *key, bool allow_null, char ***ret_v,
                        size_t *ret_n)
{
        if (allow_null && is_null(n)) {
                *ret_v = NULL;
                *ret_n = 0;
                return 0;
        }
        if (n->type != YAML_SEQUENCE_NODE)
                return fail(c, n, key, "expected a list of commands (one '- command' per line), not %s",
                            type_name(n));
        size_t count = seq_len(n);
        if (count > JL_SCENARIO_MAX_ITEMS)
                return fail(c, n, key, "more than %d commands", JL_SCENARIO_MAX_ITEMS);
        char **v = calloc(count ? count : 1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        size_t i = 0;
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
                yaml_node_t *item = yaml_document_get_node(c->doc, *it);
                char k[256];
                snprintf(k, sizeof(k), "%s[%zu]", key, i);
                int r = item ? get_string(c, item, k, JL_SCENARIO_MAX_COMMAND, false, &v[i])
                             : fail(c, n, k, "missing");
                if (r < 0) {
                        strv_free(v, i);
                        return r;
                }
                i++;
        }
        *ret_v = v;
        *ret_n = count;
        return 0;
}

static bool env_name_ok(const char *s)
{
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
                return false;
        for (s++; *s; s++)
                if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
                      *s == '_'))
                        return false;
        return true;
}

static int get_env(ctx *c, const yaml_node_t *n, const char *key, jl_scenario_env *ret)
{
        if (is_null(n)) {
                *ret = (jl_scenario_env){0};
                return 0;
        }
        if (n->type != YAML_MAPPING_NODE)
                return fail(c, n, key, "expected a mapping of NAME: value, not %s", type_name(n));
        size_t count = map_len(n);
        if (count > JL_SCENARIO_MAX_ITEMS)
                return fail(c, n, key, "more than %d variables", JL_SCENARIO_MAX_ITEMS);
        jl_scenario_env e = {.names = calloc(count ? count : 1, sizeof(char *)),
                             .values = calloc(count ? count : 1, sizeof(char *))};
        if (!e.names || !e.values) {
                env_free(&e);
                return -ENOMEM;
        }
        int r = 0;
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
                yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
                yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
                char *name = NULL;
                if (!k || !v) {
                        r = fail(c, n, key, "malformed entry");
                        break;
                }
                if (k->type != YAML_SCALAR_NODE) {
                        r = fail(c, k, key, "variable names must be plain words");
                        break;
                }
                if ((r = get_string(c, k, key, 256, false, &name)) < 0)
                        break;
                if (!env_name_ok(name)) {
                        r = fail(c, k, key, "'%s' is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)", name);
                        free(name);
                        break;
                }
                bool dup = false;
                for (size_t i = 0; i < e.n && !dup; i++)
                        dup = strcmp(e.names[i], name) == 0;
                if (dup) {
                        r = fail(c, k, key, "variable '%s' is given twice", name);
                        free(name);
                        break;
                }
                char kv[512];
                snprintf(kv, sizeof(kv), "%s.%s", key, name);
                if (v->type != YAML_SCALAR_NODE) {
                        r = fail(c, v, kv, "expected a single value, not %s", type_name(v));
                        free(name);
                        break;
                }
                if (is_null(v)) {
                        r = fail(c, v, kv, "has no value (write \"\" for an empty one)");
                        free(name);
                        break;
                }
                char *value = NULL;
                if ((r = get_string(c, v, kv, JL_SCENARIO_MAX_COMMAND, true, &value)) < 0) {
                        free(name);
                        break;
                }
                e.names[e.n] = name;
                e.values[e.n] = value;
                e.n++;
        }
        if (r < 0) {
                env_free(&e);
                return r;
        }
        *ret = e;
        return 0;
}

/* Walk a mapping's keys; reject repeated keys. `seen` holds one flag per allowed key. */
static int check_duplicate(ctx *c, const yaml_node_t *k, const char *prefix, const char *key, bool *seen)
{
        if (*seen)
                return fail(c, k, prefix, "key '%s' is given twice", key);
        *seen = true;
        return 0;
}

static void step_free(jl_scenario_step *st)
{
        free(st->name);
        strv_free(st->commands, st->n_commands);
        env_free(&st->env);
}

static int get_step(ctx *c, const yaml_node_t *n, size_t index, jl_scenario_step *ret)
{
        char key[96], k2[256];
        snprintf(key, sizeof(key), "flow[%zu]", index);
        if (n->type != YAML_MAPPING_NODE)
                return fail(c, n, key, "expected a mapping with name, commands and optionally timeout_s and "
                                       "environment, not %s",
                            type_name(n));
        jl_scenario_step st = {.timeout_s = JL_SCENARIO_DEFAULT_TIMEOUT_S, .line = n->start_mark.line + 1};
        bool seen[4] = {false};
        const yaml_node_t *commands_node = NULL;
        int r = 0;
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top && r >= 0; p++) {
                yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
                yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
                if (!k || !v || k->type != YAML_SCALAR_NODE) {
                        r = fail(c, k ? k : n, key, "keys must be plain words");
                        break;
                }
                const char *kn = (const char *)k->data.scalar.value;
                snprintf(k2, sizeof(k2), "%s.%s", key, kn);
                if (strcmp(kn, "name") == 0) {
                        if ((r = check_duplicate(c, k, key, kn, &seen[0])) >= 0)
                                r = get_string(c, v, k2, JL_SCENARIO_MAX_NAME, false, &st.name);
                        if (r >= 0 && st.name[0] == '[')
                                r = fail(c, v, k2, "names starting with '[' are reserved for the runner's own "
                                                   "phases ([BASELINE])");
                        if (r >= 0)
                                for (const char *q = st.name; *q && r >= 0; q++)
                                        if ((unsigned char)*q < 0x20 || *q == 0x7f)
                                                r = fail(c, v, k2, "contains a control character");
                } else if (strcmp(kn, "commands") == 0) {
                        if ((r = check_duplicate(c, k, key, kn, &seen[1])) >= 0)
                                r = get_commands(c, v, k2, false, &st.commands, &st.n_commands);
                        commands_node = v;
                } else if (strcmp(kn, "timeout_s") == 0) {
                        if ((r = check_duplicate(c, k, key, kn, &seen[2])) < 0)
                                break;
                        double t;
                        if (v->type != YAML_SCALAR_NODE || is_null(v))
                                r = fail(c, v, k2, "expected a number of seconds, not %s",
                                         v->type == YAML_SCALAR_NODE ? "nothing" : type_name(v));
                        else if (memchr(v->data.scalar.value, '\0', v->data.scalar.length) ||
                                 parse_double((const char *)v->data.scalar.value, &t) < 0 || !isfinite(t))
                                r = fail(c, v, k2, "expected a number of seconds, got '%s'",
                                         (const char *)v->data.scalar.value);
                        else if (!(t > 0) || t > JL_SCENARIO_MAX_TIMEOUT_S)
                                r = fail(c, v, k2, "'%s' is out of range (0 < t <= %.0f)",
                                         (const char *)v->data.scalar.value, JL_SCENARIO_MAX_TIMEOUT_S);
                        else
                                st.timeout_s = t;
                } else if (strcmp(kn, "environment") == 0) {
                        if ((r = check_duplicate(c, k, key, kn, &seen[3])) >= 0)
                                r = get_env(c, v, k2, &st.env);
                } else
                        r = fail(c, k, key, "unknown key '%s' (a step has name, commands, timeout_s, environment)",
                                 kn);
        }
        if (r >= 0 && !st.name)
                r = fail(c, n, key, "the step has no name");
        if (r >= 0 && !commands_node)
                r = fail(c, n, key, "step '%s' has no commands", st.name);
        if (r >= 0 && st.n_commands == 0) {
                snprintf(k2, sizeof(k2), "%s.commands", key);
                r = fail(c, commands_node, k2, "step '%s' has an empty list of commands", st.name);
        }
        if (r < 0) {
                step_free(&st);
                return r;
        }
        *ret = st;
        return 0;
}

static int get_flow(ctx *c, const yaml_node_t *n, jl_scenario *s)
{
        if (n->type != YAML_SEQUENCE_NODE || is_null(n))
                return fail(c, n, "flow", "expected a list of steps, not %s",
                            is_null(n) ? "nothing" : type_name(n));
        size_t count = seq_len(n);
        if (count == 0)
                return fail(c, n, "flow", "the flow is empty: give at least one step");
        if (count > JL_SCENARIO_MAX_ITEMS)
                return fail(c, n, "flow", "more than %d steps", JL_SCENARIO_MAX_ITEMS);
        s->flow = calloc(count, sizeof(*s->flow));
        if (!s->flow)
                return -ENOMEM;
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
                yaml_node_t *item = yaml_document_get_node(c->doc, *it);
                if (!item)
                        return fail(c, n, "flow", "malformed step");
                jl_scenario_step st;
                int r = get_step(c, item, s->n_flow, &st);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < s->n_flow; i++)
                        if (strcmp(s->flow[i].name, st.name) == 0) {
                                char key[96];
                                snprintf(key, sizeof(key), "flow[%zu].name", s->n_flow);
                                r = fail(c, item, key, "step name '%s' is already used by flow[%zu] (line %zu)",
                                         st.name, i, s->flow[i].line);
                                step_free(&st);
                                return r;
                        }
                s->flow[s->n_flow++] = st;
        }
        return 0;
}

static int apply(ctx *c, jl_scenario *s)
{
        yaml_node_t *root = yaml_document_get_root_node(c->doc);
        if (!root)
                return fail(c, NULL, NULL, "the file is empty: a scenario needs a name and a flow");
        if (root->type != YAML_MAPPING_NODE)
                return fail(c, root, NULL, "the top level must be a mapping (name, environment, setup, flow, "
                                           "teardown)");
        static const char *const known[] = {"name", "description", "environment", "setup", "flow", "teardown"};
        bool seen[ARRAY_SIZE(known)] = {false};
        int r = 0;
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
                yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
                yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
                if (!k || !v || k->type != YAML_SCALAR_NODE)
                        return fail(c, k ? k : root, NULL, "keys must be plain words");
                const char *kn = (const char *)k->data.scalar.value;
                size_t which = ARRAY_SIZE(known);
                for (size_t i = 0; i < ARRAY_SIZE(known); i++)
                        if (strcmp(kn, known[i]) == 0)
                                which = i;
                if (which == ARRAY_SIZE(known))
                        return fail(c, k, NULL,
                                    "unknown key '%s' (a scenario has name, description, environment, setup, flow, "
                                    "teardown)",
                                    kn);
                if ((r = check_duplicate(c, k, NULL, kn, &seen[which])) < 0)
                        return r;
                switch (which) {
                case 0:
                        r = get_string(c, v, "name", JL_SCENARIO_MAX_NAME, false, &s->name);
                        break;
                case 1:
                        r = is_null(v) ? 0 : get_string(c, v, "description", JL_SCENARIO_MAX_COMMAND, true,
                                                        &s->description);
                        break;
                case 2:
                        r = get_env(c, v, "environment", &s->env);
                        break;
                case 3:
                        r = get_commands(c, v, "setup", true, &s->setup, &s->n_setup);
                        break;
                case 4:
                        r = get_flow(c, v, s);
                        break;
                default:
                        r = get_commands(c, v, "teardown", true, &s->teardown, &s->n_teardown);
                        break;
                }
                if (r < 0)
                        return r;
        }
        if (!s->name)
                return fail(c, root, NULL, "the scenario has no 'name'");
        if (!seen[4])
                return fail(c, root, NULL, "the scenario has no 'flow' (a list of named steps)");
        return 0;
}

int jl_scenario_load_string(const char *name, const char *text, size_t len, jl_scenario **ret, char *err,
                            size_t errlen)
{
        if (err && errlen)
                err[0] = '\0';
        if (len > JL_SCENARIO_MAX_FILE_BYTES) {
                if (err && errlen)
                        snprintf(err, errlen, "%s: the file is larger than %d bytes", name,
                                 JL_SCENARIO_MAX_FILE_BYTES);
                return -EFBIG;
        }
        jl_scenario *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->file = strdup(name);
        if (!s->file) {
                free(s);
                return -ENOMEM;
        }
        yaml_parser_t parser;
        yaml_document_t doc;
        if (!yaml_parser_initialize(&parser)) {
                jl_scenario_free(s);
                return -ENOMEM;
        }
        yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
        ctx c = {.file = name, .doc = &doc, .err = err, .errlen = errlen};
        int r;
        if (!yaml_parser_load(&parser, &doc)) {
                if (err && errlen)
                        snprintf(err, errlen, "%s:%zu: %s%s%s", name, parser.problem_mark.line + 1,
                                 parser.problem ? parser.problem : "malformed YAML", parser.context ? " " : "",
                                 parser.context ? parser.context : "");
                r = parser.error == YAML_MEMORY_ERROR ? -ENOMEM : -EINVAL;
                yaml_parser_delete(&parser);
                jl_scenario_free(s);
                return r;
        }
        r = apply(&c, s);
        if (r >= 0) {
                /* A second document in the same file is a mistake, not something to ignore. */
                yaml_document_t next;
                if (!yaml_parser_load(&parser, &next))
                        r = fail(&c, NULL, NULL, "malformed YAML after the scenario");
                else {
                        if (yaml_document_get_root_node(&next))
                                r = fail(&c, yaml_document_get_root_node(&next), NULL,
                                         "a second YAML document: a file holds one scenario");
                        yaml_document_delete(&next);
                }
        }
        yaml_document_delete(&doc);
        yaml_parser_delete(&parser);
        if (r < 0) {
                jl_scenario_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

int jl_scenario_load(const char *path, jl_scenario **ret, char *err, size_t errlen)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f) {
                int r = -errno;
                if (err && errlen)
                        snprintf(err, errlen, "%s: %s", path, strerror(errno));
                return r;
        }
        _cleanup_free_ char *buf = malloc(JL_SCENARIO_MAX_FILE_BYTES + 1);
        if (!buf)
                return -ENOMEM;
        size_t len = fread(buf, 1, JL_SCENARIO_MAX_FILE_BYTES + 1, f);
        if (ferror(f)) {
                if (err && errlen)
                        snprintf(err, errlen, "%s: read error", path);
                return -EIO;
        }
        return jl_scenario_load_string(path, buf, len, ret, err, errlen);
}

void jl_scenario_free(jl_scenario *s)
{
        if (!s)
                return;
        free(s->file);
        free(s->name);
        free(s->description);
        env_free(&s->env);
        strv_free(s->setup, s->n_setup);
        for (size_t i = 0; i < s->n_flow; i++)
                step_free(&s->flow[i]);
        free(s->flow);
        strv_free(s->teardown, s->n_teardown);
        free(s);
}

static const char *env_lookup(const jl_scenario_env *e, const char *name)
{
        for (size_t i = 0; i < e->n; i++)
                if (strcmp(e->names[i], name) == 0)
                        return e->values[i];
        return NULL;
}

const char *jl_scenario_getenv(const jl_scenario *s, const jl_scenario_step *step, const char *name)
{
        const char *v = step ? env_lookup(&step->env, name) : NULL;
        return v ? v : env_lookup(&s->env, name);
}
