/* queue.c - joule-dbd's cache between the event loop and the writer thread: items in chunks of at most
 * dbd.batch_records, oldest first; the writer takes a chunk when it is full, when its first item is
 * dbd.batch_ms old, or at shutdown, and hands it back written (the loop then ACKs and frees it). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "dbd.h"
#include "macro.h"
#include "timeutil.h"

int dbd_queue_init(dbd_queue *q, size_t batch_records, uint64_t batch_ms)
{
        *q = (dbd_queue){.batch_records = batch_records, .batch_ms = batch_ms};
        q->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (q->done_fd < 0)
                return negative_errno();
        pthread_mutex_init(&q->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&q->cond, &ca);
        pthread_condattr_destroy(&ca);
        return 0;
}

void dbd_chunk_free(dbd_chunk *c)
{
        while (c) {
                dbd_chunk *next = c->next;
                for (size_t i = 0; i < c->n; i++)
                        dbd_item_clear(&c->items[i]);
                free(c->items);
                free(c);
                c = next;
        }
}

void dbd_queue_destroy(dbd_queue *q)
{
        dbd_chunk_free(q->head);
        dbd_chunk_free(q->done);
        if (q->done_fd >= 0)
                close(q->done_fd);
        pthread_cond_destroy(&q->cond);
        pthread_mutex_destroy(&q->lock);
}

int dbd_queue_push(dbd_queue *q, dbd_item *items, size_t n, size_t *ret_bytes)
{
        int r = 0;
        bool full = false;
        size_t added = 0; /* chunks, their arrays' capacity, what the items hold besides */
        pthread_mutex_lock(&q->lock);
        for (size_t i = 0; i < n; i++) {
                dbd_chunk *c = q->tail;
                if (!c || c->n >= q->batch_records) {
                        c = calloc(1, sizeof(*c));
                        size_t cap = MIN(q->batch_records, (size_t)4096);
                        if (c)
                                c->items = malloc(cap * sizeof(dbd_item));
                        if (!c || !c->items) {
                                free(c);
                                r = -ENOMEM;
                                break;
                        }
                        c->cap = cap;
                        c->bytes = sizeof(*c) + cap * sizeof(dbd_item);
                        added += c->bytes;
                        c->first_ns = mono_ns();
                        if (q->tail)
                                q->tail->next = c;
                        else
                                q->head = c;
                        q->tail = c;
                }
                if (c->n == c->cap) {
                        size_t cap = MIN(c->cap * 2, q->batch_records);
                        dbd_item *it = realloc(c->items, cap * sizeof(dbd_item));
                        if (!it) {
                                r = -ENOMEM;
                                break;
                        }
                        c->items = it;
                        c->bytes += (cap - c->cap) * sizeof(dbd_item);
                        added += (cap - c->cap) * sizeof(dbd_item);
                        c->cap = cap;
                }
                size_t extra = dbd_item_bytes(&items[i]) - sizeof(dbd_item);
                c->bytes += extra;
                added += extra;
                c->items[c->n++] = items[i];
                items[i].kind = DBD_ITEM_HELLO; /* moved: nothing left to free */
                if (c->n >= q->batch_records)
                        full = true;
        }
        if (full)
                pthread_cond_signal(&q->cond);
        pthread_mutex_unlock(&q->lock);
        *ret_bytes = added; /* also on failure: what was pushed before stays */
        return r;
}

dbd_chunk *dbd_queue_take_done(dbd_queue *q)
{
        uint64_t v;
        ssize_t k = read(q->done_fd, &v, sizeof(v));
        (void)k;
        pthread_mutex_lock(&q->lock);
        dbd_chunk *c = q->done;
        q->done = NULL;
        pthread_mutex_unlock(&q->lock);
        /* the list was built newest first: reverse it */
        dbd_chunk *prev = NULL;
        while (c) {
                dbd_chunk *next = c->next;
                c->next = prev;
                prev = c;
                c = next;
        }
        return prev;
}
