/* test-api.c - libjoule-api against a stand-in jouled on a unix socket in a temporary directory (a thread of
 * this test speaking the real protocol: REQUEST/REPLY frames, the page's fd with SCM_RIGHTS): connect,
 * energy from the shared page, consistency of concurrent lock-free reads under a busy writer, wrap-safe
 * diffs, the setters' requests on the wire, jouled's refusals and their words, garbage and stale pages,
 * no jouled at all, and that only joule_* is exported. The system test (tests/system/test-api.sh) runs the
 * same API against the real jouled on an emulated node. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "joule.h"
#include "msg.h"
#include "shm.h"
#include "tap.h"
#include "wire.h"

/* What the stand-in serves and what it saw. */
static struct {
        int listen_fd;
        int page_fd;
        jl_shm_page *page;
        size_t page_len;
        int refuse_err; /* reply this errno to setters */
        char refuse_msg[128];
        bool no_fd; /* GET_SHM replies without a descriptor */
        jl_msg_request last;
        _Atomic int requests;
        _Atomic bool stop;
} srv;

static uint64_t mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int read_all(int fd, void *buf, size_t n)
{
        uint8_t *p = buf;
        while (n) {
                ssize_t k = read(fd, p, n);
                if (k <= 0)
                        return -1;
                p += k;
                n -= (size_t)k;
        }
        return 0;
}

static void serve_one(int c)
{
        uint8_t hdr[JL_WIRE_HEADER_SIZE];
        jl_frame_header h;
        if (read_all(c, hdr, sizeof(hdr)) < 0 || jl_frame_header_decode(hdr, 65536, &h) < 0)
                return;
        uint8_t *payload = malloc(h.length + 1);
        jl_msg_request req;
        char why[128] = "";
        if (!payload || read_all(c, payload, h.length) < 0 ||
            jl_msg_request_decode(payload, h.length, &req, why, sizeof(why)) < 0) {
                free(payload);
                return;
        }
        free(payload);
        srv.last = req;
        srv.requests++;
        jl_msg_reply rep = {0};
        int pass_fd = -1;
        if (req.op == JL_OP_GET_SHM) {
                pass_fd = srv.no_fd ? -1 : srv.page_fd;
        } else if (srv.refuse_err) {
                rep.err = srv.refuse_err;
                snprintf(rep.message, sizeof(rep.message), "%s", srv.refuse_msg);
        }
        jl_wbuf w;
        if (jl_msg_reply_encode(&rep, h.id, &w) == 0) {
                union {
                        struct cmsghdr hh;
                        char b[CMSG_SPACE(sizeof(int))];
                } cm = {0};
                struct iovec iov = {.iov_base = w.data, .iov_len = w.len};
                struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
                if (pass_fd >= 0) {
                        m.msg_control = cm.b;
                        m.msg_controllen = sizeof(cm.b);
                        struct cmsghdr *ch = CMSG_FIRSTHDR(&m);
                        ch->cmsg_level = SOL_SOCKET;
                        ch->cmsg_type = SCM_RIGHTS;
                        ch->cmsg_len = CMSG_LEN(sizeof(int));
                        memcpy(CMSG_DATA(ch), &pass_fd, sizeof(int));
                }
                (void)!sendmsg(c, &m, MSG_NOSIGNAL);
        }
        jl_wbuf_free(&w);
}

static void *server(void *arg)
{
        (void)arg;
        while (!srv.stop) {
                int c = accept(srv.listen_fd, NULL, NULL);
                if (c < 0)
                        continue;
                serve_one(c);
                close(c);
        }
        return NULL;
}

/* A fresh page (memfd) of len bytes, laid out as jouled does. */
static void make_page(size_t len, uint32_t magic, uint32_t version, uint32_t size_field)
{
        if (srv.page) {
                munmap(srv.page, srv.page_len);
                close(srv.page_fd);
        }
        srv.page_fd = memfd_create("jl-test-page", MFD_CLOEXEC);
        if (srv.page_fd < 0 || ftruncate(srv.page_fd, (off_t)len) < 0)
                abort();
        size_t maplen = len < sizeof(jl_shm_page) ? sizeof(jl_shm_page) : len;
        srv.page = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, srv.page_fd, 0);
        srv.page_len = maplen;
        if (srv.page == MAP_FAILED)
                abort();
        if (len < sizeof(jl_shm_page))
                return; /* a short file: only its first bytes may be touched */
        srv.page->magic = magic;
        srv.page->version = version;
        srv.page->size = size_field;
        srv.page->ndomains = 1;
        srv.page->node_energy_uj = 123456789;
        srv.page->time_ms = mono_ms();
        snprintf(srv.page->node, sizeof(srv.page->node), "test");
}

