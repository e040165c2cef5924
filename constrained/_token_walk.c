/* A vocabulary walked through a byte automaton: the token automaton's transitions without visiting every token
 * from every state.
 *
 * Why: a token automaton's row for a state is where each token's bytes lead from it. Walking all V tokens from
 * each of S states costs S times the vocabulary's bytes (what outlines-core's token Index does). But a pattern
 * tells bytes apart only where its columns differ: bytes whose columns agree in every byte state form one byte
 * class, and two tokens that spell the same sequence of byte classes lead to the same state from every state.
 * So the tokens are first reduced to their distinct class sequences, those are laid out as a trie (shared
 * prefixes walked once), and the states walk the trie, skipping a whole subtree where a prefix dies: most
 * states allow few first bytes.
 *
 * Four passes, all plain CPython API (no numpy headers at build time):
 * - spelling_trie, once per vocabulary: every spelling to the id of its distinct byte sequence, and the trie of
 *   those, nodes in preorder (a node's subtree is the nodes up to its skip).
 * - class_trie, per pattern: the same for the spellings' class sequences (groups), merged from the byte trie.
 * - walk_states: a row per byte state; per group, two random linear hashes of its column over those rows (equal
 *   columns, equal hashes), so that token classes can be found without a dense [states, groups] table. The rows
 *   go down the trie together, merged where they reach one state.
 * - row_transitions: the token automaton's live transitions, one pruned walk of the trie per state, keeping the
 *   groups that represent a token class.
 *
 * The byte table is int32 [byte states, byte classes] with -1 for a dead transition; node symbols are byte
 * classes, which fit a byte because there are at most 256.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_growable_arrays.h"
#include "_typed_buffers.h"

static PyObject *bytes_of(const void *data, Py_ssize_t size) { return PyBytes_FromStringAndSize(data, size); }

/* A tuple of the n new references in items (consumed); NULL, all released, if one of them is NULL. */
static PyObject *tuple_of(PyObject **items, Py_ssize_t n) {
    PyObject *tuple = NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!items[i]) goto release;
    if (!(tuple = PyTuple_New(n))) goto release;
    for (Py_ssize_t i = 0; i < n; i++) PyTuple_SET_ITEM(tuple, i, items[i]);
    return tuple;
release:
    for (Py_ssize_t i = 0; i < n; i++) Py_XDECREF(items[i]);
    return NULL;
}

/* What both trie builders answer: (group per spelling, the nodes' symbols as bytes, parents, skips, group per node,
   node per group); group_bytes is borrowed. NULL, with the error set, when memory runs out. */
static PyObject *trie_tuple(PyObject *group_bytes, const Int32List *symbols, const Int32List *parents,
                            const Int32List *skips, const Int32List *node_groups, const Int32List *group_nodes) {
    uint8_t *symbol_bytes = PyMem_Malloc(symbols->n ? (size_t)symbols->n : 1);
    if (!symbol_bytes) return PyErr_NoMemory();
    for (Py_ssize_t k = 0; k < symbols->n; k++) symbol_bytes[k] = (uint8_t)symbols->items[k];
    PyObject *items[6] = {Py_NewRef(group_bytes), bytes_of(symbol_bytes, symbols->n),
                          bytes_of(parents->items, parents->n * 4), bytes_of(skips->items, skips->n * 4),
                          bytes_of(node_groups->items, node_groups->n * 4),
                          bytes_of(group_nodes->items, group_nodes->n * 4)};
    PyMem_Free(symbol_bytes);
    return tuple_of(items, 6);
}

/* --------------------------------------------------------------------------------------------- spelling_trie */

/* A group to sort: its sequence's first 8 bytes packed big-endian (so that integer order is their lexicographic
 * order, in most comparisons all that is read), and its representative spelling. */
typedef struct {
    uint64_t head;
    int32_t representative;
} SortItem;

/* The spellings' bytes, for the comparisons the heads leave open (qsort has no context argument everywhere; the
 * GIL is held throughout). */
static const uint8_t *sorted_bytes;
static const int64_t *sorted_starts, *sorted_lengths;

static int compare_sequences(const void *a, const void *b) {
    const SortItem *x = a, *y = b;
    if (x->head != y->head) return x->head < y->head ? -1 : 1;
    int32_t i = x->representative, j = y->representative;
    int64_t n = sorted_lengths[i] < sorted_lengths[j] ? sorted_lengths[i] : sorted_lengths[j];
    int order = n ? memcmp(sorted_bytes + sorted_starts[i], sorted_bytes + sorted_starts[j], (size_t)n) : 0;
    if (order) return order;
    return (sorted_lengths[i] > sorted_lengths[j]) - (sorted_lengths[i] < sorted_lengths[j]);
}

/* spelling_trie(data, offsets, present): spelling i is data[offsets[i]:offsets[i + 1]] where present[i]; returns
 * (group int32 [n] (-1 where absent), node_symbol uint8 [N], node_parent int32 [N], node_skip int32 [N], node_group
 * int32 [N] (-1: no group ends there), group_node int32 [G]) as bytes: each spelling's group (its distinct byte
 * sequence) and the trie of the groups, the groups numbered in the order of their sequences and the nodes in
 * preorder; node 0 is the root (the empty sequence). Once per vocabulary: class_trie reads it per pattern. */
