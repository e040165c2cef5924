/* The automaton build's passes over transition lists: outlines-core's byte transitions turned into a table,
 * the columns of a transition list hashed (to find equal columns: byte classes, merged token classes), the
 * equivalent states of a transition list found (Moore's refinement, the rounds of a minimization), the searches
 * a minimization makes (the states that can reach acceptance, the states reachable in breadth-first order:
 * through numpy, a dozen calls per level or per backward step, which on a JSON automaton of a hundred levels cost
 * more than the search), the distinct rows of an array, and the product of two tables over their reachable pairs.
 *
 * Why in C: an automaton's transition list holds millions of (state, symbol, next state) entries on a large
 * pattern. Through numpy, renumbering states, dropping the transitions we do not keep, hashing every column
 * and filling the table cost a dozen passes with temporaries of 8 bytes per entry (numpy widens int32
 * indices to 64 bits before it gathers). Here each is one pass, and nothing is allocated per entry.
 *
 * The first two passes over a transition list read the same triple of int32 arrays and keep the same
 * transitions: those whose state and next state `renumber` maps to one of ours (not -1) and whose token
 * `token_ok` allows (ids past its end are outlines-core's synthetic marker tokens, not ours).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_growable_arrays.h"
#include "_typed_buffers.h"

/* The arguments both passes share, checked. */
typedef struct {
    Py_buffer sources, tokens, targets, renumber, token_ok;
    Py_ssize_t n, n_ids, vocab_size;
} Transitions;

static void release(Transitions *t) {
    PyBuffer_Release(&t->sources);
    PyBuffer_Release(&t->tokens);
    PyBuffer_Release(&t->targets);
    PyBuffer_Release(&t->renumber);
    PyBuffer_Release(&t->token_ok);
}

/* Lengths checked (the converters checked the item types): three arrays of one length. -1 on error. */
static int check(Transitions *t) {
    if (t->sources.len != t->tokens.len || t->sources.len != t->targets.len) {
        PyErr_SetString(PyExc_ValueError, "sources, tokens and targets must be int32 arrays of one length");
        return -1;
    }
    t->n = t->sources.len / 4;
    t->n_ids = t->renumber.len / 4;
    t->vocab_size = t->token_ok.len;
    return 0;
}

/* The kept transition e as (our state, token, our next state); 0 when it is not kept, -1 (error set) when a
 * state lies outside the renumbering. */
static inline int kept(const Transitions *t, Py_ssize_t e, int32_t *state, int32_t *token, int32_t *target) {
    int32_t source = ((const int32_t *)t->sources.buf)[e], next = ((const int32_t *)t->targets.buf)[e];
    if (source < 0 || source >= t->n_ids || next < 0 || next >= t->n_ids) {
        PyErr_Format(PyExc_ValueError, "transition %zd: state outside the renumbering", e);
        return -1;
    }
    *token = ((const int32_t *)t->tokens.buf)[e];
    if (*token < 0 || *token >= t->vocab_size || !((const uint8_t *)t->token_ok.buf)[*token]) return 0;
    *state = ((const int32_t *)t->renumber.buf)[source];
    *target = ((const int32_t *)t->renumber.buf)[next];
    return *state >= 0 && *target >= 0;
}

/* column_signatures(sources, tokens, targets, renumber, token_ok, weights): per token two 64-bit sums, over its
 * kept transitions, of weights[state][j] * (next state + 1): equal columns of the transition table give equal
 * sums, and with random odd weights unequal ones practically never do. `weights` is uint64 [states, 2]; the
 * result, bytes of uint64 [vocabulary, 2]. */