static void good_page(void)
{
        make_page(sizeof(jl_shm_page), JL_SHM_MAGIC, JL_SHM_VERSION, sizeof(jl_shm_page));
}

/* Concurrent readers while the writer updates: every pair read must be one the writer published. */
static _Atomic bool writer_stop;
static _Atomic long inconsistent, reads_done, busy;

static void *writer(void *arg)
{
        (void)arg;
        uint64_t base = mono_ms();
        for (uint64_t i = 1; !writer_stop && i < 50000000; i++) {
                jl_shm_write_begin(srv.page);
                srv.page->time_ms = base + i / 1000;
                srv.page->node_energy_uj = (base + i / 1000) * 7000; /* energy_mj = 7 × time_ms */
                jl_shm_write_end(srv.page);
        }
        return NULL;
}

static void *reader(void *arg)
{
        (void)arg;
        uint64_t prev = 0;
        for (int i = 0; i < 200000; i++) {
                uint64_t e, t;
                int r = joule_energy(&e, &t);
                if (r == -EAGAIN) {
                        busy++;
                        continue;
                }
                if (r < 0 || e != 7 * t || e < prev) {
                        if (inconsistent++ < 3)
                                printf("# r=%d e=%llu t=%llu prev=%llu\n", r, (unsigned long long)e,
                                       (unsigned long long)t, (unsigned long long)prev);
                }
                prev = e;
                reads_done++;
        }
        return NULL;
}

/* Connect/disconnect in a loop while readers read: nothing may crash. */
static void *reconnector(void *arg)
{
        (void)arg;
        for (int i = 0; i < 200; i++) {
                joule_disconnect();
                (void)joule_connect();
        }
        return NULL;
}

static void *loose_reader(void *arg)
{
        (void)arg;
        for (int i = 0; i < 200000; i++) {
                uint64_t e, t;
                int r = joule_energy(&e, &t);
                if (r != 0 && r != -ENOTCONN)
                        inconsistent++;
        }
        return NULL;
}

