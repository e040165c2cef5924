/* Growable arrays of int32 and int64 for the C extensions that collect results of unknown size.
 *
 * Each reserve/push returns 0, or -1 with MemoryError set (a caller may set it again: harmless). Capacities double
 * from 1024, so n pushes cost O(n) copies. Plain C and the CPython allocator only.
 */
#ifndef CONSTRAINED_GROWABLE_ARRAYS_H
#define CONSTRAINED_GROWABLE_ARRAYS_H

#include <Python.h>
#include <stdint.h>

typedef struct {
    int32_t *items;
    Py_ssize_t n, capacity;
} Int32List;

typedef struct {
    int64_t *items;
    Py_ssize_t n, capacity;
} Int64List;

/* The capacity that makes room for `extra` more items past n (also for arrays kept side by side elsewhere). */
static inline Py_ssize_t grown_capacity(Py_ssize_t n, Py_ssize_t capacity, Py_ssize_t extra) {
    Py_ssize_t grown = capacity ? capacity : 1024;
    while (grown < n + extra) grown *= 2;
    return grown;
}

/* Room for `extra` more items of item_size bytes past n in *items (capacity in *capacity): 0, or -1 with
 * MemoryError set and the array unchanged. Both list types reserve through it. */
static inline int reserve_items(void **items, Py_ssize_t *capacity, Py_ssize_t n, Py_ssize_t extra, size_t item_size) {
    if (n + extra <= *capacity) return 0;
    Py_ssize_t grown = grown_capacity(n, *capacity, extra);
    void *moved = PyMem_Realloc(*items, (size_t)grown * item_size);
    if (!moved) {
        PyErr_NoMemory();
        return -1;
    }
    *items = moved;
    *capacity = grown;
    return 0;
}

static inline int int32_reserve(Int32List *list, Py_ssize_t extra) {
    void *items = list->items;
    int failed = reserve_items(&items, &list->capacity, list->n, extra, sizeof(int32_t));
    list->items = items;
    return failed;
}

static inline int int32_push(Int32List *list, int32_t value) {
    if (list->n == list->capacity && int32_reserve(list, 1) < 0) return -1;
    list->items[list->n++] = value;
    return 0;
}

static inline int int64_reserve(Int64List *list, Py_ssize_t extra) {
    void *items = list->items;
    int failed = reserve_items(&items, &list->capacity, list->n, extra, sizeof(int64_t));
    list->items = items;
    return failed;
}

static inline int int64_push(Int64List *list, int64_t value) {
    if (list->n == list->capacity && int64_reserve(list, 1) < 0) return -1;
    list->items[list->n++] = value;
    return 0;
}

/* qsort's order of int64 values, ascending. */
static inline int compare_int64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

#endif
