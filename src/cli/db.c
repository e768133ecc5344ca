/* db.c - `joule db init | migrate | check`: create the database and bring its schema up to date, or
 * report its schema version, pending migrations and whether it can be reached. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "json.h"
#include "log.h"
#include "macro.h"
#include "store.h"

static int usage(FILE *f)
{
        fputs("Usage: joule db [--url URL] init | migrate | check [--json]\n\n"
              "  init      create the database (SQLite: the file and its directory) and apply every "
              "migration\n"
              "  migrate   apply the pending migrations to an existing database\n"
              "  check     report connectivity, the schema version and pending migrations; exit 1 unless\n"
              "            the schema is current\n\n"
              "  -u, --url URL   the database (default: database.url of the configuration): a path,\n"
              "                  sqlite:PATH or postgresql://USER@HOST:PORT/DB\n"
              "  -j, --json      check: print one JSON object on stdout\n",
              f);
        return f == stdout ? 0 : 2;
}

/* mkdir -p of the directory holding path (for a new SQLite file). */
static int mkdir_parents(const char *path)
{
        _cleanup_free_ char *dir = strdup(path);
        if (!dir)
                return -ENOMEM;
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir)
                return 0;
        *slash = '\0';
        for (char *p = dir + 1;; p++) {
                if (*p != '/' && *p != '\0')
                        continue;
                char c = *p;
                *p = '\0';
                if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                        return negative_errno();
                *p = c;
                if (c == '\0')
                        return 0;
        }
}

static int open_store(const char *url, unsigned flags, jl_store **ret)
{
        char err[1024];
        int r = jl_store_open(url, flags, ret, err, sizeof(err));
        if (r < 0)
                return log_error(r, "%s", err);
        return 0;
}

static int do_migrate(const char *url, const char *redacted, bool create)
{
        jl_store_backend backend;
        const char *path = NULL;

        if (create && jl_store_url_parse(url, &backend, &path) >= 0 && backend == JL_STORE_SQLITE &&
            strcmp(path, ":memory:") != 0) {
                int r = mkdir_parents(path);
                if (r < 0)
                        return log_error(r, "%s: cannot create the directory of %s: %s", redacted, path,
                                         strerror(-r));
        }
        _cleanup_store_ jl_store *s = NULL;
        int r = open_store(url, create ? JL_STORE_OPEN_CREATE : 0, &s);
        if (r < 0)
                return r;
        int before = 0, after = 0;
        r = jl_store_schema_version(s, &before);
        if (r < 0)
                return log_error(r, "%s: cannot read the schema version: %s", redacted, jl_store_error(s));
        if (!create && before == 0)
                return log_error(ENOENT, "%s: the database has no joule schema (run `joule db init`)",
                                 redacted);
        r = jl_store_migrate(s);
        if (r < 0)
                return log_error(r, "%s: %s", redacted, jl_store_error(s));
        int applied = r;
        r = jl_store_schema_version(s, &after);
        if (r < 0)
                return log_error(r, "%s: cannot read the schema version: %s", redacted, jl_store_error(s));
        if (applied == 0)
                printf("%s (%s): schema version %d, current\n", redacted,
                       jl_store_backend_name(jl_store_get_backend(s)), after);
        else
                printf("%s (%s): schema version %d -> %d (%d migration%s applied)\n", redacted,
                       jl_store_backend_name(jl_store_get_backend(s)), before, after, applied,
                       applied == 1 ? "" : "s");
        return 0;
}

static int do_check(const char *url, const char *redacted, bool json)
{
        _cleanup_store_ jl_store *s = NULL;
        jl_store_backend backend = JL_STORE_SQLITE;
        char err[1024] = "";
        int version = -1, latest = jl_store_schema_latest();

        (void)jl_store_url_parse(url, &backend, NULL);
        int r = jl_store_open(url, 0, &s, err, sizeof(err));
        if (r >= 0) {
                r = jl_store_schema_version(s, &version);
                if (r < 0)
                        snprintf(err, sizeof(err), "%s: cannot read the schema version: %s", redacted,
                                 jl_store_error(s));
        }
        bool connected = s != NULL;
        bool current = r >= 0 && version == latest;

        if (json) {
                json_writer w;
                json_init(&w, stdout);
                json_object_begin(&w);
                json_key(&w, "url");
                json_string(&w, redacted);
                json_key(&w, "backend");
                json_string(&w, jl_store_backend_name(backend));
                json_key(&w, "connected");
                json_bool(&w, connected);
                json_key(&w, "version");
                if (r >= 0)
                        json_int(&w, version);
                else
                        json_null(&w);
                json_key(&w, "latest");
                json_int(&w, latest);
                json_key(&w, "pending");
                json_array_begin(&w);
                for (int v = version + 1; r >= 0 && v <= latest; v++) {
                        if (!jl_store_migration_name(v)) /* versions need not be contiguous */
                                continue;
                        json_object_begin(&w);
                        json_key(&w, "version");
                        json_int(&w, v);
                        json_key(&w, "name");
                        json_string(&w, jl_store_migration_name(v));
                        json_object_end(&w);
                }
                json_array_end(&w);
                json_key(&w, "current");
                json_bool(&w, current);
                if (r < 0) {
                        json_key(&w, "error");
                        json_string(&w, err);
                }
                json_object_end(&w);
                fputc('\n', stdout);
        } else if (r >= 0) {
                printf("database:  %s (%s)\n", redacted, jl_store_backend_name(backend));
                printf("connected: yes\n");
                printf("schema:    version %d of %d%s\n", version, latest,
                       version == 0 ? " (empty: run `joule db init`)" : "");
                for (int v = version + 1; v <= latest; v++)
                        if (jl_store_migration_name(v))
                                printf("pending:   %d %s\n", v, jl_store_migration_name(v));
        }
        if (r < 0) {
                log_error(r, "%s", err);
                return 1;
        }
        if (version > latest)
                log_error(EPROTO, "%s: the schema version %d is newer than this joule's (%d): upgrade joule",
                          redacted, version, latest);
        else if (!current)
                log_notice("%s: %d migration%s pending (run `joule db migrate`)", redacted, latest - version,
                           latest - version == 1 ? "" : "s");
        return current ? 0 : 1;
}

int verb_db(cli_context *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
            {"url", required_argument, NULL, 'u'},
            {"json", no_argument, NULL, 'j'},
            {"help", no_argument, NULL, 'h'},
            {0},
        };
        const char *url = ctx->config.database.url;
        bool json = false;
        int c;

        while ((c = getopt_long(argc, argv, "u:jh", opts, NULL)) >= 0) {
                switch (c) {
                case 'u':
                        url = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        return usage(stdout);
                default:
                        return usage(stderr);
                }
        }
        if (optind != argc - 1) {
                usage(stderr);
                log_error(EINVAL, optind >= argc ? "no command given" : "too many arguments");
                return 2;
        }
        const char *cmd = argv[optind];
        if (!url || !*url) {
                log_error(EINVAL, "no database URL (database.url or --url)");
                return 2;
        }
        char redacted[256];
        jl_store_url_redact(url, redacted, sizeof(redacted));

        if (strcmp(cmd, "init") == 0)
                return do_migrate(url, redacted, true) < 0 ? 1 : 0;
        if (strcmp(cmd, "migrate") == 0)
                return do_migrate(url, redacted, false) < 0 ? 1 : 0;
        if (strcmp(cmd, "check") == 0)
                return do_check(url, redacted, json);
        usage(stderr);
        log_error(EINVAL, "unknown command '%s'", cmd);
        return 2;
}