static PyObject *spelling_trie(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer data, offsets, present;
    if (!PyArg_ParseTuple(args, "O&O&O&", uint8_in, &data, int64_in, &offsets, uint8_in, &present))
        return NULL;
    PyObject *result = NULL;
    int32_t *slots = NULL, *representatives = NULL, *group_of_representative = NULL, *stack = NULL;
    SortItem *sorting = NULL;
    int64_t *starts = NULL, *lengths = NULL;
    uint64_t *hashes = NULL;
    Int32List symbols = {0}, parents = {0}, skips = {0}, node_groups = {0}, group_nodes = {0};
    PyObject *group_bytes = NULL;
    Py_ssize_t n = present.len;
    const int64_t *offset = offsets.buf;
    const uint8_t *is_present = present.buf, *spelled = data.buf;
    if (offsets.len != (n + 1) * 8 || n > INT32_MAX / 2) {
        PyErr_SetString(PyExc_ValueError, "offsets must be int64 [n + 1] for n spellings");
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (is_present[i] && (offset[i] < 0 || offset[i] > offset[i + 1] || offset[i + 1] > data.len)) {
            PyErr_Format(PyExc_ValueError, "spelling %zd lies outside the data", i);
            goto done;
        }
    starts = PyMem_Malloc(((size_t)n + 1) * sizeof(int64_t));
    lengths = PyMem_Malloc(((size_t)n + 1) * sizeof(int64_t));
    hashes = PyMem_Malloc(((size_t)n + 1) * sizeof(uint64_t));
    representatives = PyMem_Malloc(((size_t)n + 1) * sizeof(int32_t));
    if (!(group_bytes = PyBytes_FromStringAndSize(NULL, n * 4))) goto done;
    int32_t *group = (int32_t *)PyBytes_AS_STRING(group_bytes);
    Py_ssize_t n_slots = 16;
    while (n_slots < 2 * n) n_slots *= 2;
    slots = PyMem_Malloc((size_t)n_slots * sizeof(int32_t));
    if (!starts || !lengths || !hashes || !representatives || !slots) {
        PyErr_NoMemory();
        goto done;
    }
    memset(slots, 0xff, (size_t)n_slots * sizeof(int32_t));
    /* distinct sequences by hashing: each spelling's group is at first its representative's index */
    Py_ssize_t n_groups = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!is_present[i]) {
            group[i] = -1;
            continue;
        }
        starts[i] = offset[i];
        lengths[i] = offset[i + 1] - offset[i];
        uint64_t hash = 0x9E3779B97F4A7C15ull ^ (uint64_t)lengths[i];
        for (int64_t b = 0; b < lengths[i]; b++) hash = (hash ^ spelled[starts[i] + b]) * 0x100000001B3ull;
        hashes[i] = hash;
        Py_ssize_t slot = (Py_ssize_t)(hash & (uint64_t)(n_slots - 1));
        while (1) {
            int32_t held = slots[slot];
            if (held < 0) {
                slots[slot] = (int32_t)i;
                representatives[n_groups] = (int32_t)i;
                group[i] = (int32_t)n_groups++;
                break;
            }
            if (hashes[held] == hash && lengths[held] == lengths[i]
                && !memcmp(spelled + starts[held], spelled + starts[i], (size_t)lengths[i])) {
                group[i] = group[held];
                break;
            }
            slot = (slot + 1) & (n_slots - 1);
        }
    }
    /* the groups in the order of their sequences: the preorder of their trie */
    sorted_bytes = spelled;
    sorted_starts = starts;
    sorted_lengths = lengths;
    sorting = PyMem_Malloc(((size_t)n_groups + 1) * sizeof(SortItem));
    if (!sorting) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t g = 0; g < n_groups; g++) {
        int32_t i = representatives[g];
        uint64_t head = 0;
        for (int64_t b = 0; b < 8; b++) head = (head << 8) | (b < lengths[i] ? spelled[starts[i] + b] : 0);
        sorting[g].head = head;
        sorting[g].representative = i;
    }
    qsort(sorting, (size_t)n_groups, sizeof(SortItem), compare_sequences);
    for (Py_ssize_t g = 0; g < n_groups; g++) representatives[g] = sorting[g].representative;
    group_of_representative = PyMem_Malloc(((size_t)n_groups + 1) * sizeof(int32_t));
    int64_t longest = 0;
    for (Py_ssize_t g = 0; g < n_groups; g++)
        if (lengths[representatives[g]] > longest) longest = lengths[representatives[g]];
    stack = PyMem_Malloc(((size_t)longest + 2) * sizeof(int32_t));
    if (!group_of_representative || !stack) {
        PyErr_NoMemory();
        goto done;
    }
    /* the trie: stack[d] is the node at depth d on the path of the sequence before */
    if (int32_push(&symbols, 0) < 0 || int32_push(&parents, -1) < 0 || int32_push(&skips, 0) < 0 || int32_push(&node_groups, -1) < 0)
        goto done;
    stack[0] = 0;
    int64_t depth = 0;
    for (Py_ssize_t g = 0; g < n_groups; g++) {
        int32_t i = representatives[g];
        const uint8_t *sequence = spelled + starts[i];
        int64_t common = 0;
        if (g > 0) {
            int32_t before = representatives[g - 1];
            const uint8_t *previous = spelled + starts[before];
            while (common < depth && common < lengths[i] && previous[common] == sequence[common]) common++;
        }
        for (int64_t d = depth; d > common; d--) skips.items[stack[d]] = (int32_t)symbols.n;
        for (int64_t d = common; d < lengths[i]; d++) {
            if (symbols.n >= INT32_MAX) {
                PyErr_SetString(PyExc_OverflowError, "the trie has too many nodes");
                goto done;
            }
            stack[d + 1] = (int32_t)symbols.n;
            if (int32_push(&symbols, sequence[d]) < 0 || int32_push(&parents, stack[d]) < 0 || int32_push(&skips, 0) < 0
                || int32_push(&node_groups, -1) < 0)
                goto done;
        }
        depth = lengths[i];
        node_groups.items[stack[depth]] = (int32_t)g;
        if (int32_push(&group_nodes, stack[depth]) < 0) goto done;
        group_of_representative[group[i]] = (int32_t)g;
    }
    for (int64_t d = depth; d >= 0; d--) skips.items[stack[d]] = (int32_t)symbols.n;
    for (Py_ssize_t i = 0; i < n; i++)
        if (group[i] >= 0) group[i] = group_of_representative[group[i]];
    result = trie_tuple(group_bytes, &symbols, &parents, &skips, &node_groups, &group_nodes);