static PyObject *column_signatures(PyObject *Py_UNUSED(module), PyObject *args) {
    Transitions t;
    Py_buffer weights;
    if (!PyArg_ParseTuple(args, "O&O&O&O&O&O&", int32_in, &t.sources, int32_in, &t.tokens, int32_in, &t.targets,
                          int32_in, &t.renumber, uint8_in, &t.token_ok, uint64_in, &weights))
        return NULL;
    PyObject *result = NULL;
    if (check(&t) < 0) goto done;
    Py_ssize_t n_states = weights.len / 16;
    const uint64_t *weight = weights.buf;
    if (!(result = PyBytes_FromStringAndSize(NULL, t.vocab_size * 16))) goto done;
    uint64_t *signature = (uint64_t *)PyBytes_AS_STRING(result);
    memset(signature, 0, (size_t)t.vocab_size * 16);
    for (Py_ssize_t e = 0; e < t.n; e++) {
        int32_t state, token, target;
        int keep = kept(&t, e, &state, &token, &target);
        if (keep < 0 || (keep && state >= n_states)) {
            if (keep > 0) PyErr_Format(PyExc_ValueError, "state %d has no weights", state);
            Py_CLEAR(result);
            goto done;
        }
        if (!keep) continue;
        signature[2 * token] += weight[2 * state] * ((uint64_t)target + 1);
        signature[2 * token + 1] += weight[2 * state + 1] * ((uint64_t)target + 1);
    }
done:
    PyBuffer_Release(&weights);
    release(&t);
    return result;
}

/* fill_table(sources, tokens, targets, renumber, token_ok, token_class, table): table[state, class of token] =
 * next state for every kept transition; `table` is a writable int32 [states, classes] array. */
static PyObject *fill_table(PyObject *Py_UNUSED(module), PyObject *args) {
    Transitions t;
    Py_buffer classes, table;
    Py_ssize_t n_classes;
    if (!PyArg_ParseTuple(args, "O&O&O&O&O&O&O&n", int32_in, &t.sources, int32_in, &t.tokens, int32_in, &t.targets,
                          int32_in, &t.renumber, uint8_in, &t.token_ok, int32_in, &classes, int32_out, &table,
                          &n_classes))
        return NULL;
    PyObject *result = NULL;
    if (check(&t) < 0) goto done;
    if (classes.len != t.vocab_size * 4 || n_classes <= 0 || table.len % (n_classes * 4)) {
        PyErr_SetString(PyExc_ValueError, "token_class must be int32 per token and table int32 [states, classes]");
        goto done;
    }
    const int32_t *class_of = classes.buf;
    int32_t *cell = table.buf;
    Py_ssize_t n_states = table.len / (n_classes * 4);
    for (Py_ssize_t e = 0; e < t.n; e++) {
        int32_t state, token, target;
        int keep = kept(&t, e, &state, &token, &target);
        if (keep < 0) goto done;
        if (!keep) continue;
        if (state >= n_states || class_of[token] < 0 || class_of[token] >= n_classes) {
            PyErr_Format(PyExc_ValueError, "transition %zd falls outside the table", e);
            goto done;
        }
        cell[(Py_ssize_t)state * n_classes + class_of[token]] = target;
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&classes);
    PyBuffer_Release(&table);
    release(&t);
    return result;
}

/* ------------------------------------------------------------------------------------------ coarsest_blocks */

/* Whether states a and b agree this round: the same block, and transitions on the same classes into the same
 * blocks (each state's transitions are given in class order). */
static int same_row(Py_ssize_t a, Py_ssize_t b, const int64_t *start, const int32_t *cls, const int32_t *target,
                    const int32_t *block) {
    if (block[a] != block[b] || start[a + 1] - start[a] != start[b + 1] - start[b]) return 0;
    for (int64_t i = start[a], j = start[b]; i < start[a + 1]; i++, j++)
        if (cls[i] != cls[j] || block[target[i]] != block[target[j]]) return 0;
    return 1;
}

/* coarsest_blocks(starts, classes, targets, blocks): Moore's refinement from the partition `blocks` (int32 [n],
 * ids not negative), state s's transitions being classes/targets[starts[s]:starts[s + 1]] in class order; returns the
 * coarsest partition that refines it and that transitions respect, as int32 [n] bytes, blocks numbered in order
 * of their first state. Each round is one pass over the transitions with a hash table of rows, compared exactly. */
