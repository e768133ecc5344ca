/* submit.c - `joule submit`: queue a benchmark job for one measurement machine (a scenario file, stored in
 * the job, or a git repository and branch), print the new job's id alone on stdout, and on PostgreSQL wake
 * the machine's idle runner at once (NOTIFY joule_jobs, '<machine id>'). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "macro.h"
#include "mail.h"
#include "scenario.h"
#include "store.h"

#define NAME_MAX_BYTES 256
#define URL_MAX_BYTES 2048
#define BRANCH_MAX_BYTES 255

static int usage(FILE *f)
{
        fputs(
            "Usage: joule submit --machine ID (--scenario FILE | --repo URL [--branch B]) [--name N]\n"
            "                    [--email ADDR] [--url DBURL]\n\n"
            "Queue a benchmark job for one measurement machine and print its id alone on stdout. The\n"
            "machine's runner runs it alone under measurement once the machine is cool (docs/queue.md).\n\n"
            "  -m, --machine ID     the machine (see `joule machines list`)\n"
            "  -s, --scenario FILE  a scenario file (YAML, docs/scenarios.md): checked now, stored in the "
            "job\n"
            "  -r, --repo URL       a git repository to clone; its scenario file is run\n"
            "  -b, --branch B       the branch to check out (default: the repository's default branch)\n"
            "  -n, --name N         a name for the job (default: the scenario's name, or the repository's)\n"
            "  -e, --email ADDR     mail the result (energy per phase) or the failure to ADDR\n"
            "  -u, --url DBURL      the database (default: database.url)\n",
            f);
        return f == stdout ? 0 : 2;
}

/* Read a scenario file whole (at most JL_SCENARIO_MAX_FILE_BYTES, no NUL bytes) into *ret. */
static int read_scenario(const char *path, char **ret)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return log_error(errno, "submit: cannot open the scenario %s: %s", path, strerror(errno));
        size_t cap = (size_t)JL_SCENARIO_MAX_FILE_BYTES + 1, len = 0;
        _cleanup_free_ char *buf = malloc(cap + 1);
        if (!buf)
                return log_error(ENOMEM, "out of memory");
        for (;;) { /* bounded: len grows to cap at most */
                ssize_t n = read(fd, buf + len, cap - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return log_error(errno, "submit: cannot read the scenario %s: %s", path,
                                         strerror(errno));
                if (n == 0)
                        break;
                len += (size_t)n;
                if (len == cap)
                        return log_error(EFBIG, "submit: the scenario %s is larger than %d bytes", path,
                                         JL_SCENARIO_MAX_FILE_BYTES);
        }
        buf[len] = '\0';
        if (strlen(buf) != len)
                return log_error(EINVAL, "submit: the scenario %s holds a NUL byte: not a text file", path);
        if (len == 0)
                return log_error(EINVAL, "submit: the scenario %s is empty", path);
        *ret = TAKE_PTR(buf);
        return 0;
}

/* A repository URL or branch as git would take one and no option in disguise. */
static bool git_word_ok(const char *s, size_t max)
{
        if (!cli_text_ok(s, max) || s[0] == '-' || strpbrk(s, " \\"))
                return false;
        return true;
}

static bool branch_ok(const char *b)
{
        return git_word_ok(b, BRANCH_MAX_BYTES) && !strstr(b, "..") && !strpbrk(b, "~^:?*[") &&
               b[0] != '/' && b[strlen(b) - 1] != '/' && !strstr(b, "@{");
}

/* The last path component of a repository URL without ".git" ("https://x/y/proj.git" -> "proj"). */
static char *repo_name(const char *url)
{
        size_t len = strlen(url);
        while (len > 0 && url[len - 1] == '/')
                len--;
        size_t start = len;
        while (start > 0 && url[start - 1] != '/' && url[start - 1] != ':')
                start--;
        if (len - start > 4 && strncmp(url + len - 4, ".git", 4) == 0)
                len -= 4;
        return len > start ? strndup(url + start, len - start) : strdup(url);
}