done:
    Py_XDECREF(group_bytes);
    PyMem_Free(starts);
    PyMem_Free(lengths);
    PyMem_Free(hashes);
    PyMem_Free(representatives);
    PyMem_Free(slots);
    PyMem_Free(group_of_representative);
    PyMem_Free(sorting);
    PyMem_Free(stack);
    PyMem_Free(symbols.items);
    PyMem_Free(parents.items);
    PyMem_Free(skips.items);
    PyMem_Free(node_groups.items);
    PyMem_Free(group_nodes.items);
    PyBuffer_Release(&data);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&present);
    return result;
}

/* ------------------------------------------------------------------------------------------------ class_trie */

/* The children of a class-trie node, by class: bucket b holds the byte-trie nodes members[begin[b]:end[b]], all
 * reached from the node's own byte-trie nodes by a byte of class symbol[b]. */
typedef struct {
    Int32List symbol, begin, end;
} Buckets;

/* Counts per class, all zero between calls of expand. */
typedef struct {
    Py_ssize_t count[256], fill[256];
} ClassCounts;

/* The byte-trie nodes below members[first:last] (their children), bucketed by the class of their byte (buckets in
 * class order), appended to members and buckets. */
static int expand(const uint8_t *byte_symbol, const int32_t *byte_skip, const uint8_t *class_of, Int32List *members,
                  Buckets *buckets, ClassCounts *counts, Py_ssize_t first, Py_ssize_t last) {
    Py_ssize_t *count = counts->count, *fill = counts->fill;
    int present[256], n_present = 0, failed = 0;
    Py_ssize_t total = 0;
    for (Py_ssize_t m = first; m < last; m++) {
        int32_t b = members->items[m];
        for (int32_t c = b + 1; c < byte_skip[b]; c = byte_skip[c]) {
            uint8_t k = class_of[byte_symbol[c]];
            if (!count[k]++) present[n_present++] = k;
            total++;
        }
    }
    for (int i = 1; i < n_present; i++)  /* insertion sort: a node has few child classes */
        for (int j = i; j > 0 && present[j - 1] > present[j]; j--) {
            int swap = present[j];
            present[j] = present[j - 1];
            present[j - 1] = swap;
        }
    Py_ssize_t at = members->n;
    for (int i = 0; i < n_present && !failed; i++) {
        int k = present[i];
        fill[k] = at;
        failed = int32_push(&buckets->symbol, k) < 0 || int32_push(&buckets->begin, (int32_t)at) < 0
                 || int32_push(&buckets->end, (int32_t)(at + count[k])) < 0;
        at += count[k];
    }
    if (!failed && !(failed = int32_reserve(members, total) < 0)) {
        int32_t *items = members->items;
        for (Py_ssize_t m = first; m < last; m++) {
            int32_t b = items[m];
            for (int32_t c = b + 1; c < byte_skip[b]; c = byte_skip[c]) items[fill[class_of[byte_symbol[c]]]++] = c;
        }
        members->n += total;
    }
    for (int i = 0; i < n_present; i++) count[present[i]] = 0;
    return failed ? -1 : 0;
}

/* class_trie(node_symbol, node_skip, node_group, spelling_group, class_of_byte): from a vocabulary's byte trie (as
 * spelling_trie makes it: the symbols, skips and groups of its nodes in preorder, and each spelling's group), the
 * same for the spellings' class sequences under class_of_byte: (group int32 [n], node_symbol uint8 [N],
 * node_parent int32 [N], node_skip int32 [N], node_group int32 [N], group_node int32 [G]) as bytes, as
 * spelling_trie would make them from the spellings mapped through the classes.
 *
 * Why: a class-trie node is the set of byte-trie nodes whose paths spell its class sequence, so it is found by
 * merging the children of one class, each byte-trie node visited once, where hashing and sorting the mapped
 * spellings cost every spelling's bytes per pattern. Children are taken in class order, so the preorder is the
 * order of the sequences. */