static PyObject *coarsest_blocks(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer starts, classes, targets, blocks;
    if (!PyArg_ParseTuple(args, "O&O&O&O&", int64_in, &starts, int32_in, &classes, int32_in, &targets, int32_in,
                          &blocks))
        return NULL;
    PyObject *result = NULL;
    int32_t *block = NULL, *refined = NULL, *slots = NULL;
    uint64_t *hashes = NULL;
    Py_ssize_t n = blocks.len / 4, n_edges = classes.len / 4;
    const int64_t *start = starts.buf;
    const int32_t *cls = classes.buf, *target = targets.buf;
    if (starts.len != (n + 1) * 8 || targets.len != classes.len || (n && (start[0] != 0 || start[n] != n_edges))) {
        PyErr_SetString(PyExc_ValueError, "starts must be int64 [n + 1] from 0 to the transitions' count");
        goto done;
    }
    for (Py_ssize_t s = 0; s < n; s++)
        if (start[s] > start[s + 1]) {
            PyErr_SetString(PyExc_ValueError, "starts must not decrease");
            goto done;
        }
    for (Py_ssize_t e = 0; e < n_edges; e++)
        if (target[e] < 0 || target[e] >= n) {
            PyErr_SetString(PyExc_ValueError, "a target lies outside the states");
            goto done;
        }
    Py_ssize_t n_slots = 16;
    while (n_slots < 2 * n) n_slots *= 2;
    block = PyMem_Malloc(((size_t)n + 1) * sizeof(int32_t));
    refined = PyMem_Malloc(((size_t)n + 1) * sizeof(int32_t));
    hashes = PyMem_Malloc(((size_t)n + 1) * sizeof(uint64_t));
    slots = PyMem_Malloc((size_t)n_slots * sizeof(int32_t));
    if (!block || !refined || !hashes || !slots) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t s = 0; s < n; s++) {
        block[s] = ((const int32_t *)blocks.buf)[s];
        if (block[s] < 0) {
            PyErr_SetString(PyExc_ValueError, "a block id is negative");
            goto done;
        }
    }
    Py_ssize_t count = -1;
    while (1) {
        memset(slots, 0xff, (size_t)n_slots * sizeof(int32_t));
        Py_ssize_t n_refined = 0;
        for (Py_ssize_t s = 0; s < n; s++) {
            uint64_t hash = 0x9E3779B97F4A7C15ull ^ (uint64_t)block[s];
            for (int64_t e = start[s]; e < start[s + 1]; e++)
                hash = (hash ^ ((uint64_t)(uint32_t)cls[e] << 32 | (uint32_t)block[target[e]])) * 0x100000001B3ull;
            hash ^= hash >> 29;
            hashes[s] = hash;
            Py_ssize_t slot = (Py_ssize_t)(hash & (uint64_t)(n_slots - 1));
            while (1) {
                int32_t held = slots[slot];
                if (held < 0) {
                    slots[slot] = (int32_t)s;
                    refined[s] = (int32_t)n_refined++;
                    break;
                }
                if (hashes[held] == hash && same_row(held, s, start, cls, target, block)) {
                    refined[s] = refined[held];
                    break;
                }
                slot = (slot + 1) & (n_slots - 1);
            }
        }
        int32_t *swap = block;
        block = refined;
        refined = swap;
        if (n_refined == count) break;
        count = n_refined;
    }
    result = PyBytes_FromStringAndSize((const char *)block, n * 4);
done:
    PyMem_Free(block);
    PyMem_Free(refined);
    PyMem_Free(hashes);
    PyMem_Free(slots);
    PyBuffer_Release(&starts);
    PyBuffer_Release(&classes);
    PyBuffer_Release(&targets);
    PyBuffer_Release(&blocks);
    return result;
}

/* ------------------------------------------------------------------------------------ minimization's searches */

/* live_states(sources, targets, accepting): per state (accepting: uint8 [states]), 1 if an accepting state is
 * reachable from it over the transitions sources[e] -> targets[e] (int32, in any order), else 0, as bytes: a
 * backward search over a reverse adjacency made in one counting pass, each state expanded once. */
