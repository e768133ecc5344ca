/* authpool.c - joule-dbd's MUNGE checks off the event loop: a few worker threads take HELLO credentials from
 * a bounded queue, decode them with munged (which may take up to MUNGE's 10 s timeout when munged is slow or
 * stopped), check the user and the node name (dbd_auth_munge), and hand the answers back through a list and
 * an eventfd that the loop polls. A mass reconnect of nodes thus never stalls the connections already
 * served. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "dbd.h"
#include "macro.h"

typedef struct job {
        struct job *next;
        uint64_t conn_id;
        char node[JL_MSG_NAME_MAX];
        size_t cred_len;
        uint8_t cred[]; /* cred_len bytes */
} job;

typedef struct answer {
        struct answer *next;
        dbd_auth_result res;
} answer;

struct dbd_auth_pool {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        job *head, *tail; /* waiting, oldest first */
        size_t waiting, max_waiting;
        answer *done_head, *done_tail;
        bool stop;
        int fd; /* eventfd: answers are ready */
        char *socket;
        uid_t *uids;
        size_t nuids;
        pthread_t *threads;
        unsigned nthreads;
};

static void *worker(void *arg)
{
        dbd_auth_pool *p = arg;
        pthread_mutex_lock(&p->lock);
        for (;;) {
                while (!p->stop && !p->head)
                        pthread_cond_wait(&p->cond, &p->lock);
                if (p->stop)
                        break;
                job *j = p->head;
                p->head = j->next;
                if (!p->head)
                        p->tail = NULL;
                p->waiting--;
                /* the allowed users as they are now (a reload may replace them meanwhile) */
                uid_t *uids = p->nuids ? malloc(p->nuids * sizeof(uid_t)) : NULL;
                size_t nuids = uids ? p->nuids : 0;
                if (uids)
                        memcpy(uids, p->uids, nuids * sizeof(uid_t));
                pthread_mutex_unlock(&p->lock);

                answer *a = calloc(1, sizeof(*a));
                if (a) {
                        dbd_munge_auth auth = {.socket = p->socket, .uids = uids, .nuids = nuids};
                        a->res.conn_id = j->conn_id;
                        a->res.r = dbd_auth_munge(&auth, j->cred, j->cred_len, j->node, a->res.why,
                                                  sizeof(a->res.why));
                }
                free(uids);
                free(j);

                pthread_mutex_lock(&p->lock);
                if (a) {
                        if (p->done_tail)
                                p->done_tail->next = a;
                        else
                                p->done_head = a;
                        p->done_tail = a;
                        uint64_t one = 1;
                        ssize_t k = write(p->fd, &one, sizeof(one));
                        (void)k;
                }
                /* out of memory: no answer; the connection's HELLO timeout ends it */
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

int dbd_auth_pool_start(const char *munge_socket, unsigned threads, size_t max_waiting, dbd_auth_pool **ret)
{
        dbd_auth_pool *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->max_waiting = max_waiting;
        p->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        p->threads = calloc(threads, sizeof(pthread_t));
        p->socket = munge_socket ? strdup(munge_socket) : NULL;
        if (p->fd < 0 || !p->threads || (munge_socket && !p->socket)) {
                int r = p->fd < 0 ? negative_errno() : -ENOMEM;
                if (p->fd >= 0)
                        close(p->fd);
                free(p->threads);
                free(p->socket);
                free(p);
                return r;
        }
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        for (; p->nthreads < threads; p->nthreads++) {
                int r = -pthread_create(&p->threads[p->nthreads], NULL, worker, p);
                if (r < 0) {
                        dbd_auth_pool_stop(p);
                        return r;
                }
        }
        *ret = p;
        return 0;
}

int dbd_auth_pool_set_uids(dbd_auth_pool *p, const uid_t *uids, size_t n)
{
        uid_t *copy = n ? malloc(n * sizeof(uid_t)) : NULL;
        if (n && !copy)
                return -ENOMEM;
        if (n)
                memcpy(copy, uids, n * sizeof(uid_t));
        pthread_mutex_lock(&p->lock);
        free(p->uids);
        p->uids = copy;
        p->nuids = n;
        pthread_mutex_unlock(&p->lock);
        return 0;
}

int dbd_auth_pool_fd(const dbd_auth_pool *p)
{
        return p->fd;
}

int dbd_auth_pool_submit(dbd_auth_pool *p, uint64_t conn_id, const uint8_t *cred, size_t cred_len,
                         const char *node)
{
        job *j = malloc(sizeof(job) + cred_len);
        if (!j)
                return -ENOMEM;
        *j = (job){.conn_id = conn_id, .cred_len = cred_len};
        snprintf(j->node, sizeof(j->node), "%s", node);
        if (cred_len)
                memcpy(j->cred, cred, cred_len);
        pthread_mutex_lock(&p->lock);
        if (p->waiting >= p->max_waiting) {
                pthread_mutex_unlock(&p->lock);
                free(j);
                return -EAGAIN;
        }
        if (p->tail)
                p->tail->next = j;
        else
                p->head = j;
        p->tail = j;
        p->waiting++;
        pthread_cond_signal(&p->cond);
        pthread_mutex_unlock(&p->lock);
        return 0;
}

size_t dbd_auth_pool_take(dbd_auth_pool *p, dbd_auth_result *out, size_t max)
{
        size_t n = 0;
        pthread_mutex_lock(&p->lock);
        uint64_t v;
        ssize_t k = read(p->fd, &v, sizeof(v));
        while (p->done_head && n < max) {
                answer *a = p->done_head;
                p->done_head = a->next;
                if (!p->done_head)
                        p->done_tail = NULL;
                out[n++] = a->res;
                free(a);
        }
        if (p->done_head) { /* more than max: wake the loop again */
                v = 1;
                k = write(p->fd, &v, sizeof(v));
        }
        (void)k;
        pthread_mutex_unlock(&p->lock);
        return n;
}

void dbd_auth_pool_stop(dbd_auth_pool *p)
{
        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        for (unsigned i = 0; i < p->nthreads; i++)
                pthread_join(p->threads[i], NULL);
        while (p->head) {
                job *j = p->head;
                p->head = j->next;
                free(j);
        }
        while (p->done_head) {
                answer *a = p->done_head;
                p->done_head = a->next;
                free(a);
        }
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        close(p->fd);
        free(p->threads);
        free(p->socket);
        free(p->uids);
        free(p);
}