int verb_submit(cli_context *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
            {"machine", required_argument, NULL, 'm'},
            {"scenario", required_argument, NULL, 's'},
            {"repo", required_argument, NULL, 'r'},
            {"branch", required_argument, NULL, 'b'},
            {"name", required_argument, NULL, 'n'},
            {"email", required_argument, NULL, 'e'},
            {"url", required_argument, NULL, 'u'},
            {"help", no_argument, NULL, 'h'},
            {0},
        };
        const char *machine_s = NULL, *scenario_path = NULL, *repo = NULL, *branch = NULL, *name = NULL,
                   *email = NULL, *url = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "m:s:r:b:n:e:u:h", opts, NULL)) >= 0) {
                switch (c) {
                case 'm':
                        machine_s = optarg;
                        break;
                case 's':
                        scenario_path = optarg;
                        break;
                case 'r':
                        repo = optarg;
                        break;
                case 'b':
                        branch = optarg;
                        break;
                case 'n':
                        name = optarg;
                        break;
                case 'e':
                        email = optarg;
                        break;
                case 'u':
                        url = optarg;
                        break;
                case 'h':
                        return usage(stdout);
                default:
                        return usage(stderr);
                }
        }
        if (optind != argc) {
                usage(stderr);
                log_error(EINVAL, "submit: unexpected argument '%s'", argv[optind]);
                return 2;
        }
        int64_t machine;
        if (!machine_s) {
                log_error(EINVAL, "submit: --machine is required");
                return 2;
        }
        if (cli_parse_id("submit: the machine id", machine_s, &machine) < 0)
                return 2;
        if (!scenario_path == !repo) {
                log_error(EINVAL, "submit: give exactly one of --scenario FILE and --repo URL");
                return 2;
        }
        if (branch && !repo) {
                log_error(EINVAL, "submit: --branch goes with --repo");
                return 2;
        }
        if (repo && !git_word_ok(repo, URL_MAX_BYTES)) {
                log_error(
                    EINVAL,
                    "submit: '%s' is not a repository URL (printable, no spaces, not starting with '-')",
                    repo);
                return 2;
        }
        if (branch && !branch_ok(branch)) {
                log_error(EINVAL, "submit: '%s' is not a valid branch name", branch);
                return 2;
        }
        if (name && !cli_text_ok(name, NAME_MAX_BYTES)) {
                log_error(EINVAL, "submit: the name must be 1 to %d printable bytes", NAME_MAX_BYTES);
                return 2;
        }
        if (email && !jl_mail_address_ok(email)) {
                log_error(EINVAL, "submit: '%s' is not an e-mail address", email);
                return 2;
        }

        _cleanup_free_ char *text = NULL, *default_name = NULL;
        if (scenario_path) {
                if (read_scenario(scenario_path, &text) < 0)
                        return 1;
                /* the runner would fail the job on the same error: refuse it now, with the file's line */
                jl_scenario *sc = NULL;
                char err[1024] = "";
                int r = jl_scenario_load_string(scenario_path, text, strlen(text), &sc, err, sizeof(err));
                if (r < 0) {
                        log_error(r, "submit: %s", err[0] ? err : strerror(-r));
                        return 1;
                }
                default_name = strdup(sc->name);
                jl_scenario_free(sc);
        } else
                default_name = repo_name(repo);
        if (!name)
                name = default_name;

        _cleanup_store_ jl_store *s = NULL;
        if (cli_open_store(ctx, url, &s) < 0)
                return 1;
        int r = cli_machine_exists(s, machine);
        if (r < 0)
                return 1;
        if (r == 0) {
                log_error(ENOENT, "submit: machine %" PRId64 " does not exist (see `joule machines list`)",
                          machine);
                return 1;
        }
        _cleanup_stmt_ jl_stmt *ins = NULL;
        int64_t id = 0;
        r = jl_store_prepare(
            s,
            "INSERT INTO bench_jobs (machine_id, state, name, scenario, repo_url, branch, email, "
            "created_us) VALUES ($1, 'WAITING', $2, $3, $4, $5, $6, $7) RETURNING id",
            &ins);
        if (r >= 0 && (r = jl_stmt_bind_int64(ins, 1, machine)) >= 0 &&
            (r = jl_stmt_bind_text(ins, 2, name)) >= 0 && (r = jl_stmt_bind_text(ins, 3, text)) >= 0 &&
            (r = jl_stmt_bind_text(ins, 4, repo)) >= 0 && (r = jl_stmt_bind_text(ins, 5, branch)) >= 0 &&
            (r = jl_stmt_bind_text(ins, 6, email)) >= 0 &&
            (r = jl_stmt_bind_int64(ins, 7, (int64_t)cli_now_us())) >= 0)
                r = jl_stmt_insert_id(ins, &id);
        if (r <= 0) {
                log_error(r < 0 ? r : EIO, "submit: cannot queue the job: %s", jl_store_error(s));
                return 1;
        }
        printf("%" PRId64 "\n", id);
        fflush(stdout);

        /* wake the machine's runner; it polls anyway, so a failure here delays the job but loses nothing */
        if (jl_store_get_backend(s) == JL_STORE_POSTGRES) {
                char payload[32];
                snprintf(payload, sizeof(payload), "%" PRId64, machine);
                r = jl_store_notify(s, "joule_jobs", payload);
                if (r < 0)
                        log_warning(
                            r, "submit: job %" PRId64 " is queued, but the runner could not be woken: %s",
                            id, jl_store_error(s));
        }
        return 0;
}