static PyObject *live_states(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer sources, targets, accepting;
    if (!PyArg_ParseTuple(args, "O&O&O&", int32_in, &sources, int32_in, &targets, uint8_in, &accepting)) return NULL;
    PyObject *result = NULL;
    int64_t *first = NULL;
    int32_t *predecessor = NULL, *queue = NULL;
    Py_ssize_t n = accepting.len, n_edges = sources.len / 4;
    const int32_t *source = sources.buf, *target = targets.buf;
    const uint8_t *accepts = accepting.buf;
    if (targets.len != sources.len) {
        PyErr_SetString(PyExc_ValueError, "sources and targets must be int32 arrays of one length");
        goto done;
    }
    for (Py_ssize_t e = 0; e < n_edges; e++)
        if (source[e] < 0 || source[e] >= n || target[e] < 0 || target[e] >= n) {
            PyErr_Format(PyExc_ValueError, "transition %zd: a state outside the states", e);
            goto done;
        }
    first = PyMem_Calloc((size_t)n + 2, sizeof(int64_t));
    predecessor = PyMem_Malloc(((size_t)n_edges + 1) * sizeof(int32_t));
    queue = PyMem_Malloc(((size_t)n + 1) * sizeof(int32_t));
    if (!first || !predecessor || !queue) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t e = 0; e < n_edges; e++) first[target[e] + 2]++;
    for (Py_ssize_t q = 0; q < n; q++) first[q + 2] += first[q + 1];
    for (Py_ssize_t e = 0; e < n_edges; e++) predecessor[first[target[e] + 1]++] = source[e];
    /* now state q's predecessors are predecessor[first[q]:first[q + 1]] */
    if (!(result = PyBytes_FromStringAndSize(NULL, n))) goto done;
    uint8_t *live = (uint8_t *)PyBytes_AS_STRING(result);
    Py_ssize_t head = 0, tail = 0;
    for (Py_ssize_t q = 0; q < n; q++) {
        live[q] = accepts[q] != 0;
        if (live[q]) queue[tail++] = (int32_t)q;
    }
    while (head < tail) {
        int32_t q = queue[head++];
        for (int64_t e = first[q]; e < first[q + 1]; e++)
            if (!live[predecessor[e]]) {
                live[predecessor[e]] = 1;
                queue[tail++] = predecessor[e];
            }
    }
done:
    PyMem_Free(first);
    PyMem_Free(predecessor);
    PyMem_Free(queue);
    PyBuffer_Release(&sources);
    PyBuffer_Release(&targets);
    PyBuffer_Release(&accepting);
    return result;
}

/* breadth_first(starts, targets, initial): the states reachable from `initial`, state s's transitions being
 * targets[starts[s]:starts[s + 1]], in the order a queue visits them (a level at a time, each level in order of
 * first appearance along its predecessors' transitions), as int32 bytes. */
static PyObject *breadth_first(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer starts, targets;
    Py_ssize_t initial;
    if (!PyArg_ParseTuple(args, "O&O&n", int64_in, &starts, int32_in, &targets, &initial)) return NULL;
    PyObject *result = NULL;
    int32_t *order = NULL;
    uint8_t *seen = NULL;
    Py_ssize_t n = starts.len / 8 - 1, n_edges = targets.len / 4;
    const int64_t *start = starts.buf;
    const int32_t *target = targets.buf;
    if (n < 1 || initial < 0 || initial >= n || start[0] < 0 || start[n] > n_edges) {
        PyErr_SetString(PyExc_ValueError, "starts must be int64 [n + 1] within the transitions, initial a state");
        goto done;
    }
    for (Py_ssize_t q = 0; q < n; q++)
        if (start[q] > start[q + 1]) {
            PyErr_SetString(PyExc_ValueError, "starts must not decrease");
            goto done;
        }
    for (int64_t e = start[0]; e < start[n]; e++)
        if (target[e] < 0 || target[e] >= n) {
            PyErr_SetString(PyExc_ValueError, "a target lies outside the states");
            goto done;
        }
    order = PyMem_Malloc((size_t)n * sizeof(int32_t));
    seen = PyMem_Calloc((size_t)n, 1);
    if (!order || !seen) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t head = 0, tail = 0;
    order[tail++] = (int32_t)initial;
    seen[initial] = 1;
    while (head < tail) {
        int32_t q = order[head++];
        for (int64_t e = start[q]; e < start[q + 1]; e++)
            if (!seen[target[e]]) {
                seen[target[e]] = 1;
                order[tail++] = target[e];
            }
    }
    result = PyBytes_FromStringAndSize((const char *)order, tail * 4);
done:
    PyMem_Free(order);
    PyMem_Free(seen);
    PyBuffer_Release(&starts);
    PyBuffer_Release(&targets);
    return result;
}

