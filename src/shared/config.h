/* config.h - joule's one YAML configuration file (/etc/joule/joule.yml, -c FILE or $JOULE_CONFIG): every
 * key with its default, typed, and errors that name the file, line and key. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JOULE_CONFIG_DEFAULT_PATH "/etc/joule/joule.yml"

typedef struct {
        char *path; /* the file read, or NULL when only defaults apply */
        struct {
                char *url; /* SQLite path or postgresql://... */
        } database;
        struct {
                char *name;       /* default: the host name */
                double period_s;  /* power monitoring period */
                char *dbd;        /* host:port of joule-dbd; NULL: write to the store directly */
                char *socket;     /* local API socket */
                char *control_listen;
                char *metrics_listen;
                char **admins;    /* NULL-terminated */
                char *partition;
                char *island;
                char *spool;      /* spool file for records while the dbd is unreachable */
                double sample_ms; /* jouled's sampling interval (live counters, shm page) */
                char *state_dir;  /* jouled's persistent state: sequence number, open job steps */
                char *munge_socket; /* munged's socket for the control port; NULL: MUNGE's default */
                uint64_t user_steps_max; /* open job steps a user may declare for themselves (accounting) */
        } node;
        struct {
                char *listen;
                uint64_t batch_records;
                uint64_t batch_ms;
                double aggregation_period_s;
                uint64_t max_memory_mb;
                char **node_users; /* users besides root whose MUNGE credential may speak for a node */
        } dbd;
        struct {
                double sampling_rate_ms; /* measure/runner sampling interval */
                char **hwmon_sensors;    /* "chip/feature" patterns; NULL: all */
        } measurement;
        struct {
                double idle_w;
                double max_w;
        } estimate;
        struct {
                double sleep_time_no_job;
                double sleep_time_after_job;
                char *jobs_processing; /* fifo | random */
                double time_between_control_workload_validations;
                char *control_workload;
                char *cleanup_script;
                uint64_t temperature_max_tries;
                char *system_checks; /* warn | fail: what a breach of machine.profile does to a run */
                double baseline_s;   /* the idle [BASELINE] phase of every run (joule-runner, jobs run) */
                double temperature_check_interval_s; /* one cooldown wait / warm-up try */
                uint64_t control_comparison_window;  /* earlier control runs compared with */
                char *control_threshold_type;        /* relative | absolute standard deviation */
                double control_energy_threshold;     /* per metric: fraction (relative) or J, W, s */
                double control_power_threshold;
                double control_duration_threshold;
                double control_error_reminder_s; /* mail the admin again while the error stays; 0: never */
                char *spool_dir; /* results not yet stored; NULL: docs/cluster.md, "The spool" */
        } runner;
        struct {
                int64_t id;
                char *description;
                double base_temperature_value;
                char *base_temperature_chip;
                char *base_temperature_feature;
                char *profile; /* benchmarking | profiling */
        } machine;
        struct {
                char *server;   /* smtp://host:port or smtps://host:port */
                char *user;
                char *password;
                char *sender;
                bool starttls;
                double retry_base_s; /* backoff after a failed send; doubled per further failure */
                double retry_max_s;  /* the backoff's ceiling */
                double timeout_s;    /* one SMTP conversation */
                char *ca_file;       /* CA bundle for the server's certificate; NULL: the system's */
        } smtp;
        struct {
                char *notification_email;
        } admin;
        struct {
                char *default_policy;         /* policies.default: monitoring | min_energy | min_time */
                double min_energy_th;         /* min_energy's time penalty bound (0.05: 5 %) */
                double min_time_th;           /* min_time's minimum efficiency (PerfGain >= th x FreqGain) */
                uint64_t default_cpufreq_khz; /* where monitoring and min_energy start; 0: the nominal max */
                uint64_t min_time_start_khz;  /* where min_time starts; 0: 3 steps below the nominal max */
                char **user_policies;         /* policies every user may choose; NULL: all three */
                char **authorized_users;      /* may also set frequencies, any threshold, learning runs */
        } policies;
        struct {
                char *coefficients_dir; /* the learning run's NODE.coeffs files (joule learn, the runtime) */
        } runtime;
} joule_config;

/* The policies the runtime knows, in a '|'-separated list (the choices of policies.default). */
#define JOULE_POLICIES "monitoring|min_energy|min_time"

/* Fill with every default. */
int joule_config_init(joule_config *c);
/* Read `path` (NULL: $JOULE_CONFIG, else /etc/joule/joule.yml when it exists, else defaults only) over the
 * defaults. On error returns a negative errno and writes "FILE:LINE: key: what is wrong" to err. */
int joule_config_load(joule_config *c, const char *path, char *err, size_t errlen);
/* Parse YAML text (for tests and fuzzing); `name` is used in messages. */
int joule_config_load_string(joule_config *c, const char *name, const char *text, size_t len, char *err,
                             size_t errlen);
void joule_config_free(joule_config *c);
