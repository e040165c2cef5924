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

/* The capacity that makes room for `extra` more items past n. */
static inline Py_ssize_t grown_capacity(Py_ssize_t n, Py_ssize_t capacity, Py_ssize_t extra) {
    Py_ssize_t grown = capacity ? capacity : 1024;
    while (grown < n + extra) grown *= 2;
    return grown;
}

static inline int int32_reserve(Int32List *list, Py_ssize_t extra) {
    if (list->n + extra <= list->capacity) return 0;
    Py_ssize_t capacity = grown_capacity(list->n, list->capacity, extra);
    int32_t *items = PyMem_Realloc(list->items, (size_t)capacity * sizeof(int32_t));
    if (!items) {
        PyErr_NoMemory();
        return -1;
    }
    list->items = items;
    list->capacity = capacity;
    return 0;
}

static inline int int32_push(Int32List *list, int32_t value) {
    if (list->n == list->capacity && int32_reserve(list, 1) < 0) return -1;
    list->items[list->n++] = value;
    return 0;
}

static inline int int64_reserve(Int64List *list, Py_ssize_t extra) {
    if (list->n + extra <= list->capacity) return 0;
    Py_ssize_t capacity = grown_capacity(list->n, list->capacity, extra);
    int64_t *items = PyMem_Realloc(list->items, (size_t)capacity * sizeof(int64_t));
    if (!items) {
        PyErr_NoMemory();
        return -1;
    }
    list->items = items;
    list->capacity = capacity;
    return 0;
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