int main(void)
{
        char dir[] = "/tmp/test-api-XXXXXX", path[64];
        uint64_t e, t, d1, d2;
        if (!mkdtemp(dir))
                return 1;

        /* --- no jouled --- */
        snprintf(path, sizeof(path), "%s/jouled.sock", dir);
        setenv("JOULE_SOCKET", path, 1);
        is_int(joule_energy(&e, &t), -ENOTCONN, "joule_energy before joule_connect: -ENOTCONN");
        ok(strstr(joule_strerror(-ENOTCONN), "joule_connect") != NULL, "ENOTCONN words: %s",
           joule_strerror(-ENOTCONN));
        is_int(joule_connect(), -ENOENT, "no socket: -ENOENT");
        const char *w = joule_strerror(-ENOENT);
        ok(strstr(w, "jouled is not running") && strstr(w, path), "ENOENT words name the socket: %s", w);

        /* a socket file nobody listens on */
        int dead = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        ok(bind(dead, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind a socket without listening");
        is_int(joule_connect(), -ECONNREFUSED, "nobody listening: -ECONNREFUSED");
        w = joule_strerror(-ECONNREFUSED);
        ok(strstr(w, "refuses connections") && strstr(w, path), "ECONNREFUSED words: %s", w);
        close(dead);
        unlink(path);

        char longp[200];
        memset(longp, 'x', sizeof(longp) - 1);
        longp[0] = '/';
        longp[sizeof(longp) - 1] = '\0';
        setenv("JOULE_SOCKET", longp, 1);
        is_int(joule_connect(), -ENAMETOOLONG, "a socket path longer than sun_path: -ENAMETOOLONG");
        setenv("JOULE_SOCKET", path, 1);

        /* --- the stand-in jouled --- */
        srv.listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (bind(srv.listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(srv.listen_fd, 16) < 0)
                return 1;
        struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
        setsockopt(srv.listen_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)); /* accept wakes to see stop */
        good_page();
        pthread_t st;
        pthread_create(&st, NULL, server, NULL);

        is_int(joule_connect(), 0, "connect to jouled");
        is_int(srv.last.op, JL_OP_GET_SHM, "connect asked for the shared page");
        is_int(joule_connect(), 0, "a second connect while connected returns 0");
        is_int(joule_energy(&e, &t), 0, "joule_energy");
        is_int(e, 123456, "energy in mJ (µJ / 1000)");
        ok(t == srv.page->time_ms, "time in ms is the sample's");
        is_int(joule_energy(NULL, NULL), 0, "NULL outputs are allowed");
        int before = srv.requests;
        for (int i = 0; i < 1000; i++)
                joule_energy(&e, &t);
        is_int(srv.requests, before, "energy reads make no request to jouled");

        jl_shm_write_begin(srv.page);
        srv.page->node_energy_uj += 5000000;
        srv.page->time_ms += 1000;
        jl_shm_write_end(srv.page);
        uint64_t e2, t2;
        joule_energy(&e2, &t2);
        joule_energy_diff(e, e2, &d1, t, t2, &d2);
        ok(d1 == 5000 && d2 == 1000, "the page's update is seen: +5000 mJ in 1000 ms");

        /* wrap-safe differences */
        joule_energy_diff(UINT64_MAX - 5, 10, &d1, UINT64_MAX, 3, &d2);
        ok(d1 == 16 && d2 == 4, "energy_diff across a uint64 wrap (16 mJ, 4 ms)");
        joule_energy_diff(100, 250, NULL, 7, 9, &d2);
        is_int(d2, 2, "energy_diff with a NULL output");

        /* --- concurrent lock-free readers under a busy writer --- */
        pthread_t wt, rt[3];
        jl_shm_write_begin(srv.page); /* the readers' invariant holds before the writer thread runs */
        srv.page->time_ms = mono_ms();
        srv.page->node_energy_uj = srv.page->time_ms * 7000;
        jl_shm_write_end(srv.page);
        pthread_create(&wt, NULL, writer, NULL);
        for (int i = 0; i < 3; i++)
                pthread_create(&rt[i], NULL, reader, NULL);
        for (int i = 0; i < 3; i++)
                pthread_join(rt[i], NULL);
        writer_stop = true;
        pthread_join(wt, NULL);
        ok(inconsistent == 0 && busy < reads_done / 2,
           "3 readers x 200000 reads under a writer that never pauses: every pair consistent and monotonic "
           "(%ld bad, %ld -EAGAIN of %ld)", (long)inconsistent, (long)busy, (long)reads_done);
        srv.page->time_ms = mono_ms(); /* the writer ran ahead of the clock */

        /* connect/disconnect racing with readers */
        inconsistent = 0;
        pthread_t rc, lr[2];
        pthread_create(&rc, NULL, reconnector, NULL);
        for (int i = 0; i < 2; i++)
                pthread_create(&lr[i], NULL, loose_reader, NULL);
        pthread_join(rc, NULL);
        for (int i = 0; i < 2; i++)
                pthread_join(lr[i], NULL);
        ok(inconsistent == 0, "readers racing 200 disconnect/connect cycles: only 0 or -ENOTCONN");
        is_int(joule_connect(), 0, "connected again");

        /* --- setters: what goes on the wire --- */
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(1, &set);
        CPU_SET(9, &set);
        CPU_SET(1000, &set);
        is_int(joule_set_cpufreq(&set, 2000000), 0, "set_cpufreq");
        ok(srv.last.op == JL_OP_SET_CPUFREQ && srv.last.khz == 2000000, "SET_CPUFREQ with 2000000 kHz");
        ok(srv.last.cpumask_len == 126 && srv.last.cpumask[0] == 0x02 && srv.last.cpumask[1] == 0x02 &&
                   srv.last.cpumask[125] == 0x01,
           "the mask: CPU i is bit i%%8 of byte i/8 (CPUs 1, 9, 1000)");
        CPU_ZERO(&set);
        is_int(joule_set_cpufreq(&set, 2000000), -EINVAL, "an empty mask: -EINVAL");
        is_int(joule_set_cpufreq(NULL, 2000000), -EINVAL, "a NULL mask: -EINVAL");
        CPU_SET(0, &set);
        is_int(joule_set_cpufreq(&set, 200000000), -EINVAL, "200 GHz: -EINVAL");
        is_int(joule_set_gpufreq(2, 1410000), 0, "set_gpufreq");
        ok(srv.last.op == JL_OP_SET_GPUFREQ && srv.last.gpu == 2 && srv.last.khz == 1410000,
           "SET_GPUFREQ gpu 2 at 1410000 kHz");
        is_int(joule_set_gpufreq(-1, 1), -EINVAL, "a negative GPU: -EINVAL");
        unsigned long list[3] = {1000000, 1100000, 1200000};
        is_int(joule_set_gpufreq_list(3, list), 0, "set_gpufreq_list");
        ok(srv.last.op == JL_OP_SET_GPUFREQ_LIST && srv.last.ngpus == 3 && srv.last.gpu_khz[2] == 1200000,
           "SET_GPUFREQ_LIST with 3 frequencies");
        is_int(joule_set_gpufreq_list(0, list), -EINVAL, "an empty list: -EINVAL");
        is_int(joule_set_gpufreq_list(17, list), -EINVAL, "17 GPUs: -EINVAL");

        srv.refuse_err = -EPERM;
        snprintf(srv.refuse_msg, sizeof(srv.refuse_msg), "uid 1000 does not own job 42 on CPU 0");
        is_int(joule_set_cpufreq(&set, 1000000), -EPERM, "jouled refuses: -EPERM");
        w = joule_strerror(-EPERM);
        ok(strstr(w, "only root") && strstr(w, "does not own job 42"), "EPERM words repeat jouled's: %s", w);
        srv.refuse_err = -ENODEV;
        snprintf(srv.refuse_msg, sizeof(srv.refuse_msg), "no GPU 7");
        is_int(joule_set_gpufreq(7, 1000000), -ENODEV, "no such GPU: -ENODEV");
        ok(strstr(joule_strerror(-ENODEV), "no GPU 7") != NULL, "ENODEV words: %s", joule_strerror(-ENODEV));
        srv.refuse_err = 0;
        ok(strstr(joule_strerror(-EHOSTDOWN), "joule: ") != NULL, "an errno without own words: %s",
           joule_strerror(-EHOSTDOWN));

        /* stops updating after connect: stale */
        srv.page->time_ms = mono_ms() - 60000;
        is_int(joule_energy(&e, &t), -ESTALE, "a page not updated for 60 s: -ESTALE");
        ok(strstr(joule_strerror(-ESTALE), "stale") != NULL, "ESTALE words: %s", joule_strerror(-ESTALE));

        joule_disconnect();
        is_int(joule_energy(&e, &t), -ENOTCONN, "after disconnect: -ENOTCONN");
        is_int(joule_set_gpufreq(0, 1), -ENOTCONN, "setters after disconnect: -ENOTCONN");
        joule_disconnect(); /* twice is fine */

        /* --- pages that are refused --- */
        srv.page->time_ms = mono_ms() - 60000;
        is_int(joule_connect(), -ESTALE, "a stale page at connect: -ESTALE");
        make_page(sizeof(jl_shm_page), 0xdeadbeef, JL_SHM_VERSION, sizeof(jl_shm_page));
        is_int(joule_connect(), -EPROTO, "a page with a wrong magic: -EPROTO");
        ok(strstr(joule_strerror(-EPROTO), "magic") != NULL, "EPROTO words: %s", joule_strerror(-EPROTO));
        make_page(sizeof(jl_shm_page), JL_SHM_MAGIC, JL_SHM_VERSION + 1, sizeof(jl_shm_page));
        is_int(joule_connect(), -EPROTO, "a page of another version: -EPROTO");
        make_page(sizeof(jl_shm_page), JL_SHM_MAGIC, JL_SHM_VERSION, sizeof(jl_shm_page) - 8);
        is_int(joule_connect(), -EPROTO, "a page of another size: -EPROTO");
        make_page(64, JL_SHM_MAGIC, JL_SHM_VERSION, sizeof(jl_shm_page));
        is_int(joule_connect(), -EPROTO, "a file shorter than the page: -EPROTO");
        good_page();
        srv.page->ndomains = 1000;
        is_int(joule_connect(), -EPROTO, "a page claiming 1000 domains: -EPROTO");
        good_page();
        srv.no_fd = true;
        is_int(joule_connect(), -EPROTO, "a GET_SHM reply without a descriptor: -EPROTO");
        srv.no_fd = false;
        is_int(joule_connect(), 0, "a good page again: connected");
        joule_disconnect();

        /* a configuration that names the socket (no JOULE_SOCKET) */
        char cfg[160];
        snprintf(cfg, sizeof(cfg), "%s/joule.yml", dir);
        FILE *f = fopen(cfg, "w");
        fprintf(f, "node:\n  socket: %s\n", path);
        fclose(f);
        unsetenv("JOULE_SOCKET");
        setenv("JOULE_CONFIG", cfg, 1);
        is_int(joule_connect(), 0, "the socket from node.socket of $JOULE_CONFIG");
        joule_disconnect();
        f = fopen(cfg, "w");
        fprintf(f, "node:\n  sokcet: %s\n", path);
        fclose(f);
        is_int(joule_connect(), -EINVAL, "a configuration with an unknown key: -EINVAL");
        ok(strstr(joule_strerror(-EINVAL), "sokcet") != NULL, "its words name the key: %s",
           joule_strerror(-EINVAL));

        /* --- only joule_* is exported --- */
        ok(dlsym(RTLD_DEFAULT, "joule_energy") != NULL, "joule_energy is exported");
        ok(dlsym(RTLD_DEFAULT, "joule_config_load") == NULL && dlsym(RTLD_DEFAULT, "jl_client_connect") == NULL &&
                   dlsym(RTLD_DEFAULT, "parse_u64") == NULL,
           "internal symbols (config, client, basic) are not");

        srv.stop = true;
        pthread_join(st, NULL);
        close(srv.listen_fd);
        unlink(path);
        unlink(cfg);
        rmdir(dir);
        return tap_done();
}