static PyObject *class_trie(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer symbol, skip, node_group, spelling_group, class_of_byte;
    if (!PyArg_ParseTuple(args, "O&O&O&O&O&", uint8_in, &symbol, int32_in, &skip, int32_in, &node_group, int32_in,
                          &spelling_group, uint8_in, &class_of_byte))
        return NULL;
    PyObject *result = NULL, *group_bytes = NULL;
    int32_t *class_group = NULL;
    ClassCounts *counts = NULL;
    Int32List symbols = {0}, parents = {0}, skips = {0}, node_groups = {0}, group_nodes = {0}, members = {0};
    Buckets buckets = {{0}, {0}, {0}};
    /* the path: per class node on it, its id, its next bucket and last, and where its children's members begin */
    Int32List path_node = {0}, path_next = {0}, path_last = {0}, path_members = {0};
    Py_ssize_t n_nodes = symbol.len, n = spelling_group.len / 4, n_byte_groups = 0;
    const uint8_t *byte_symbol = symbol.buf, *class_of = class_of_byte.buf;
    const int32_t *byte_skip = skip.buf, *byte_group = node_group.buf, *group_of_spelling = spelling_group.buf;
    if (n_nodes < 1 || n_nodes >= INT32_MAX || skip.len != n_nodes * 4 || node_group.len != n_nodes * 4
        || class_of_byte.len != 256) {
        PyErr_SetString(PyExc_ValueError, "the trie's arrays must be one length, at least 1, and class_of_byte 256 "
                                          "bytes");
        goto done;
    }
    for (Py_ssize_t b = 0; b < n_nodes; b++) {
        if (byte_skip[b] <= b || byte_skip[b] > n_nodes || byte_group[b] < -1) {
            PyErr_Format(PyExc_ValueError, "trie node %zd is malformed", b);
            goto done;
        }
        if (byte_group[b] >= n_byte_groups) n_byte_groups = (Py_ssize_t)byte_group[b] + 1;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (group_of_spelling[i] < -1 || group_of_spelling[i] >= n_byte_groups) {
            PyErr_Format(PyExc_ValueError, "spelling %zd's group is not in the trie", i);
            goto done;
        }
    class_group = PyMem_Malloc(((size_t)n_byte_groups + 1) * sizeof(int32_t));
    counts = PyMem_Calloc(1, sizeof(ClassCounts));
    if (!class_group || !counts) {
        PyErr_NoMemory();
        goto done;
    }
    if (int32_push(&members, 0) < 0) goto done;
    Py_ssize_t first = 0, last = 1;
    int32_t parent = -1, k = 0;
    while (1) {
        /* a class node: its byte-trie nodes are members[first:last] */
        int32_t id = (int32_t)symbols.n, group = -1;
        if (int32_push(&symbols, k) < 0 || int32_push(&parents, parent) < 0 || int32_push(&skips, 0) < 0) goto done;
        for (Py_ssize_t m = first; m < last; m++) {
            int32_t byte_group_here = byte_group[members.items[m]];
            if (byte_group_here < 0) continue;
            if (group < 0) {
                group = (int32_t)group_nodes.n;
                if (int32_push(&group_nodes, id) < 0) goto done;
            }
            class_group[byte_group_here] = group;
        }
        if (int32_push(&node_groups, group) < 0) goto done;
        Py_ssize_t lists = members.n, next = buckets.symbol.n;
        if (expand(byte_symbol, byte_skip, class_of, &members, &buckets, counts, first, last) < 0) goto done;
        if (int32_push(&path_node, id) < 0 || int32_push(&path_next, (int32_t)next) < 0
            || int32_push(&path_last, (int32_t)buckets.symbol.n) < 0 || int32_push(&path_members, (int32_t)lists) < 0)
            goto done;
        /* the next node in preorder: the next bucket of the deepest node on the path that has one left */
        while (path_node.n && path_next.items[path_node.n - 1] == path_last.items[path_node.n - 1]) {
            Py_ssize_t top = path_node.n - 1;
            skips.items[path_node.items[top]] = (int32_t)symbols.n;
            members.n = path_members.items[top];
            buckets.symbol.n = buckets.begin.n = buckets.end.n = top ? path_last.items[top - 1] : 0;
            path_node.n = path_next.n = path_last.n = path_members.n = top;
        }
        if (!path_node.n) break;
        Py_ssize_t top = path_node.n - 1;
        int32_t b = path_next.items[top]++;
        k = buckets.symbol.items[b];
        first = buckets.begin.items[b];
        last = buckets.end.items[b];
        parent = path_node.items[top];
    }
    if (!(group_bytes = PyBytes_FromStringAndSize(NULL, n * 4))) goto done;
    int32_t *group = (int32_t *)PyBytes_AS_STRING(group_bytes);
    for (Py_ssize_t i = 0; i < n; i++) group[i] = group_of_spelling[i] < 0 ? -1 : class_group[group_of_spelling[i]];
    result = trie_tuple(group_bytes, &symbols, &parents, &skips, &node_groups, &group_nodes);
done:
    Py_XDECREF(group_bytes);
    PyMem_Free(class_group);
    PyMem_Free(counts);
    PyMem_Free(symbols.items);
    PyMem_Free(parents.items);
    PyMem_Free(skips.items);
    PyMem_Free(node_groups.items);
    PyMem_Free(group_nodes.items);
    PyMem_Free(members.items);
    PyMem_Free(buckets.symbol.items);
    PyMem_Free(buckets.begin.items);
    PyMem_Free(buckets.end.items);
    PyMem_Free(path_node.items);
    PyMem_Free(path_next.items);
    PyMem_Free(path_last.items);
    PyMem_Free(path_members.items);
    PyBuffer_Release(&symbol);
    PyBuffer_Release(&skip);
    PyBuffer_Release(&node_group);
    PyBuffer_Release(&spelling_group);
    PyBuffer_Release(&class_of_byte);
    return result;
}

/* ---------------------------------------------------------------------------------------------- walk_states */

/* The byte table and the trie, checked: every next state a state, every node's parent before it, every skip
 * past the node and within the trie, every symbol a byte class. */
typedef struct {
    Py_buffer table, symbol, parent, skip, node_group;
    const int32_t *next, *parents, *skips, *groups;
    const uint8_t *symbols;
    Py_ssize_t n_states, n_classes, n_nodes, n_groups;
} Walk;

static void release_walk(Walk *w) {
    PyBuffer_Release(&w->table);
    PyBuffer_Release(&w->symbol);
    PyBuffer_Release(&w->parent);
    PyBuffer_Release(&w->skip);
    PyBuffer_Release(&w->node_group);
}

static int check_walk(Walk *w, Py_ssize_t n_classes, Py_ssize_t n_groups) {
    w->n_classes = n_classes;
    w->n_groups = n_groups;
    w->n_nodes = w->symbol.len;
    if (n_classes <= 0 || n_classes > 256 || w->table.len % (n_classes * 4) || w->n_nodes < 1
        || w->parent.len != w->n_nodes * 4 || w->skip.len != w->n_nodes * 4 || w->node_group.len != w->n_nodes * 4) {
        PyErr_SetString(PyExc_ValueError, "table must be int32 [states, classes] with 1 to 256 classes, and the "
                                          "trie's arrays one length, at least 1");
        return -1;
    }
    w->n_states = w->table.len / (n_classes * 4);
    w->next = w->table.buf;
    w->symbols = w->symbol.buf;
    w->parents = w->parent.buf;
    w->skips = w->skip.buf;
    w->groups = w->node_group.buf;
    for (Py_ssize_t c = 0; c < w->n_states * n_classes; c++)
        if (w->next[c] < -1 || w->next[c] >= w->n_states) {
            PyErr_Format(PyExc_ValueError, "table cell %zd holds no state", c);
            return -1;
        }
    for (Py_ssize_t n = 0; n < w->n_nodes; n++)
        if ((n > 0 && (w->parents[n] < 0 || w->parents[n] >= n)) || w->skips[n] <= n || w->skips[n] > w->n_nodes
            || w->symbols[n] >= n_classes || w->groups[n] < -1 || w->groups[n] >= n_groups) {
            PyErr_Format(PyExc_ValueError, "trie node %zd is malformed", n);
            return -1;
        }
    return 0;
}

/* The first trie node from n on whose spelling is alive from the root's state (node_state[0]), its state stored
 * in node_state[n]; w->n_nodes when none is left. A node that dies takes its whole subtree with it (skips[n] is the
 * first node past that subtree), which is the walk's pruning. */
static inline Py_ssize_t live_node(const Walk *w, int32_t *node_state, Py_ssize_t n) {
    while (n > 0 && n < w->n_nodes) {
        int32_t q = w->next[(Py_ssize_t)node_state[w->parents[n]] * w->n_classes + w->symbols[n]];
        if (q >= 0) {
            node_state[n] = q;
            return n;
        }
        n = w->skips[n];
    }
    return n;
}

/* A random odd 64-bit weight per (row, hash), the same for the same seed (splitmix64). */
static inline uint64_t weight(uint64_t seed, Py_ssize_t row, int which) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (2 * (uint64_t)row + (uint64_t)which + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (z ^ (z >> 31)) | 1;
}

/* The states a set of rows has reached at one trie node, each once, with the sums of those rows' two weights:
 * a node's entries are a range of these shared arrays. */
typedef struct {
    int32_t *state;
    uint64_t *weights; /* two per entry */
    Py_ssize_t capacity;
} Entries;

/* Room for `needed` entries in all; -1 with MemoryError set where there is none. */
static int reserve_entries(Entries *e, Py_ssize_t needed) {
    if (needed <= e->capacity) return 0;
    Py_ssize_t capacity = grown_capacity(0, e->capacity, needed);
    int32_t *state = PyMem_Realloc(e->state, (size_t)capacity * sizeof(int32_t));
    if (state) e->state = state;
    uint64_t *weights = state ? PyMem_Realloc(e->weights, (size_t)capacity * 2 * sizeof(uint64_t)) : NULL;
    if (!weights) {
        PyErr_NoMemory();
        return -1;
    }
    e->weights = weights;
    e->capacity = capacity;
    return 0;
}

/* walk_states(table, n_classes, node_symbol, node_parent, node_skip, node_group, group_use, start, opening, seed):
 * a row per byte state (where a token may begin) and per group the hashes of its column over those rows. Row 0 is
 * `start` (swapped with state 0: rows are the states in order otherwise), or with `opening` a row of its own that
 * reads from `start` the groups whose use has bit 2 (the text's first token, spelled as it opens a text) and that
 * no token leads back to, the states following in order; every other row reads the groups whose use has bit 1.
 * Rows of states no token boundary reaches are the caller's to drop (no token leads to them: the minimization
 * drops them). Returns (states int32 [S]: each row's byte state, -1 for the opening row; number int32 [byte
 * states]: each byte state's row; signatures uint64 [groups, 2]: per group two sums over the other rows of a random
 * odd weight of the row times its next row + 1; opening int32 [groups]: each group's next row from the opening
 * row, -1 where it dies or is not read there), as bytes.
 *
 * Why every state at once rather than breadth-first from `start`, a walk per row: the rows go down the trie
 * together, and rows that reach one state at a node are one entry from there on, carrying the sum of their
 * weights (the hashes are linear in the weights). Past the first symbols most rows have met (inside a JSON string
 * nearly every state leads to a few), so a node costs the distinct states reached there, not the rows. */
static PyObject *walk_states(PyObject *Py_UNUSED(module), PyObject *args) {
    Walk w;
    Py_buffer use;
    Py_ssize_t n_classes, start;
    int opening;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "O&nO&O&O&O&O&npK", int32_in, &w.table, &n_classes, uint8_in, &w.symbol, int32_in,
                          &w.parent, int32_in, &w.skip, int32_in, &w.node_group, uint8_in, &use, &start, &opening,
                          &seed))
        return NULL;
    PyObject *result = NULL, *states_bytes = NULL, *number_bytes = NULL, *signature_bytes = NULL,
             *opening_bytes = NULL;
    int32_t *node_state = NULL, *depth = NULL, *stamp = NULL, *position = NULL;
    Py_ssize_t *segment_end = NULL;
    uint64_t *next_plus_one = NULL;
    Entries entries = {0};
    if (check_walk(&w, n_classes, use.len) < 0) goto done;
    if (start < 0 || start >= w.n_states) {
        PyErr_SetString(PyExc_ValueError, "the start state is not a state of the table");
        goto done;
    }
    const uint8_t *uses = use.buf;
    Py_ssize_t n_states = w.n_states, n_rows = n_states + (opening ? 1 : 0);
    states_bytes = PyBytes_FromStringAndSize(NULL, n_rows * 4);
    number_bytes = PyBytes_FromStringAndSize(NULL, n_states * 4);
    signature_bytes = PyBytes_FromStringAndSize(NULL, w.n_groups * 16);
    opening_bytes = PyBytes_FromStringAndSize(NULL, w.n_groups * 4);
    if (!states_bytes || !number_bytes || !signature_bytes || !opening_bytes) goto done;
    node_state = PyMem_Malloc((size_t)w.n_nodes * sizeof(int32_t));
    depth = PyMem_Malloc((size_t)w.n_nodes * sizeof(int32_t));
    stamp = PyMem_Malloc((size_t)n_states * sizeof(int32_t));
    position = PyMem_Malloc((size_t)n_states * sizeof(int32_t));
    next_plus_one = PyMem_Malloc((size_t)n_states * sizeof(uint64_t));
    if (!node_state || !depth || !stamp || !position || !next_plus_one) {
        PyErr_NoMemory();
        goto done;
    }
    int32_t *states = (int32_t *)PyBytes_AS_STRING(states_bytes), *number = (int32_t *)PyBytes_AS_STRING(number_bytes);
    uint64_t *signature = (uint64_t *)PyBytes_AS_STRING(signature_bytes);
    int32_t *opening_next = (int32_t *)PyBytes_AS_STRING(opening_bytes);
    memset(signature, 0, (size_t)w.n_groups * 16);
    memset(opening_next, 0xff, (size_t)w.n_groups * 4);
    memset(stamp, 0xff, (size_t)n_states * sizeof(int32_t));
    if (opening) states[0] = -1;
    for (Py_ssize_t q = 0; q < n_states; q++) states[q + opening] = (int32_t)q;
    if (!opening) {
        states[0] = (int32_t)start;
        states[start] = 0;
    }
    for (Py_ssize_t row = 0; row < n_rows; row++)
        if (states[row] >= 0) number[states[row]] = (int32_t)row;
    for (Py_ssize_t q = 0; q < n_states; q++) next_plus_one[q] = (uint64_t)number[q] + 1;
    if (opening) { /* the opening row alone, down the trie */
        node_state[0] = (int32_t)start;
        for (Py_ssize_t n = 0; (n = live_node(&w, node_state, n)) < w.n_nodes; n++) {
            int32_t g = w.groups[n];
            if (g >= 0 && (uses[g] & 2)) opening_next[g] = number[node_state[n]];
        }
    }
    /* the other rows together: the entries of the node at depth d on the current path end at segment_end[d] and
     * begin where those of its parent end (the root's, every state with its own row's weights, at 0) */
    int32_t deepest = 0;
    depth[0] = 0;
    for (Py_ssize_t n = 1; n < w.n_nodes; n++) {
        depth[n] = depth[w.parents[n]] + 1;
        if (depth[n] > deepest) deepest = depth[n];
    }
    segment_end = PyMem_Malloc(((size_t)deepest + 1) * sizeof(Py_ssize_t));
    if (!segment_end) {
        PyErr_NoMemory();
        goto done;
    }
    if (reserve_entries(&entries, n_states) < 0) goto done;
    for (Py_ssize_t q = 0; q < n_states; q++) {
        entries.state[q] = (int32_t)q;
        entries.weights[2 * q] = weight(seed, number[q], 0);
        entries.weights[2 * q + 1] = weight(seed, number[q], 1);
    }
    segment_end[0] = n_states;
    for (Py_ssize_t n = 0; n < w.n_nodes;) {
        int32_t d = depth[n];
        Py_ssize_t begin = d ? segment_end[d - 1] : 0, end = d ? begin : n_states;
        if (d) { /* the parent's entries, one symbol further, merged by the state they reach */
            Py_ssize_t parent_begin = d > 1 ? segment_end[d - 2] : 0;
            if (reserve_entries(&entries, begin + (begin - parent_begin)) < 0) goto done;
            int32_t *state = entries.state;
            uint64_t *weights = entries.weights;
            const int32_t *column = w.next + w.symbols[n];
            for (Py_ssize_t i = parent_begin; i < begin; i++) {
                int32_t q = column[(Py_ssize_t)state[i] * w.n_classes];
                if (q < 0) continue;
                if (stamp[q] == (int32_t)n) {
                    weights[2 * position[q]] += weights[2 * i];
                    weights[2 * position[q] + 1] += weights[2 * i + 1];
                } else {
                    stamp[q] = (int32_t)n;
                    position[q] = (int32_t)end;
                    state[end] = q;
                    weights[2 * end] = weights[2 * i];
                    weights[2 * end + 1] = weights[2 * i + 1];
                    end++;
                }
            }
            if (end == begin) { /* every row died here: so they do below */
                n = w.skips[n];
                continue;
            }
            segment_end[d] = end;
        }
        int32_t g = w.groups[n];
        if (g >= 0 && (uses[g] & 1)) {
            uint64_t sum0 = 0, sum1 = 0;
            for (Py_ssize_t i = begin; i < end; i++) {
                uint64_t next = next_plus_one[entries.state[i]];
                sum0 += entries.weights[2 * i] * next;
                sum1 += entries.weights[2 * i + 1] * next;
            }
            signature[2 * g] = sum0;
            signature[2 * g + 1] = sum1;
        }
        n++;
    }
    PyObject *items[4] = {Py_NewRef(states_bytes), Py_NewRef(number_bytes), Py_NewRef(signature_bytes),
                          Py_NewRef(opening_bytes)};
    result = tuple_of(items, 4);
