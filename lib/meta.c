/*
 * meta.c: fixed-size object pools for metadata (see meta.h). Locks: the
 * pool's lock.
 */
#include "meta.h"

#include <string.h>

#include "os.h"
#include "stats.h"

void meta_pool_init(struct meta_pool *m, size_t obj_size, uint8_t lane) {
    m->obj_size = hak_align_up(obj_size, 64);
    m->lane = lane;
    pthread_mutex_init(&m->lock, NULL);
}

void *meta_alloc(struct meta_pool *m) {
    void *obj;
    pthread_mutex_lock(&m->lock);
    obj = m->free;
    if (obj) {
        m->free = *(void **)obj;
    } else {
        if (m->used == m->cap) {
            /* mapped without the lock: os_map_chunks may release the
             * lanes' caches, and must find no hakmem lock held */
            pthread_mutex_unlock(&m->lock);
            void *chunk;
            if (os_map_chunks(HAK_CHUNK, HAK_CHUNK, 0, &chunk) != 0) return NULL;
            pthread_mutex_lock(&m->lock);
            if (m->used == m->cap) {
                stats_note_map(m->lane, HAK_CHUNK);
                m->chunk = chunk;
                m->used = 0;
                m->cap = HAK_CHUNK / m->obj_size;
            } else { /* another thread mapped one meanwhile */
                os_unmap(chunk, HAK_CHUNK);
            }
        }
        obj = m->chunk + m->used++ * m->obj_size;
    }
    pthread_mutex_unlock(&m->lock);
    memset(obj, 0, m->obj_size);
    return obj;
}

void meta_free(struct meta_pool *m, void *obj) {
    pthread_mutex_lock(&m->lock);
    *(void **)obj = m->free;
    m->free = obj;
    pthread_mutex_unlock(&m->lock);
}

void meta_fork_prepare(struct meta_pool *m) { pthread_mutex_lock(&m->lock); }
void meta_fork_parent(struct meta_pool *m) { pthread_mutex_unlock(&m->lock); }
void meta_fork_child(struct meta_pool *m) { pthread_mutex_unlock(&m->lock); }
