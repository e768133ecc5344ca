/* info.c - `joule info`: every provider and domain, whether it works, its current reading, and why not in
 * words a user can act on. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "json.h"
#include "log.h"
#include "macro.h"
#include "sampler.h"

static double value_of(const jl_track *t)
{
        if (t->ch.kind == JL_KIND_ENERGY)
                return t->have_last ? (double)t->last_raw / 1e6 : NAN;
        return t->have_value ? t->value : NAN;
}

static const jl_note *provider_note(const jl_sampler *s, const char *name)
{
        for (size_t i = 0; i < s->notes.n; i++)
                if (strcmp(s->notes.items[i].subject, name) == 0)
                        return &s->notes.items[i];
        return NULL;
}

static size_t provider_channels(const jl_sampler *s, const char *name)
{
        for (size_t p = 0; p < s->nprov; p++)
                if (strcmp(s->prov[p].ops->name, name) == 0)
                        return s->prov[p].count;
        return 0;
}

static void print_json(const jl_sampler *s)
{
        json_writer w;
        json_init(&w, stdout);
        json_object_begin(&w);
        json_key(&w, "providers");
        json_array_begin(&w);
        for (const jl_provider_ops *const *p = jl_providers; *p; p++) {
                size_t n = provider_channels(s, (*p)->name);
                json_object_begin(&w);
                json_key(&w, "name");
                json_string(&w, (*p)->name);
                json_key(&w, "description");
                json_string(&w, (*p)->description);
                json_key(&w, "available");
                json_bool(&w, n > 0);
                json_key(&w, "channels");
                json_uint(&w, n);
                const jl_note *note = provider_note(s, (*p)->name);
                if (n == 0 && note) {
                        json_key(&w, "reason");
                        json_string(&w, note->reason);
                }
                json_object_end(&w);
        }
        json_array_end(&w);
        json_key(&w, "channels");
        json_array_begin(&w);
        for (size_t i = 0; i < s->channels.n; i++) {
                const jl_track *t = &s->tracks[i];
                bool okv = s->values[i].err == 0 && isfinite(value_of(t));
                json_object_begin(&w);
                json_key(&w, "name");
                json_string(&w, t->ch.name);
                json_key(&w, "provider");
                json_string(&w, t->ch.provider);
                json_key(&w, "kind");
                json_string(&w, jl_kind_name(t->ch.kind));
                json_key(&w, "scope");
                json_string(&w, jl_scope_name(t->ch.scope));
                json_key(&w, "estimated");
                json_bool(&w, t->ch.estimated);
                json_key(&w, "ok");
                json_bool(&w, okv);
                json_key(&w, "value");
                json_double(&w, okv ? value_of(t) : NAN);
                json_key(&w, "unit");
                json_string(&w, jl_kind_unit(t->ch.kind));
                if (t->ch.kind == JL_KIND_ENERGY) {
                        json_key(&w, "wrap_j");
                        json_double(&w, (double)t->ch.wrap_uj / 1e6);
                }
                if (!okv) {
                        json_key(&w, "error");
                        json_string(&w, jl_errno_hint(s->values[i].err ? s->values[i].err : -ERANGE));
                }
                json_object_end(&w);
        }
        json_array_end(&w);
        json_key(&w, "notes");
        json_array_begin(&w);
        for (size_t i = 0; i < s->notes.n; i++) {
                json_object_begin(&w);
                json_key(&w, "subject");
                json_string(&w, s->notes.items[i].subject);
                json_key(&w, "reason");
                json_string(&w, s->notes.items[i].reason);
                json_key(&w, "errno");
                json_string(&w, strerrorname_np(-s->notes.items[i].err) ? strerrorname_np(-s->notes.items[i].err)
                                                                         : "");
                json_object_end(&w);
        }
        json_array_end(&w);
        json_object_end(&w);
        fputc('\n', stdout);
}

static void print_human(const jl_sampler *s)
{
        printf("Providers:\n");
        for (const jl_provider_ops *const *p = jl_providers; *p; p++) {
                size_t n = provider_channels(s, (*p)->name);
                const jl_note *note = provider_note(s, (*p)->name);
                if (n > 0)
                        printf("  %-10s yes  %zu channel%s  %s\n", (*p)->name, n, n == 1 ? "" : "s",
                               (*p)->description);
                else
                        printf("  %-10s no   %s\n", (*p)->name, note ? note->reason : "no channels found");
        }
        printf("\nChannels:\n");
        for (size_t i = 0; i < s->channels.n; i++) {
                const jl_track *t = &s->tracks[i];
                double v = value_of(t);
                char val[64];
                if (s->values[i].err || !isfinite(v))
                        snprintf(val, sizeof(val), "unreadable: %s",
                                 jl_errno_hint(s->values[i].err ? s->values[i].err : -ERANGE));
                else if (t->ch.kind == JL_KIND_ENERGY)
                        snprintf(val, sizeof(val), "%.6f J", v);
                else if (t->ch.kind == JL_KIND_TEMPERATURE)
                        snprintf(val, sizeof(val), "%.1f °C", v);
                else if (t->ch.kind == JL_KIND_FREQUENCY)
                        snprintf(val, sizeof(val), "%.0f MHz", v / 1000);
                else if (t->ch.kind == JL_KIND_POWER)
                        snprintf(val, sizeof(val), "%.2f W", v);
                else
                        snprintf(val, sizeof(val), "%.1f %%", v * 100);
                printf("  %-32s %-9s %-12s %-9s %s%s\n", t->ch.name, t->ch.provider, jl_kind_name(t->ch.kind),
                       jl_scope_name(t->ch.scope), val, t->ch.estimated ? " (estimated)" : "");
        }
        bool header = false;
        for (size_t i = 0; i < s->notes.n; i++) {
                const jl_note *n = &s->notes.items[i];
                if (strchr(n->subject, '/') == NULL && provider_channels(s, n->subject) == 0 &&
                    n->err != -EEXIST)
                        continue; /* already shown with its provider */
                if (!header) {
                        printf("\nNotes:\n");
                        header = true;
                }
                printf("  %s: %s\n", n->subject, n->reason);
        }
}

int verb_info(cli_context *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
                {"json", no_argument, NULL, 'j'},
                {"providers", required_argument, NULL, 'p'},
                {"help", no_argument, NULL, 'h'},
                {0},
        };
        bool json = false;
        char **only = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "jp:h", opts, NULL)) >= 0) {
                switch (c) {
                case 'j':
                        json = true;
                        break;
                case 'p':
                        cli_strv_free(only);
                        only = cli_split_list(optarg);
                        break;
                case 'h':
                        printf("Usage: joule info [--json] [--providers LIST]\n\n"
                               "Lists every provider and domain, whether it works and why not, with the\n"
                               "current reading of each channel (energy counters as raw joules).\n");
                        cli_strv_free(only);
                        return 0;
                default:
                        cli_strv_free(only);
                        return 2;
                }
        }
        jl_provider_config pc;
        cli_provider_config(ctx, &pc);
        jl_sampler *s = NULL;
        int r = jl_sampler_open(&pc, (const char *const *)only, &s);
        cli_strv_free(only);
        if (r < 0) {
                log_error(r, "cannot open the providers: %s", strerror(-r));
                return 1;
        }
        /* Two samples 100 ms apart, so that rates (utilization) cover a real interval. */
        jl_sampler_sample(s);
        nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
        jl_sampler_sample(s);
        if (json)
                print_json(s);
        else
                print_human(s);
        jl_sampler_free(s);
        return 0;
}