done:
    Py_XDECREF(states_bytes);
    Py_XDECREF(number_bytes);
    Py_XDECREF(signature_bytes);
    Py_XDECREF(opening_bytes);
    PyMem_Free(node_state);
    PyMem_Free(depth);
    PyMem_Free(stamp);
    PyMem_Free(position);
    PyMem_Free(next_plus_one);
    PyMem_Free(segment_end);
    PyMem_Free(entries.state);
    PyMem_Free(entries.weights);
    PyBuffer_Release(&use);
    release_walk(&w);
    return result;
}

/* ------------------------------------------------------------------------------------------ row_transitions */

/* qsort's order of int32 values, ascending. */
static int compare_int32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The walk `w` cut to the paths from the root to the nodes of the groups `wanted` marks (wanted[g] >= 0): those
 * nodes and their ancestors, in preorder as before, each group's node keeping its group and the others none;
 * its arrays are the caller's to free (cut->symbols and the int32 arrays, one allocation). Nodes past a kept one
 * in preorder lie in its subtree exactly where they did, so skips map to the first kept node at or past theirs. */
static int cut_to_groups(const Walk *w, const int32_t *group_node, const int32_t *wanted, Walk *cut) {
    *cut = *w;
    int32_t *kept_before = PyMem_Calloc((size_t)w->n_nodes + 1, sizeof(int32_t));
    if (!kept_before) {
        PyErr_NoMemory();
        return -1;
    }
    /* kept_before[n + 1] marks node n kept at first; then it counts the kept nodes before n + 1 */
    for (Py_ssize_t g = 0; g < w->n_groups; g++)
        if (wanted[g] >= 0) kept_before[group_node[g] + 1] = 1;
    kept_before[1] = 1; /* the root */
    for (Py_ssize_t n = w->n_nodes - 1; n > 0; n--)
        if (kept_before[n + 1]) kept_before[w->parents[n] + 1] = 1;
    for (Py_ssize_t n = 0; n < w->n_nodes; n++) kept_before[n + 1] += kept_before[n];
    Py_ssize_t n_kept = kept_before[w->n_nodes];
    int32_t *arrays = PyMem_Malloc((size_t)n_kept * 3 * sizeof(int32_t) + (size_t)n_kept);
    if (!arrays) {
        PyMem_Free(kept_before);
        PyErr_NoMemory();
        return -1;
    }
    int32_t *parents = arrays, *skips = arrays + n_kept, *groups = arrays + 2 * n_kept;
    uint8_t *symbols = (uint8_t *)(arrays + 3 * n_kept);
    for (Py_ssize_t n = 0; n < w->n_nodes; n++) {
        if (kept_before[n + 1] == kept_before[n]) continue;
        int32_t k = kept_before[n], g = w->groups[n];
        symbols[k] = w->symbols[n];
        parents[k] = n ? kept_before[w->parents[n]] : -1;
        skips[k] = kept_before[w->skips[n]];
        groups[k] = g >= 0 && wanted[g] >= 0 ? g : -1;
    }
    PyMem_Free(kept_before);
    cut->parents = parents;
    cut->skips = skips;
    cut->groups = groups;
    cut->symbols = symbols;
    cut->n_nodes = n_kept;
    return 0;
}