/* ------------------------------------------------------------------------------------------- distinct_rows */

/* distinct_rows(rows, width): the distinct rows of a uint64 [n, width] array, numbered in order of their first
 * occurrence: (first int64 [k]: where each first occurs, inverse int64 [n]: each row's distinct row) as bytes. One
 * pass with a hash table of the rows, compared exactly. */
static PyObject *distinct_rows(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer rows;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "O&n", uint64_in, &rows, &width)) return NULL;
    PyObject *result = NULL, *first_bytes = NULL, *inverse_bytes = NULL;
    int64_t *first = NULL;
    int32_t *slots = NULL;
    uint64_t *hashes = NULL;
    const uint64_t *row = rows.buf;
    if (width < 1 || rows.len % (width * 8)) {
        PyErr_SetString(PyExc_ValueError, "rows must be uint64 [n, width] with width at least 1");
        goto done;
    }
    Py_ssize_t n = rows.len / (width * 8), n_slots = 16, n_distinct = 0;
    if (n >= INT32_MAX / 2) {
        PyErr_SetString(PyExc_OverflowError, "too many rows");
        goto done;
    }
    while (n_slots < 2 * n) n_slots *= 2;
    first = PyMem_Malloc(((size_t)n + 1) * sizeof(int64_t));
    hashes = PyMem_Malloc(((size_t)n + 1) * sizeof(uint64_t));
    slots = PyMem_Malloc((size_t)n_slots * sizeof(int32_t));
    if (!first || !hashes || !slots) {
        PyErr_NoMemory();
        goto done;
    }
    if (!(inverse_bytes = PyBytes_FromStringAndSize(NULL, n * 8))) goto done;
    int64_t *inverse = (int64_t *)PyBytes_AS_STRING(inverse_bytes);
    memset(slots, 0xff, (size_t)n_slots * sizeof(int32_t));
    for (Py_ssize_t i = 0; i < n; i++) {
        const uint64_t *words = row + i * width;
        uint64_t hash = 0x9E3779B97F4A7C15ull;
        for (Py_ssize_t w = 0; w < width; w++) {
            hash = (hash ^ words[w]) * 0xBF58476D1CE4E5B9ull;
            hash ^= hash >> 31;
        }
        hashes[i] = hash;
        Py_ssize_t slot = (Py_ssize_t)(hash & (uint64_t)(n_slots - 1));
        while (1) {
            int32_t held = slots[slot];
            if (held < 0) {
                slots[slot] = (int32_t)i;
                first[n_distinct] = i;
                inverse[i] = n_distinct++;
                break;
            }
            if (hashes[held] == hash && !memcmp(row + (Py_ssize_t)held * width, words, (size_t)width * 8)) {
                inverse[i] = inverse[held];
                break;
            }
            slot = (slot + 1) & (n_slots - 1);
        }
    }
    if ((first_bytes = PyBytes_FromStringAndSize((const char *)first, n_distinct * 8)))
        result = PyTuple_Pack(2, first_bytes, inverse_bytes);
done:
    Py_XDECREF(first_bytes);
    Py_XDECREF(inverse_bytes);
    PyMem_Free(first);
    PyMem_Free(hashes);
    PyMem_Free(slots);
    PyBuffer_Release(&rows);
    return result;
}

/* ------------------------------------------------------------------------------------------- product_table */

/* An open-addressing map from int64 codes to int32 ids. */
typedef struct {
    int64_t *keys;
    int32_t *ids;
    Py_ssize_t n, capacity;
} CodeMap;

static inline Py_ssize_t code_slot(const CodeMap *m, int64_t code) {
    uint64_t h = (uint64_t)code * 0x9E3779B97F4A7C15ull;
    Py_ssize_t i = (Py_ssize_t)((h ^ (h >> 32)) & (uint64_t)(m->capacity - 1));
    while (m->keys[i] >= 0 && m->keys[i] != code) i = (i + 1) & (m->capacity - 1);
    return i;
}

