/* cli.h - the `joule` command's verbs and what they share (global options, config loading). */
#pragma once

#include <stdbool.h>

#include "config.h"
#include "provider.h"

typedef struct {
        const char *config_path; /* -c FILE */
        joule_config config;
} cli_context;

int verb_measure(cli_context *ctx, int argc, char **argv);
int verb_info(cli_context *ctx, int argc, char **argv);
int verb_db(cli_context *ctx, int argc, char **argv);

/* Map the config onto provider settings. */
void cli_provider_config(const cli_context *ctx, jl_provider_config *ret);
/* Split "a,b,c" into a NULL-terminated vector (for --providers); returns NULL on ENOMEM. */
char **cli_split_list(const char *s);
void cli_strv_free(char **v);