/* row_transitions(table, n_classes, node_symbol, node_parent, node_skip, node_group, group_node, states, number,
 * representatives): the token automaton's live transitions, the row that group representatives[c] leads to from
 * byte state states[row] (rows with state -1 and columns with group -1 have none; a walk that dies none either),
 * as (rows, columns, targets) int32 bytes sorted by row, then column. Every state reached must have a row in
 * `number` (as walk_states numbered them). Each row walks the trie once, pruned where a prefix dies: most states
 * allow few first bytes, so this costs far less than a walk per column. And only the trie's paths to the groups
 * that represent a column are walked (cut_to_groups): a token class is read off one group, so a JSON schema's
 * tens of thousands of groups leave a few hundred paths. Why a
 * list and not the dense [rows, columns] table: a few percent of that table is live on a SQL automaton, and every
 * later step (trimming, minimizing, handing the automaton back from the build's child) costs the live
 * transitions. */
static PyObject *row_transitions(PyObject *Py_UNUSED(module), PyObject *args) {
    Walk w;
    Py_buffer group_node, states, numbers, representatives;
    Py_ssize_t n_classes;
    if (!PyArg_ParseTuple(args, "O&nO&O&O&O&O&O&O&O&", int32_in, &w.table, &n_classes, uint8_in, &w.symbol,
                          int32_in, &w.parent, int32_in, &w.skip, int32_in, &w.node_group, int32_in, &group_node,
                          int32_in, &states, int32_in, &numbers, int32_in, &representatives))
        return NULL;
    PyObject *result = NULL;
    Walk cut;
    int32_t *column_of = NULL, *next_column = NULL, *node_state = NULL, *cut_arrays = NULL, *hits = NULL,
            *target_of = NULL;
    Int32List rows = {0}, columns = {0}, targets = {0};
    Py_ssize_t n_rows = states.len / 4, n_columns = representatives.len / 4, n_groups = group_node.len / 4;
    if (check_walk(&w, n_classes, n_groups) < 0) goto done;
    const int32_t *state_of = states.buf, *number = numbers.buf, *representative = representatives.buf,
                  *group_node_of = group_node.buf;
    if (numbers.len != w.n_states * 4) {
        PyErr_SetString(PyExc_ValueError, "number must hold a row per byte state");
        goto done;
    }
    /* the columns a group represents (several where tokens alike in the middle open a text otherwise): the first
     * in column_of, each the next in next_column, ascending */
    column_of = PyMem_Malloc(((size_t)n_groups + 1) * sizeof(int32_t));
    next_column = PyMem_Malloc(((size_t)n_columns + 1) * sizeof(int32_t));
    node_state = PyMem_Malloc((size_t)w.n_nodes * sizeof(int32_t));
    hits = PyMem_Malloc(((size_t)n_columns + 1) * sizeof(int32_t));
    target_of = PyMem_Malloc(((size_t)n_columns + 1) * sizeof(int32_t));
    if (!column_of || !next_column || !node_state || !hits || !target_of) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t g = 0; g < n_groups; g++) column_of[g] = -1;
    for (Py_ssize_t c = 0; c < n_columns; c++) target_of[c] = -1;
    for (Py_ssize_t c = n_columns - 1; c >= 0; c--) {
        int32_t g = representative[c];
        if (g < -1 || g >= n_groups) {
            PyErr_Format(PyExc_ValueError, "representative %zd is not a group of the trie", c);
            goto done;
        }
        if (g >= 0) {
            next_column[c] = column_of[g];
            column_of[g] = (int32_t)c;
        }
    }
    for (Py_ssize_t g = 0; g < n_groups; g++)
        if (column_of[g] >= 0 && (group_node_of[g] < 0 || group_node_of[g] >= w.n_nodes)) {
            PyErr_Format(PyExc_ValueError, "group %zd's node is not a node of the trie", g);
            goto done;
        }
    if (cut_to_groups(&w, group_node_of, column_of, &cut) < 0) goto done;
    cut_arrays = (int32_t *)cut.parents;
    for (Py_ssize_t row = 0; row < n_rows; row++) {
        int32_t from = state_of[row];
        if (from < 0) continue;
        if (from >= w.n_states) {
            PyErr_Format(PyExc_ValueError, "row %zd's state is not a state of the table", row);
            goto done;
        }
        Py_ssize_t n_hits = 0;
        node_state[0] = from;
        for (Py_ssize_t n = 0; (n = live_node(&cut, node_state, n)) < cut.n_nodes; n++) {
            int32_t q = node_state[n], g = cut.groups[n];
            if (g >= 0) {
                if (number[q] < 0) {
                    PyErr_Format(PyExc_ValueError, "row %zd, column %d: the state reached has no row", row,
                                 column_of[g]);
                    goto done;
                }
                for (int32_t c = column_of[g]; c >= 0; c = next_column[c]) {
                    target_of[c] = number[q];
                    hits[n_hits++] = c;
                }
            }
        }
        /* the row's transitions in column order: its few columns sorted, or where it has many, all columns read */
        if (int32_reserve(&rows, n_hits) < 0 || int32_reserve(&columns, n_hits) < 0
            || int32_reserve(&targets, n_hits) < 0)
            goto done;
        if (n_hits * 16 < n_columns) {
            qsort(hits, (size_t)n_hits, sizeof(int32_t), compare_int32);
        } else {
            n_hits = 0;
            for (int32_t c = 0; c < n_columns; c++)
                if (target_of[c] >= 0) hits[n_hits++] = c;
        }
        for (Py_ssize_t k = 0; k < n_hits; k++) {
            int32_t c = hits[k];
            rows.items[rows.n++] = (int32_t)row;
            columns.items[columns.n++] = c;
            targets.items[targets.n++] = target_of[c];
            target_of[c] = -1;
        }
    }
    PyObject *items[3] = {bytes_of(rows.items, rows.n * 4), bytes_of(columns.items, columns.n * 4),
                          bytes_of(targets.items, targets.n * 4)};
    result = tuple_of(items, 3);