static int grow_map(CodeMap *m) {
    CodeMap bigger = {NULL, NULL, m->n, m->capacity ? 2 * m->capacity : 4096};
    bigger.keys = PyMem_Malloc((size_t)bigger.capacity * sizeof(int64_t));
    bigger.ids = PyMem_Malloc((size_t)bigger.capacity * sizeof(int32_t));
    if (!bigger.keys || !bigger.ids) {
        PyMem_Free(bigger.keys);
        PyMem_Free(bigger.ids);
        return -1;
    }
    memset(bigger.keys, 0xff, (size_t)bigger.capacity * sizeof(int64_t));
    for (Py_ssize_t i = 0; i < m->capacity; i++)
        if (m->keys[i] >= 0) {
            Py_ssize_t j = code_slot(&bigger, m->keys[i]);
            bigger.keys[j] = m->keys[i];
            bigger.ids[j] = m->ids[i];
        }
    PyMem_Free(m->keys);
    PyMem_Free(m->ids);
    *m = bigger;
    return 0;
}

/* product_table(first, first_columns, second, second_columns, first_class, second_class, first_start,
 * second_start): the product of two int32 tables ([states, columns], -1 dead) over the pair classes k, which read
 * column first_class[k] of the first and second_class[k] of the second, over the pairs reachable from the
 * starts. Returns (table int32 [pairs, classes], codes int64 [pairs]: first state * second states + second
 * state) as bytes. Pairs are numbered breadth-first, the start 0, each level's new pairs in order of their
 * codes (the numbering a level-at-a-time construction through sorted arrays gives). */
static PyObject *product_table(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer first, second, first_class, second_class;
    Py_ssize_t first_columns, second_columns, first_start, second_start;
    if (!PyArg_ParseTuple(args, "O&nO&nO&O&nn", int32_in, &first, &first_columns, int32_in, &second,
                          &second_columns, int32_in, &first_class, int32_in, &second_class, &first_start,
                          &second_start))
        return NULL;
    PyObject *result = NULL;
    Int64List codes = {0}, fresh = {0};
    CodeMap map = {0};
    int32_t *table = NULL;
    Py_ssize_t table_capacity = 0;
    Py_ssize_t n_classes = first_class.len / 4;
    const int32_t *a = first.buf, *b = second.buf, *fc = first_class.buf, *sc = second_class.buf;
    Py_ssize_t n_first = first_columns > 0 ? first.len / 4 / first_columns : 0;
    Py_ssize_t n_second = second_columns > 0 ? second.len / 4 / second_columns : 0;
    if (first_columns <= 0 || second_columns <= 0 || first.len != n_first * first_columns * 4
        || second.len != n_second * second_columns * 4 || second_class.len != first_class.len
        || first_start < 0 || first_start >= n_first || second_start < 0 || second_start >= n_second) {
        PyErr_SetString(PyExc_ValueError, "two int32 tables, one class pair per product class, starts in them");
        goto done;
    }
    for (Py_ssize_t k = 0; k < n_classes; k++)
        if (fc[k] < 0 || fc[k] >= first_columns || sc[k] < 0 || sc[k] >= second_columns) {
            PyErr_SetString(PyExc_ValueError, "a class pair names a column outside its table");
            goto done;
        }
    for (Py_ssize_t i = 0; i < n_first * first_columns; i++)
        if (a[i] < -1 || a[i] >= n_first) goto bad_target;
    for (Py_ssize_t i = 0; i < n_second * second_columns; i++)
        if (b[i] < -1 || b[i] >= n_second) goto bad_target;
    if (grow_map(&map) < 0 || int64_push(&codes, (int64_t)first_start * n_second + second_start) < 0) goto no_memory;
    Py_ssize_t slot = code_slot(&map, codes.items[0]);
    map.keys[slot] = codes.items[0];
    map.ids[slot] = 0;
    map.n = 1;
    for (Py_ssize_t begin = 0, end = 1; begin < end;) {
        fresh.n = 0;
        for (int pass = 0; pass < 2; pass++) { /* 1: find the level's new pairs; 2: write the rows */
            for (Py_ssize_t id = begin; id < end; id++) {
                int64_t p = codes.items[id] / n_second, q = codes.items[id] % n_second;
                for (Py_ssize_t k = 0; k < n_classes; k++) {
                    int32_t x = a[p * first_columns + fc[k]], y = b[q * second_columns + sc[k]];
                    int64_t code = x < 0 || y < 0 ? -1 : (int64_t)x * n_second + y;
                    if (pass == 1) {
                        table[id * n_classes + k] = code < 0 ? -1 : map.ids[code_slot(&map, code)];
                        continue;
                    }
                    if (code < 0) continue;
                    if (2 * (map.n + 1) > map.capacity && grow_map(&map) < 0) goto no_memory;
                    Py_ssize_t i = code_slot(&map, code);
                    if (map.keys[i] >= 0) continue;
                    map.keys[i] = code;
                    map.ids[i] = -1;
                    map.n++;
                    if (int64_push(&fresh, code) < 0) goto no_memory;
                }
            }
            if (pass == 1) break;
            qsort(fresh.items, (size_t)fresh.n, sizeof(int64_t), compare_int64);
            for (Py_ssize_t f = 0; f < fresh.n; f++) {
                map.ids[code_slot(&map, fresh.items[f])] = (int32_t)codes.n;
                if (int64_push(&codes, fresh.items[f]) < 0) goto no_memory;
            }
            if (end * n_classes > table_capacity) {
                Py_ssize_t capacity = table_capacity ? table_capacity : 4096;
                while (capacity < codes.n * n_classes) capacity *= 2;
                int32_t *grown = PyMem_Realloc(table, (size_t)capacity * sizeof(int32_t));
                if (!grown) goto no_memory;
                table = grown;
                table_capacity = capacity;
            }
        }
        begin = end;
        end = codes.n;
    }
    PyObject *table_bytes = PyBytes_FromStringAndSize((const char *)table, codes.n * n_classes * 4);
    PyObject *code_bytes = PyBytes_FromStringAndSize((const char *)codes.items, codes.n * 8);
    if (table_bytes && code_bytes) result = Py_BuildValue("NN", table_bytes, code_bytes);
    else {
        Py_XDECREF(table_bytes);
        Py_XDECREF(code_bytes);
    }
    goto done;
bad_target:
    PyErr_SetString(PyExc_ValueError, "a table cell holds no state of its table");
    goto done;
no_memory:
    PyErr_NoMemory();
done:
    PyMem_Free(codes.items);
    PyMem_Free(fresh.items);
    PyMem_Free(map.keys);
    PyMem_Free(map.ids);
    PyMem_Free(table);
    PyBuffer_Release(&first);
    PyBuffer_Release(&second);
    PyBuffer_Release(&first_class);
    PyBuffer_Release(&second_class);
    return result;
}

