/* test-store-cli.c - `joule db init | migrate | check` run as a user runs them, on SQLite (a temporary
 * file) or on the empty database of $JOULE_TEST_DATABASE_URL: exit codes, what they print, errors that
 * name the URL without its password, a database newer than the build.
 * Usage: test-store-cli JOULE_BINARY [URL] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "store.h"
#include "tap.h"

static const char *joule;
static char config[128];
static char out[8192];

/* Run `joule -c CONFIG ARGS` with stdout and stderr into out; returns the exit status. */
static int run(const char *args)
{
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "'%s' -c '%s' %s 2>&1", joule, config, args);
        FILE *p = popen(cmd, "r");
        if (!p)
                return -1;
        size_t n = fread(out, 1, sizeof(out) - 1, p);
        out[n] = '\0';
        int st = pclose(p);
        printf("# $ joule %s -> %d\n", args, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        char copy[sizeof(out)];
        memcpy(copy, out, n + 1);
        for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save))
                printf("#   %s\n", line);
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void set_version_row(const char *url, int version, bool add)
{
        _cleanup_store_ jl_store *s = NULL;
        char err[512], sql[160];
        if (jl_store_open(url, 0, &s, err, sizeof(err)) < 0) {
                printf("# %s\n", err);
                return;
        }
        if (add)
                snprintf(sql, sizeof(sql),
                         "INSERT INTO schema_version (version, name, applied_us) VALUES (%d, 'future', 0)",
                         version);
        else
                snprintf(sql, sizeof(sql), "DELETE FROM schema_version WHERE version = %d", version);
        if (jl_store_exec(s, sql) < 0)
                printf("# %s\n", jl_store_error(s));
}

int main(int argc, char **argv)
{
        char dir[] = "/tmp/test-store-cli-XXXXXX", url_buf[256], args[512];
        if (argc < 2 || !mkdtemp(dir)) {
                fprintf(stderr, "usage: test-store-cli JOULE_BINARY [URL]\n");
                return 2;
        }
        joule = argv[1];
        const char *url = argc > 2 ? argv[2] : getenv("JOULE_TEST_DATABASE_URL");
        bool sqlite = !url || !*url;
        if (sqlite) {
                /* in a directory that does not exist yet: init creates it */
                snprintf(url_buf, sizeof(url_buf), "sqlite:%s/var/lib/joule/joule.db", dir);
                url = url_buf;
        }
        /* the database URL comes from the configuration file, as in production */
        snprintf(config, sizeof(config), "%s/joule.yml", dir);
        FILE *f = fopen(config, "w");
        if (!f)
                return 1;
        fprintf(f, "database:\n  url: \"%s\"\n", url);
        fclose(f);
        int latest = jl_store_schema_latest();
        char want[128];

        is_int(run("db check"), 1, "check before init fails");
        ok(sqlite ? strstr(out, "joule db init") != NULL : strstr(out, "version 0 of") != NULL,
           "… and says the database is missing or empty");
        if (!sqlite)
                ok(strstr(out, "pending:") != NULL, "… listing the pending migrations");
        is_int(run("db migrate"), 1, "migrate before init fails");
        ok(strstr(out, "joule db init") != NULL, "… and says to run init");

        is_int(run("db init"), 0, "init");
        snprintf(want, sizeof(want), "0 -> %d", latest);
        ok(strstr(out, want) != NULL, "… applies every migration");
        is_int(run("db check"), 0, "check after init");
        snprintf(want, sizeof(want), "version %d of %d", latest, latest);
        ok(strstr(out, want) && strstr(out, "connected: yes") && !strstr(out, "pending"),
           "… reports it current");
        is_int(run("db check --json"), 0, "check --json");
        ok(strstr(out, "\"current\":true") && strstr(out, "\"connected\":true"), "… as JSON");
        is_int(run("db migrate"), 0, "migrate when current");
        ok(strstr(out, "current") != NULL, "… is a no-op");
        is_int(run("db init"), 0, "init again");
        ok(strstr(out, "current") != NULL, "… is a no-op too");

        set_version_row(url, latest + 1, true);
        is_int(run("db check"), 1, "check of a database newer than this build");
        ok(strstr(out, "newer") != NULL, "… says so");
        is_int(run("db migrate"), 1, "migrate refuses it");
        ok(strstr(out, "newer") != NULL, "… and says why");
        set_version_row(url, latest + 1, false);
        is_int(run("db check"), 0, "current again");

        snprintf(args, sizeof(args), "db check --url 'postgresql://joule:hunter2@127.0.0.1:1/joule'");
        is_int(run(args), 1, "check of an unreachable server");
        ok(strstr(out, "postgresql://joule:***@127.0.0.1:1/joule") && !strstr(out, "hunter2"),
           "… names the URL without the password");
        ok(strstr(out, "refused") != NULL, "… and the cause");
        is_int(run("db init --url 'mysql://db/joule'"), 1, "an unknown URL scheme");
        ok(strstr(out, "mysql://db/joule") && strstr(out, "scheme"), "… is named with the cause");
        is_int(run("db"), 2, "no command: usage");
        is_int(run("db frobnicate"), 2, "an unknown command: usage");

        snprintf(args, sizeof(args), "rm -rf '%s'", dir);
        if (system(args) != 0)
                printf("# could not remove %s\n", dir);
        return tap_done();
}