done:
    PyMem_Free(column_of);
    PyMem_Free(next_column);
    PyMem_Free(node_state);
    PyMem_Free(cut_arrays);
    PyMem_Free(hits);
    PyMem_Free(target_of);
    PyMem_Free(rows.items);
    PyMem_Free(columns.items);
    PyMem_Free(targets.items);
    PyBuffer_Release(&group_node);
    PyBuffer_Release(&states);
    PyBuffer_Release(&numbers);
    PyBuffer_Release(&representatives);
    release_walk(&w);
    return result;
}

static PyMethodDef methods[] = {
    {"spelling_trie", spelling_trie, METH_VARARGS,
     "spelling_trie(data, offsets, present): (group, node_symbol, node_parent, node_skip, node_group, group_node) "
     "as bytes: each spelling's distinct byte sequence and their trie."},
    {"class_trie", class_trie, METH_VARARGS,
     "class_trie(node_symbol, node_skip, node_group, spelling_group, class_of_byte): (group, node_symbol, "
     "node_parent, node_skip, node_group, group_node) as bytes: each spelling's distinct class sequence and their "
     "trie, merged from the byte trie."},
    {"walk_states", walk_states, METH_VARARGS,
     "walk_states(table, n_classes, node_symbol, node_parent, node_skip, node_group, group_use, start, opening, "
     "seed): (states, number, signatures, opening) as bytes: a row per byte state and each group's column "
     "hashes."},
    {"row_transitions", row_transitions, METH_VARARGS,
     "row_transitions(table, n_classes, node_symbol, node_parent, node_skip, node_group, group_node, states, number, "
     "representatives): (rows, columns, targets) as int32 bytes: the token automaton's live transitions."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_token_walk", "A vocabulary walked through a byte automaton.", -1, methods,
};

PyMODINIT_FUNC PyInit__token_walk(void) { return PyModule_Create(&module); }