static PyMethodDef methods[] = {
    {"column_signatures", column_signatures, METH_VARARGS,
     "column_signatures(sources, tokens, targets, renumber, token_ok, weights): uint64 [vocabulary, 2] bytes, "
     "per token two weighted sums over its kept transitions."},
    {"fill_table", fill_table, METH_VARARGS,
     "fill_table(sources, tokens, targets, renumber, token_ok, token_class, table, n_classes): every kept "
     "transition written into the int32 [states, classes] table."},
    {"coarsest_blocks", coarsest_blocks, METH_VARARGS,
     "coarsest_blocks(starts, classes, targets, blocks): int32 [n] bytes, Moore's coarsest partition refining "
     "blocks that the transitions respect, blocks numbered by their first state."},
    {"live_states", live_states, METH_VARARGS,
     "live_states(sources, targets, accepting): uint8 [states] bytes, 1 where an accepting state is reachable."},
    {"breadth_first", breadth_first, METH_VARARGS,
     "breadth_first(starts, targets, initial): int32 bytes, the states reachable from initial in queue order."},
    {"distinct_rows", distinct_rows, METH_VARARGS,
     "distinct_rows(rows, width): (first, inverse) int64 bytes, the distinct rows of uint64 [n, width] in order "
     "of their first occurrence."},
    {"product_table", product_table, METH_VARARGS,
     "product_table(first, first_columns, second, second_columns, first_class, second_class, first_start, "
     "second_start): (table, codes) as bytes: the product of two tables over the reachable pairs."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_table_passes", "The token automaton build's passes over its big arrays.", -1, methods,
};

PyMODINIT_FUNC PyInit__table_passes(void) { return PyModule_Create(&module); }
