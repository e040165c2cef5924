/* The compiled core of the canvas mask lattice (see lattice.py for the maths).
 *
 * Why in C: a denoising step asks for the masks of every open position, and on a memo miss the set
 * operations behind them (successors of a state set by a token class, predecessors, the classes between two
 * sets, the vocabulary row of a class set) are a few dozen machine instructions per state or arc.  Through
 * numpy each costs a handful of array calls of a few microseconds apiece, and the Python loop over a
 * canvas's positions costs more than the look-ups it drives.  Here the sets are bitsets interned by content,
 * every operation is memoized on the sets' numbers, and the canvas sweeps and mask rows run in one call.
 *
 * Data flows one way: the automaton's transitions are read, never written; the canvas arrays (state-set
 * numbers per position, token ids, row keys, the mask buffer) belong to the Python Canvas and are updated in
 * place.  The automaton comes as its live transitions, by state then class, never as a dense [states, classes]
 * table: on a SQL automaton that table is hundreds of megabytes of which a few percent is live, and reading it
 * whole cost more than everything else here.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ANY_CLASS (-1)     /* "some token of any class" in post / pre */
#define DEAD (-1)          /* no transition */
#define OPEN (-1)          /* an open position in a canvas's token array */
#define DECIDED_KEY (-2)   /* row keys of decided positions: (DECIDED_KEY, token) */
#define EMPTY_KEY UINT64_MAX

/* Memo tables are dropped wholesale past this many entries, rows past this many bytes, and a dropped entry
 * is only recomputed. The interned sets themselves are kept (canvases hold their numbers), one bit per
 * state each, until Python calls `forget` (lattice.StateSets bounds their bytes): that starts a new epoch,
 * and canvases holding numbers of an earlier one sweep again. */
#define MEMO_LIMIT 500000
#define ROW_BYTES_LIMIT (64u << 20)
/* Automata whose successor and predecessor sets fit in this many bytes each (up to about 8,000 states)
 * keep them as bitsets: a set's successors are then an OR of words per member, not a bit per arc. */
#define NEIGHBOUR_BYTES_LIMIT (8u << 20)
/* Each union table (below) gets at most this many bytes: byte-wide chunks when they fit, else nibbles. */
#define UNION_TABLE_BYTES_LIMIT (8u << 20)

/* ------------------------------------------------------------------------------------ bitsets */

/* Trailing zeros (of a non-zero word) and set bits of a 64-bit word: GCC's and Clang's builtins, else portable
 * code (also built on GCC with -DCONSTRAINED_PORTABLE_BITS, which is how it is tested). */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(CONSTRAINED_PORTABLE_BITS)
static inline int ctz64(uint64_t x) { return __builtin_ctzll(x); }
static inline int popcount64(uint64_t x) { return __builtin_popcountll(x); }
#else
static inline int ctz64(uint64_t x) {
    int n = 0;
    for (; !(x & 0xFFFFFFFFu); x >>= 32) n += 32;
    for (; !(x & 1u); x >>= 1) n++;
    return n;
}
static inline int popcount64(uint64_t x) {  /* bits summed in pairs, nibbles, then bytes by one multiply */
    x -= (x >> 1) & 0x5555555555555555ull;
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
    return (int)((x * 0x0101010101010101ull) >> 56);
}
#endif

static inline int bit_test(const uint64_t *bits, int32_t i) { return (int)((bits[i >> 6] >> (i & 63)) & 1u); }
static inline void bit_set(uint64_t *bits, int32_t i) { bits[i >> 6] |= (uint64_t)1 << (i & 63); }

/* Iterate the members of a bitset of `words` words: FOR_MEMBERS(bits, words, q) { ... } */
#define FOR_MEMBERS(bits, words, q)                                                                   \
    for (int32_t w_ = 0; w_ < (words); w_++)                                                          \
        for (uint64_t rest_ = (bits)[w_]; rest_; rest_ &= rest_ - 1)                                  \
            for (int32_t q = w_ * 64 + ctz64(rest_), once_ = 1; once_; once_ = 0)

static inline int32_t popcount(const uint64_t *bits, int32_t words) {
    int32_t n = 0;
    for (int32_t w = 0; w < words; w++) n += popcount64(bits[w]);
    return n;
}

static inline void or_words(uint64_t *into, const uint64_t *words, int32_t n) {
    for (int32_t w = 0; w < n; w++) into[w] |= words[w];
}

static uint64_t hash_words(const uint64_t *words, int32_t n) {
    uint64_t h = 0x243F6A8885A308D3ull ^ (uint64_t)n;
    for (int32_t i = 0; i < n; i++) {
        h ^= words[i];
        h *= 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
    }
    return h;
}

/* Unions of per-state bitsets (successors, predecessors, class sets) over whole state sets, by the "four
 * Russians" method: the states are cut into chunks of `bits` (4 or 8) consecutive numbers, and for every
 * chunk and every subset of it the union of its members' bitsets is precomputed.  The union over a set of
 * m states then costs one OR of the chunk's few words per non-empty chunk, at most S / bits of them, instead of
 * one per member: several times fewer where sets hold hundreds of states, as they do across the open
 * stretches of a canvas. */
/* Where a chunk's entries start in its table, and the words its members' bitsets touch (first, how many). */
typedef struct {
    size_t offset;
    int32_t first, width;
} ChunkSpan;

typedef struct {
    int32_t bits, words;
    uint64_t *data;     /* per chunk, 2 ** bits entries of that chunk's span of words */
    ChunkSpan *spans;   /* [chunks] */
} UnionTable;

static void union_table_free(UnionTable *u) {
    free(u->data); free(u->spans);
}

static inline const uint64_t *union_entry(const UnionTable *u, size_t chunk, uint64_t subset) {
    return u->data + u->spans[chunk].offset + subset * (size_t)u->spans[chunk].width;
}

/* Build the table for `n` states whose bitsets of `words` words are rows[row_of[state]] (rows[state] when
 * row_of is NULL); the finest chunk width that fits the memory bound, or no table (data NULL) when even
 * nibbles do not.  Each chunk keeps only the words its members' bitsets touch (states are numbered
 * breadth-first, so a chunk's neighbours sit in a few nearby words): that is all a union over it ORs.
 * -1 when out of memory. */
static int union_table_build(UnionTable *u, int32_t n, int32_t words, const uint64_t *rows, const int32_t *row_of) {
    memset(u, 0, sizeof *u);
    u->words = words;
    for (int32_t bits = 8; bits >= 4; bits -= 4) {
        size_t chunks = ((size_t)n + bits - 1) / bits, total = 0;
        free(u->spans);
        if (!(u->spans = malloc(chunks * sizeof(ChunkSpan)))) return -1;
        for (size_t chunk = 0; chunk < chunks; chunk++) {
            int32_t lo = words, hi = 0;
            for (int32_t state = (int32_t)(chunk * bits); state < n && state < (int32_t)((chunk + 1) * bits); state++) {
                const uint64_t *row = rows + (size_t)(row_of ? row_of[state] : state) * words;
                for (int32_t w = 0; w < words; w++)
                    if (row[w]) { if (w < lo) lo = w; if (w + 1 > hi) hi = w + 1; }
            }
            ChunkSpan *span = &u->spans[chunk];
            span->first = lo < hi ? lo : 0;
            span->width = lo < hi ? hi - lo : 0;
            span->offset = total;
            total += ((size_t)1 << bits) * (size_t)span->width;
        }
        if (total * sizeof(uint64_t) > UNION_TABLE_BYTES_LIMIT) continue;
        u->bits = bits;
        if (!(u->data = malloc((total ? total : 1) * sizeof(uint64_t)))) return -1;
        for (size_t chunk = 0; chunk < chunks; chunk++) {
            int32_t lo = u->spans[chunk].first, width = u->spans[chunk].width;
            if (!width) continue;
            memset((uint64_t *)union_entry(u, chunk, 0), 0, (size_t)width * sizeof(uint64_t));
            for (uint64_t subset = 1; subset < ((uint64_t)1 << bits); subset++) {
                uint64_t *entry = (uint64_t *)union_entry(u, chunk, subset);
                int32_t state = (int32_t)(chunk * bits) + ctz64(subset);
                memcpy(entry, union_entry(u, chunk, subset & (subset - 1)), (size_t)width * sizeof(uint64_t));
                if (state < n) or_words(entry, rows + (size_t)(row_of ? row_of[state] : state) * words + lo, width);
            }
        }
        return 0;
    }
    union_table_free(u);
    memset(u, 0, sizeof *u);
    return 0;
}

/* OR into `into` the union over the members of `set` (`set_words` words). */
static void union_over(const UnionTable *u, uint64_t *into, const uint64_t *set, int32_t set_words) {
    const uint64_t mask = ((uint64_t)1 << u->bits) - 1;
    const int32_t per_word = 64 / u->bits;
    for (int32_t w = 0; w < set_words; w++)
        for (uint64_t rest = set[w]; rest; ) {
            int32_t m = ctz64(rest) / u->bits;
            uint64_t subset = (rest >> (m * u->bits)) & mask;
            size_t chunk = (size_t)w * per_word + m;
            or_words(into + u->spans[chunk].first, union_entry(u, chunk, subset), u->spans[chunk].width);
            rest &= ~(mask << (m * u->bits));
        }
}

/* Bitsets numbered in order of first appearance; equal sets get equal numbers. Never shrinks, since the
 * numbers are held by canvases and memo entries: it is only ever dropped whole (`forget`). */
typedef struct {
    int32_t words;
    uint64_t *data;     /* count × words */
    uint64_t *hashes;   /* per number */
    Py_ssize_t count, capacity;
    int32_t *index;     /* open addressing over hashes: a number, or -1 */
    Py_ssize_t index_size;
} SetStore;

static int store_init(SetStore *s, int32_t words) {
    s->words = words > 0 ? words : 1;
    s->count = 0;
    s->capacity = 64;
    s->index_size = 128;
    s->data = calloc((size_t)s->capacity * s->words, sizeof(uint64_t));
    s->hashes = malloc((size_t)s->capacity * sizeof(uint64_t));
    s->index = malloc((size_t)s->index_size * sizeof(int32_t));
    if (!s->data || !s->hashes || !s->index) return -1;
    memset(s->index, 0xff, (size_t)s->index_size * sizeof(int32_t));
    return 0;
}

static void store_free(SetStore *s) {
    free(s->data);
    free(s->hashes);
    free(s->index);
}

static size_t store_bytes(const SetStore *s) {
    return (size_t)s->capacity * ((size_t)s->words + 1) * sizeof(uint64_t) + (size_t)s->index_size * sizeof(int32_t);
}

static inline const uint64_t *store_get(const SetStore *s, int32_t id) { return s->data + (size_t)id * s->words; }

static int store_reindex(SetStore *s) {
    Py_ssize_t size = s->index_size * 2;
    int32_t *index = malloc((size_t)size * sizeof(int32_t));
    if (!index) return -1;
    memset(index, 0xff, (size_t)size * sizeof(int32_t));
    for (Py_ssize_t id = 0; id < s->count; id++) {
        Py_ssize_t slot = (Py_ssize_t)(s->hashes[id] & (uint64_t)(size - 1));
        while (index[slot] >= 0) slot = (slot + 1) & (size - 1);
        index[slot] = (int32_t)id;
    }
    free(s->index);
    s->index = index;
    s->index_size = size;
    return 0;
}

/* The number of the set `bits` (not pointing into the store), adding it if new; -1 when out of memory. */
static int32_t store_intern(SetStore *s, const uint64_t *bits) {
    uint64_t h = hash_words(bits, s->words);
    Py_ssize_t mask = s->index_size - 1, slot = (Py_ssize_t)(h & (uint64_t)mask);
    for (int32_t id; (id = s->index[slot]) >= 0; slot = (slot + 1) & mask)
        if (s->hashes[id] == h && memcmp(store_get(s, id), bits, (size_t)s->words * sizeof(uint64_t)) == 0)
            return id;
    if (s->count == INT32_MAX) return -1;
    if (s->count == s->capacity) {
        Py_ssize_t capacity = s->capacity * 2;
        uint64_t *data = realloc(s->data, (size_t)capacity * s->words * sizeof(uint64_t));
        if (!data) return -1;
        s->data = data;
        uint64_t *hashes = realloc(s->hashes, (size_t)capacity * sizeof(uint64_t));
        if (!hashes) return -1;
        s->hashes = hashes;
        s->capacity = capacity;
    }
    int32_t id = (int32_t)s->count++;
    memcpy(s->data + (size_t)id * s->words, bits, (size_t)s->words * sizeof(uint64_t));
    s->hashes[id] = h;
    s->index[slot] = id;
    if (s->count * 2 > s->index_size && store_reindex(s) < 0) return -1;
    return id;
}

/* ---------------------------------------------------------------------------------------- memo */

/* uint64 key -> int32 value, open addressing; cleared wholesale at MEMO_LIMIT entries.  A key and its value
 * share one slot, so a look-up reads one cache line: the sweeps chain look-ups whose keys each depend on the
 * one before, and after the model's forward pass none of them is in cache. */
typedef struct {
    uint64_t key;
    int32_t value;
} MemoSlot;

typedef struct {
    MemoSlot *slots;
    Py_ssize_t count, size;
} Memo;

static void memo_clear(Memo *m) {
    for (Py_ssize_t i = 0; i < m->size; i++) m->slots[i].key = EMPTY_KEY;
    m->count = 0;
}

static int memo_alloc(Memo *m, Py_ssize_t size) {
    m->slots = malloc((size_t)size * sizeof(MemoSlot));
    if (!m->slots) return -1;
    m->size = size;
    memo_clear(m);
    return 0;
}

static void memo_free(Memo *m) {
    free(m->slots);
    m->slots = NULL;
}

static inline Py_ssize_t memo_slot(const Memo *m, uint64_t key) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    Py_ssize_t mask = m->size - 1, slot = (Py_ssize_t)((h ^ (h >> 31)) & (uint64_t)mask);
    while (m->slots[slot].key != EMPTY_KEY && m->slots[slot].key != key) slot = (slot + 1) & mask;
    return slot;
}

static inline int32_t memo_get(const Memo *m, uint64_t key) {
    const MemoSlot *slot = &m->slots[memo_slot(m, key)];
    return slot->key == key ? slot->value : -1;
}

static int memo_put(Memo *m, uint64_t key, int32_t value) {
    if (m->count >= MEMO_LIMIT) memo_clear(m);
    if ((m->count + 1) * 2 > m->size) {
        Memo grown;
        if (memo_alloc(&grown, m->size * 2) < 0) return -1;
        for (Py_ssize_t i = 0; i < m->size; i++)
            if (m->slots[i].key != EMPTY_KEY) grown.slots[memo_slot(&grown, m->slots[i].key)] = m->slots[i];
        grown.count = m->count;
        memo_free(m);
        *m = grown;
    }
    MemoSlot *slot = &m->slots[memo_slot(m, key)];
    m->count += slot->key == EMPTY_KEY;
    slot->key = key;
    slot->value = value;
    return 0;
}

static inline uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

/* ------------------------------------------------------------------------------------- kernel */

/* The arcs of an automaton seen from one end: one arc per (state, neighbour) pair that some class connects,
 * with the set of those classes.  Kept twice, leaving each state (neighbours are successors) and entering
 * it (predecessors), so that every walk below runs in either direction. */
typedef struct {
    int32_t *offsets;           /* [S + 1]: the arcs of state q are offsets[q]:offsets[q + 1] */
    int32_t *ends;              /* [P]: the arc's other end */
    int32_t *classes;           /* [P]: the number of the arc's class set in arc_class_sets */
    int32_t *state_classes;     /* [S]: the class set of all arcs of a state */
    uint64_t *neighbours;       /* [S, set words] bitsets, or NULL past NEIGHBOUR_BYTES_LIMIT */
    int32_t *spans;             /* [S, 2]: the words holding a state's neighbour bits, first and past last */
    UnionTable neighbour_union, class_union;  /* over neighbours and state_classes */
} Arcs;

static void arcs_free(Arcs *a) {
    free(a->offsets); free(a->ends); free(a->classes); free(a->state_classes); free(a->neighbours); free(a->spans);
    union_table_free(&a->neighbour_union); union_table_free(&a->class_union);
}

typedef struct {
    PyObject_HEAD
    /* The automaton's live transitions: state q's are row_classes/row_targets[row_offsets[q]:row_offsets[q + 1]],
     * their classes ascending. */
    int32_t *row_offsets, *row_classes, *row_targets;
    int32_t n_states, n_classes, vocab_size, row_words;
    int32_t *token_class;       /* [V] */
    int32_t *class_offsets;     /* [C + 1]: the tokens of class c are class_tokens[class_offsets[c]:...] */
    int32_t *class_tokens;      /* [V] */
    uint32_t **class_rows;      /* [C]: the packed row of each large class (NULL for the others) */
    Arcs out, in;               /* the arcs leaving and entering each state */
    SetStore arc_class_sets;    /* distinct class sets of arcs: a few hundred, shared by thousands of arcs */
    uint32_t *arc_class_seen;   /* per arc class set: the classes_between call that last OR-ed it */
    uint32_t pair_epoch;
    /* The live transitions (source, target) of each class: by_class_*[by_class_offsets[c]:...]. */
    int32_t *by_class_offsets, *by_class_source, *by_class_target;
    SetStore sets, class_sets;
    Memo post, pre, pair_classes, position_classes;  /* the last keyed by (F[i], B[i + 1]) */
    uint32_t **rows;            /* packed vocabulary row of each class set, or NULL */
    Py_ssize_t rows_capacity;
    size_t rows_bytes;
    uint64_t *scratch, *class_scratch;
    /* The last intersection (row i's targets are row i + 1's sources): its operands' pair key, its number. */
    uint64_t last_intersection_key;
    int32_t last_intersection;
    int32_t empty, accepting, live;
    int32_t epoch;              /* how many times `forget` dropped the sets: numbers from earlier epochs are void */
    int ready;
} Kernel;

/* Everything keyed by set numbers: the interned sets and class sets, the memos, the rows of class sets. */
static void release_sets(Kernel *k) {
    store_free(&k->sets); store_free(&k->class_sets);
    memo_free(&k->post); memo_free(&k->pre); memo_free(&k->pair_classes); memo_free(&k->position_classes);
    if (k->rows)
        for (Py_ssize_t i = 0; i < k->rows_capacity; i++) free(k->rows[i]);
    free(k->rows);
    k->rows = NULL;
    k->rows_capacity = 0;
    k->rows_bytes = 0;
    k->last_intersection_key = EMPTY_KEY;
}

static void kernel_release(Kernel *k) {
    free(k->row_offsets); free(k->row_classes); free(k->row_targets);
    free(k->token_class); free(k->class_offsets); free(k->class_tokens);
    if (k->class_rows)
        for (int32_t c = 0; c < k->n_classes; c++) free(k->class_rows[c]);
    free(k->class_rows);
    arcs_free(&k->out); arcs_free(&k->in);
    store_free(&k->arc_class_sets); free(k->arc_class_seen);
    free(k->by_class_offsets); free(k->by_class_source); free(k->by_class_target);
    release_sets(k);
    free(k->scratch); free(k->class_scratch);
}

static void kernel_dealloc(Kernel *k) {
    kernel_release(k);
    Py_TYPE(k)->tp_free((PyObject *)k);
}

static int no_memory(void) {
    PyErr_NoMemory();
    return -1;
}

/* For each of `n` bitsets of `words` words, the first word holding a bit and the one past the last. */
static void word_spans(const uint64_t *bits, int32_t n, int32_t words, int32_t *spans) {
    for (int32_t i = 0; i < n; i++) {
        const uint64_t *own = bits + (size_t)i * words;
        int32_t lo = 0, hi = words;
        while (lo < words && !own[lo]) lo++;
        while (hi > lo && !own[hi - 1]) hi--;
        spans[2 * i] = lo;
        spans[2 * i + 1] = hi;
    }
}

/* OR into `into` the neighbour bitset of state q, over its span only. */
static inline void or_neighbours(uint64_t *into, const Arcs *a, int32_t q, int32_t words) {
    const uint64_t *own = a->neighbours + (size_t)q * words;
    for (int32_t w = a->spans[2 * q]; w < a->spans[2 * q + 1]; w++) into[w] |= own[w];
}

/* Whether the neighbours of state q all lie in `set` (needs the neighbour bitsets). */
static inline int neighbours_within(const Arcs *a, int32_t q, const uint64_t *set, int32_t words) {
    const uint64_t *own = a->neighbours + (size_t)q * words;
    for (int32_t w = a->spans[2 * q]; w < a->spans[2 * q + 1]; w++)
        if (own[w] & ~set[w]) return 0;
    return 1;
}

/* The per-state summaries of arcs whose offsets, ends and classes are filled: each state's class set,
 * and where memory allows the neighbour bitsets with their spans and the union tables. */
static int index_arcs(Kernel *k, Arcs *a, uint64_t *all) {
    int32_t S = k->n_states, CW = k->class_sets.words;
    size_t SW = (size_t)k->sets.words;
    if (!(a->state_classes = malloc((size_t)S * sizeof(int32_t)))) return -1;
    for (int32_t q = 0; q < S; q++) {
        memset(all, 0, (size_t)CW * sizeof(uint64_t));
        for (int32_t i = a->offsets[q]; i < a->offsets[q + 1]; i++)
            or_words(all, store_get(&k->arc_class_sets, a->classes[i]), CW);
        if ((a->state_classes[q] = store_intern(&k->arc_class_sets, all)) < 0) return -1;
    }
    if ((size_t)S * SW * sizeof(uint64_t) <= NEIGHBOUR_BYTES_LIMIT) {
        a->neighbours = calloc((size_t)S * SW, sizeof(uint64_t));
        a->spans = malloc((size_t)S * 2 * sizeof(int32_t));
        if (!a->neighbours || !a->spans) return -1;
        for (int32_t q = 0; q < S; q++)
            for (int32_t i = a->offsets[q]; i < a->offsets[q + 1]; i++) bit_set(a->neighbours + q * SW, a->ends[i]);
        word_spans(a->neighbours, S, (int32_t)SW, a->spans);
        if (union_table_build(&a->neighbour_union, S, (int32_t)SW, a->neighbours, NULL) < 0) return -1;
    }
    return 0;
}

/* Arcs and transitions by class from the transitions: one pass to count, one to fill the leaving arcs (a
 * stamp per target marks the arcs already seen from the current source, whose class sets are interned as
 * soon as the source is done), then the entering arcs by a counting sort, then each side's summaries. */
static int build_arcs(Kernel *k) {
    int32_t S = k->n_states, C = k->n_classes, CW = k->class_sets.words;
    int32_t *stamp = malloc((size_t)S * sizeof(int32_t)), *arc_of = malloc((size_t)S * sizeof(int32_t));
    /* The class sets of one source's arcs, then (slot C) a scratch set. */
    uint64_t *classes = calloc(((size_t)C + 1) * CW, sizeof(uint64_t));
    uint64_t *all = classes + (size_t)C * CW;
    Arcs *out = &k->out, *in = &k->in;
    out->offsets = malloc(((size_t)S + 1) * sizeof(int32_t));
    in->offsets = calloc((size_t)S + 2, sizeof(int32_t));
    k->by_class_offsets = calloc((size_t)C + 2, sizeof(int32_t));
    if (!stamp || !arc_of || !classes || !out->offsets || !in->offsets || !k->by_class_offsets
        || store_init(&k->arc_class_sets, CW) < 0)
        goto fail;
    memset(stamp, 0xff, (size_t)S * sizeof(int32_t));
    Py_ssize_t arcs = 0, transitions = 0;
    for (int32_t q = 0; q < S; q++)
        for (int32_t i = k->row_offsets[q]; i < k->row_offsets[q + 1]; i++) {
            int32_t t = k->row_targets[i];
            transitions++;
            k->by_class_offsets[k->row_classes[i] + 2]++;
            if (stamp[t] != q) { stamp[t] = q; arcs++; }
        }
    if (transitions >= INT32_MAX) goto fail;
    size_t P = arcs ? (size_t)arcs : 1, E = transitions ? (size_t)transitions : 1;
    out->ends = malloc(P * sizeof(int32_t));
    out->classes = malloc(P * sizeof(int32_t));
    in->ends = malloc(P * sizeof(int32_t));
    in->classes = malloc(P * sizeof(int32_t));
    k->by_class_source = malloc(E * sizeof(int32_t));
    k->by_class_target = malloc(E * sizeof(int32_t));
    if (!out->ends || !out->classes || !in->ends || !in->classes || !k->by_class_source || !k->by_class_target)
        goto fail;
    for (int32_t c = 0; c < C; c++) k->by_class_offsets[c + 2] += k->by_class_offsets[c + 1];
    memset(stamp, 0xff, (size_t)S * sizeof(int32_t));
    int32_t p = 0;
    for (int32_t q = 0; q < S; q++) {
        int32_t first = out->offsets[q] = p;
        for (int32_t i = k->row_offsets[q]; i < k->row_offsets[q + 1]; i++) {
            int32_t c = k->row_classes[i], t = k->row_targets[i];
            if (stamp[t] != q) {
                stamp[t] = q;
                arc_of[t] = p;
                out->ends[p] = t;
                in->offsets[t + 2]++;
                p++;
            }
            bit_set(classes + (size_t)(arc_of[t] - first) * CW, c);
            int32_t e = k->by_class_offsets[c + 1]++;
            k->by_class_source[e] = q;
            k->by_class_target[e] = t;
        }
        for (int32_t a = first; a < p; a++) {
            uint64_t *own = classes + (size_t)(a - first) * CW;
            if ((out->classes[a] = store_intern(&k->arc_class_sets, own)) < 0) goto fail;
            memset(own, 0, (size_t)CW * sizeof(uint64_t));
        }
    }
    out->offsets[S] = p;
    for (int32_t q = 0; q < S; q++) in->offsets[q + 2] += in->offsets[q + 1];
    for (int32_t q = 0; q < S; q++)
        for (int32_t a = out->offsets[q]; a < out->offsets[q + 1]; a++) {
            int32_t i = in->offsets[out->ends[a] + 1]++;
            in->ends[i] = q;
            in->classes[i] = out->classes[a];
        }
    if (index_arcs(k, out, all) < 0 || index_arcs(k, in, all) < 0) goto fail;
    /* After both sides have interned their class sets: the store's rows no longer move. */
    if (union_table_build(&out->class_union, S, CW, k->arc_class_sets.data, out->state_classes) < 0
        || union_table_build(&in->class_union, S, CW, k->arc_class_sets.data, in->state_classes) < 0)
        goto fail;
    k->arc_class_seen = calloc((size_t)k->arc_class_sets.count, sizeof(uint32_t));
    if (!k->arc_class_seen) goto fail;
    free(stamp);
    free(arc_of);
    free(classes);
    return 0;
fail:
    free(stamp);
    free(arc_of);
    free(classes);
    return no_memory();
}

/* A class with more tokens than this is spread over a row by OR-ing its own precomputed row (a vector
 * instruction per few words) rather than by setting its tokens' bits one by one (a few cycles each): past
 * an eighth of the row's words in tokens the OR is the cheaper. */
static inline int32_t large_class_size(const Kernel *k) { return k->row_words / 8; }

/* The tokens of each class (a counting sort of token_class), and the rows of the large classes: at most
 * 8V / row_words of them (256 rows: 1 MB on a 32K vocabulary), whatever the vocabulary. */
static int build_class_tokens(Kernel *k) {
    int32_t C = k->n_classes, V = k->vocab_size;
    k->class_offsets = calloc((size_t)C + 2, sizeof(int32_t));
    k->class_tokens = malloc(((size_t)V + 1) * sizeof(int32_t));
    k->class_rows = calloc((size_t)C, sizeof(uint32_t *));
    if (!k->class_offsets || !k->class_tokens || !k->class_rows) return no_memory();
    for (int32_t t = 0; t < V; t++) k->class_offsets[k->token_class[t] + 2]++;
    for (int32_t c = 0; c < C; c++) k->class_offsets[c + 2] += k->class_offsets[c + 1];
    for (int32_t t = 0; t < V; t++) k->class_tokens[k->class_offsets[k->token_class[t] + 1]++] = t;
    for (int32_t c = 0; c < C; c++) {
        if (k->class_offsets[c + 1] - k->class_offsets[c] <= large_class_size(k)) continue;
        uint32_t *row = k->class_rows[c] = calloc(k->row_words, sizeof(uint32_t));
        if (!row) return no_memory();
        for (int32_t i = k->class_offsets[c]; i < k->class_offsets[c + 1]; i++)
            row[k->class_tokens[i] >> 5] |= (uint32_t)1 << (k->class_tokens[i] & 31);
    }
    return 0;
}

static int intern_scratch(Kernel *k, int32_t *out) {
    int32_t id = store_intern(&k->sets, k->scratch);
    if (id < 0) return no_memory();
    *out = id;
    return 0;
}

/* Empty stores and memos, then the three named sets, in the same order every epoch (so the same numbers).
 * `accepting` holds the accepting states' bits. */
static int start_sets(Kernel *k, const uint64_t *accepting) {
    if (store_init(&k->sets, (k->n_states + 63) / 64) < 0 || store_init(&k->class_sets, (k->n_classes + 63) / 64) < 0
        || memo_alloc(&k->post, 1024) < 0 || memo_alloc(&k->pre, 1024) < 0 || memo_alloc(&k->pair_classes, 1024) < 0
        || memo_alloc(&k->position_classes, 1024) < 0)
        return no_memory();
    int32_t words = k->sets.words;
    memset(k->scratch, 0, (size_t)words * sizeof(uint64_t));
    if (intern_scratch(k, &k->empty) < 0) return -1;
    memcpy(k->scratch, accepting, (size_t)words * sizeof(uint64_t));
    if (intern_scratch(k, &k->accepting) < 0) return -1;
    for (int32_t q = 0; q < k->n_states; q++) bit_set(k->scratch, q);
    return intern_scratch(k, &k->live);
}

/* A copy of an int32 array argument, which must hold `count` entries (count < 0: any number, put in *count_out);
 * NULL with no exception set when its size is wrong (the caller says what it expected), with MemoryError when
 * out of memory. */
static int32_t *int32_copy(const Py_buffer *b, Py_ssize_t count, Py_ssize_t *count_out) {
    if (b->len % 4 || (count >= 0 && b->len != count * 4) || b->len / 4 >= INT32_MAX) return NULL;
    if (count_out) *count_out = b->len / 4;
    int32_t *copy = malloc(b->len ? (size_t)b->len : 1);
    if (copy) memcpy(copy, b->buf, (size_t)b->len);
    else PyErr_NoMemory();
    return copy;
}

/* Whether the transitions are well formed: offsets rising from 0 to their count, each state's classes strictly
 * ascending within the classes, every target a state (a wrong one would be read out of bounds). */
static int transitions_valid(const Kernel *k, Py_ssize_t transitions) {
    if (k->row_offsets[0] != 0 || k->row_offsets[k->n_states] != transitions) return 0;
    for (int32_t q = 0; q < k->n_states; q++) {
        if (k->row_offsets[q + 1] < k->row_offsets[q]) return 0;
        for (int32_t i = k->row_offsets[q]; i < k->row_offsets[q + 1]; i++)
            if (k->row_classes[i] < 0 || k->row_classes[i] >= k->n_classes
                || (i > k->row_offsets[q] && k->row_classes[i] <= k->row_classes[i - 1])
                || k->row_targets[i] < 0 || k->row_targets[i] >= k->n_states)
                return 0;
    }
    return 1;
}

static int kernel_init(Kernel *k, PyObject *args, PyObject *kwds) {
    static char *names[] = {"offsets", "classes", "targets", "n_classes", "token_class", "accepting", NULL};
    Py_buffer offsets, classes, targets, token_class, accepting;
    int32_t n_classes;
    uint64_t *accepting_bits = NULL;
    if (k->ready) {
        PyErr_SetString(PyExc_RuntimeError, "the kernel is already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*y*y*iy*y*", names, &offsets, &classes, &targets, &n_classes,
                                     &token_class, &accepting))
        return -1;
    int status = -1;
    Py_ssize_t transitions = 0, vocab_size = 0;
    if (accepting.len < 1 || accepting.len >= INT32_MAX || n_classes < 1) {
        PyErr_SetString(PyExc_ValueError, "an automaton has at least one state and one class");
        goto done;
    }
    k->n_states = (int32_t)accepting.len;
    k->n_classes = n_classes;
    if (!(k->row_offsets = int32_copy(&offsets, (Py_ssize_t)k->n_states + 1, NULL))
        || !(k->row_classes = int32_copy(&classes, -1, &transitions))
        || !(k->row_targets = int32_copy(&targets, transitions, NULL))
        || !(k->token_class = int32_copy(&token_class, -1, &vocab_size))) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "offsets must be int32 [states + 1], classes and targets int32 "
                            "[transitions] alike, token_class int32 [V], accepting bool [states]");
        goto done;
    }
    if (vocab_size < 1) {
        PyErr_SetString(PyExc_ValueError, "token_class must not be empty");
        goto done;
    }
    if (!transitions_valid(k, transitions)) {
        PyErr_SetString(PyExc_ValueError, "the transitions must be by state, classes ascending within each, "
                        "every class and target in range");
        goto done;
    }
    k->vocab_size = (int32_t)vocab_size;
    k->row_words = (k->vocab_size + 31) / 32;
    for (int32_t t = 0; t < k->vocab_size; t++)
        if (k->token_class[t] < 0 || k->token_class[t] >= k->n_classes) {
            PyErr_SetString(PyExc_ValueError, "token_class holds a class outside the automaton's");
            goto done;
        }
    int32_t words = (k->n_states + 63) / 64;
    k->scratch = calloc(words, sizeof(uint64_t));
    k->class_scratch = calloc((k->n_classes + 63) / 64, sizeof(uint64_t));
    accepting_bits = calloc(words, sizeof(uint64_t));
    if (!k->scratch || !k->class_scratch || !accepting_bits) { no_memory(); goto done; }
    for (int32_t q = 0; q < k->n_states; q++)
        if (((const uint8_t *)accepting.buf)[q]) bit_set(accepting_bits, q);
    /* the stores first: the arcs are laid out in their word counts */
    if (start_sets(k, accepting_bits) < 0 || build_arcs(k) < 0 || build_class_tokens(k) < 0) goto done;
    k->ready = 1;
    status = 0;
done:
    free(accepting_bits);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&classes);
    PyBuffer_Release(&targets);
    PyBuffer_Release(&token_class);
    PyBuffer_Release(&accepting);
    return status;
}

static int check_set(const Kernel *k, int32_t id) {
    if (id < 0 || id >= k->sets.count) {
        PyErr_Format(PyExc_ValueError, "%d is not the number of a state set", id);
        return -1;
    }
    return 0;
}

/* Into scratch (zeroed): every neighbour along `a` of the members of `members`, that is their successors
 * (a = out) or predecessors (a = in) by any token. */
static void fill_neighbours(Kernel *k, const Arcs *a, const uint64_t *members) {
    int32_t SW = k->sets.words;
    if (a->neighbour_union.data) {
        union_over(&a->neighbour_union, k->scratch, members, SW);
        return;
    }
    FOR_MEMBERS(members, SW, q) {
        if (a->neighbours) {
            or_neighbours(k->scratch, a, q, SW);
        } else {
            for (int32_t i = a->offsets[q]; i < a->offsets[q + 1]; i++) bit_set(k->scratch, a->ends[i]);
        }
    }
}

/* The state after a token of class c in state q, or DEAD: a binary search of q's transitions. */
static inline int32_t transition(const Kernel *k, int32_t q, int32_t c) {
    int32_t lo = k->row_offsets[q], end = k->row_offsets[q + 1], hi = end;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (k->row_classes[mid] < c) lo = mid + 1; else hi = mid;
    }
    return lo < end && k->row_classes[lo] == c ? k->row_targets[lo] : DEAD;
}

/* Into scratch (zeroed): the states reached from `members` by one token of class `c` (ANY_CLASS: of any).
 * By the class's own transitions when it has fewer than `members` has states (a property name's tokens
 * lead from a handful of states, a set in an open stretch holds hundreds), else by a look-up per member. */
static void fill_post(Kernel *k, const uint64_t *members, int32_t c) {
    if (c == ANY_CLASS) {
        fill_neighbours(k, &k->out, members);
        return;
    }
    int32_t first = k->by_class_offsets[c], end = k->by_class_offsets[c + 1];
    if (end - first < popcount(members, k->sets.words)) {
        for (int32_t e = first; e < end; e++)
            if (bit_test(members, k->by_class_source[e])) bit_set(k->scratch, k->by_class_target[e]);
        return;
    }
    FOR_MEMBERS(members, k->sets.words, q) {
        int32_t t = transition(k, q, c);
        if (t != DEAD) bit_set(k->scratch, t);
    }
}

/* Into scratch (zeroed): the states from which one token of class `c` (ANY_CLASS: some token) leads into
 * `members`. */
static void fill_pre(Kernel *k, const uint64_t *members, int32_t c) {
    if (c == ANY_CLASS) {
        fill_neighbours(k, &k->in, members);
        return;
    }
    /* the class's own transitions: fewer, and no class test per arc */
    for (int32_t e = k->by_class_offsets[c]; e < k->by_class_offsets[c + 1]; e++)
        if (bit_test(members, k->by_class_target[e])) bit_set(k->scratch, k->by_class_source[e]);
}

/* fill(members of set `id`, c) as an interned set, memoized per (set, class) in `memo`. */
static int memoized(Kernel *k, Memo *memo, void (*fill)(Kernel *, const uint64_t *, int32_t), int32_t id, int32_t c,
                    int32_t *out) {
    uint64_t key = pair_key(id, c + 1);
    if ((*out = memo_get(memo, key)) >= 0) return 0;
    if (check_set(k, id) < 0) return -1;
    memset(k->scratch, 0, (size_t)k->sets.words * sizeof(uint64_t));
    fill(k, store_get(&k->sets, id), c);
    if (intern_scratch(k, out) < 0 || memo_put(memo, key, *out) < 0) return -1;
    return 0;
}

static int post(Kernel *k, int32_t id, int32_t c, int32_t *out) { return memoized(k, &k->post, fill_post, id, c, out); }
static int pre(Kernel *k, int32_t id, int32_t c, int32_t *out) { return memoized(k, &k->pre, fill_pre, id, c, out); }

/* OR an arc's class set (its number) into class_scratch, once per distinct set in a classes_between call. */
static inline void add_arc_classes(Kernel *k, int32_t id) {
    if (k->arc_class_seen[id] == k->pair_epoch) return;
    k->arc_class_seen[id] = k->pair_epoch;
    or_words(k->class_scratch, store_get(&k->arc_class_sets, id), k->arc_class_sets.words);
}

/* Into class_scratch: the classes of the arcs of state q along `a` whose other end lies in `far`. */
static inline void add_arcs_toward(Kernel *k, const Arcs *a, int32_t q, const uint64_t *far) {
    for (int32_t i = a->offsets[q]; i < a->offsets[q + 1]; i++)
        if (bit_test(far, a->ends[i])) add_arc_classes(k, a->classes[i]);
}

/* Whether class_scratch already holds every class of state q's arcs along `a`: then whichever of them lead
 * into `far`, they add nothing.  Across an open stretch the states that contribute whole class sets mostly
 * cover those of the risky ones, and this test costs a few words where their arcs cost dozens of tests. */
static inline int classes_known(const Kernel *k, const Arcs *a, int32_t q) {
    const uint64_t *own = store_get(&k->arc_class_sets, a->state_classes[q]);
    for (int32_t w = 0; w < k->arc_class_sets.words; w++)
        if (own[w] & ~k->class_scratch[w]) return 0;
    return 1;
}

/* Into class_scratch: the classes of the arcs between the states of `near` and those of `far`, walked from
 * `near` along `a`.  `risky`, when given, holds every member of `near` with an arc that misses `far`; the
 * others contribute their whole class set, all at once over the union table, and only the risky ones have
 * their arcs tested one by one.  Without it, a member first checks whether its neighbours all lie in `far`. */
static void classes_across(Kernel *k, const Arcs *a, const uint64_t *near, const uint64_t *far, const uint64_t *risky) {
    int32_t SW = k->sets.words;
    if (risky && a->class_union.data) {
        for (int32_t w = 0; w < SW; w++) k->scratch[w] = near[w] & ~risky[w];
        union_over(&a->class_union, k->class_scratch, k->scratch, SW);
        for (int32_t w = 0; w < SW; w++) k->scratch[w] = near[w] & risky[w];
        FOR_MEMBERS(k->scratch, SW, q)
            if (!classes_known(k, a, q)) add_arcs_toward(k, a, q, far);
        return;
    }
    FOR_MEMBERS(near, SW, q) {
        if (classes_known(k, a, q)) continue;
        int whole = risky ? !bit_test(risky, q) : a->neighbours && neighbours_within(a, q, far, SW);
        if (whole) add_arc_classes(k, a->state_classes[q]);
        else add_arcs_toward(k, a, q, far);
    }
}

/* The number of the set of neighbours (pre: predecessors, else successors) of the states in `x` and not in
 * `y`, or -1 with an error set. */
static int32_t neighbours_of_difference(Kernel *k, int32_t x, int32_t y, int predecessors) {
    const uint64_t *in = store_get(&k->sets, x), *out = store_get(&k->sets, y);
    for (int32_t w = 0; w < k->sets.words; w++) k->scratch[w] = in[w] & ~out[w];
    int32_t difference, neighbours;
    if (intern_scratch(k, &difference) < 0
        || (predecessors ? pre : post)(k, difference, ANY_CLASS, &neighbours) < 0)
        return -1;
    return neighbours;
}

static int32_t difference_size(const Kernel *k, int32_t x, int32_t y) {
    const uint64_t *in = store_get(&k->sets, x), *out = store_get(&k->sets, y);
    int32_t n = 0;
    for (int32_t w = 0; w < k->sets.words; w++) n += popcount64(in[w] & ~out[w]);
    return n;
}

/* The number of the class set of the tokens of open position i, from `sources` (F[i] ∩ B[i]) into
 * `targets` (F[i + 1] ∩ B[i + 1]), or -1 with an error set.  Every arc leaving a source lands in F[i + 1]
 * and every arc entering a target starts in B[i], so an arc between the two sides is missed only where it
 * leads into the *stranded* states F[i + 1] \ B[i + 1] (reached, but the rest of the canvas cannot be
 * completed from them) or comes from the *unreached* ones B[i] \ F[i].  Near a decided token on the right
 * few states are unreached, near one on the left few are stranded: the smaller difference marks the few
 * risky states (its predecessors among the sources, or its successors among the targets), and every
 * other state of that side contributes its whole class set.  When both differences are large, walking the
 * arcs of the smaller side directly is cheaper. */
static int32_t classes_between(Kernel *k, int32_t sources, int32_t targets, int32_t reached_before,
                               int32_t completing_before, int32_t reached_after, int32_t completing_after) {
    int32_t SW = k->sets.words;
    memset(k->class_scratch, 0, (size_t)k->class_sets.words * sizeof(uint64_t));
    if (++k->pair_epoch == 0) {  /* wrapped: no set counts as seen */
        memset(k->arc_class_seen, 0, (size_t)k->arc_class_sets.count * sizeof(uint32_t));
        k->pair_epoch = 1;
    }
    int32_t n_from = popcount(store_get(&k->sets, sources), SW), n_into = popcount(store_get(&k->sets, targets), SW);
    int32_t stranded = difference_size(k, reached_after, completing_after);
    int32_t unreached = difference_size(k, completing_before, reached_before);
    const Arcs *along = n_from <= n_into ? &k->out : &k->in;
    int32_t risky = -1;  /* none: walk every state of the side */
    if (stranded <= unreached && stranded < n_into && n_from <= 4 * n_into) {
        along = &k->out;
        if ((risky = stranded ? neighbours_of_difference(k, reached_after, completing_after, 1) : k->empty) < 0)
            return -1;
    } else if (unreached < stranded && unreached < n_from && n_into <= 4 * n_from) {
        along = &k->in;
        if ((risky = unreached ? neighbours_of_difference(k, completing_before, reached_before, 0) : k->empty) < 0)
            return -1;
    }
    /* fetched after the interning above, which may have moved the store */
    const uint64_t *from = store_get(&k->sets, sources), *into = store_get(&k->sets, targets);
    const uint64_t *risky_states = risky >= 0 ? store_get(&k->sets, risky) : NULL;
    int forward = along == &k->out;
    classes_across(k, along, forward ? from : into, forward ? into : from, risky_states);
    int32_t classes = store_intern(&k->class_sets, k->class_scratch);
    if (classes < 0) no_memory();
    return classes;
}

/* What spreading class c over a row costs, in word operations: a vector OR per 4 words of its precomputed
 * row, or one per token. */
static inline int64_t spread_cost(const Kernel *k, int32_t c) {
    return k->class_rows[c] ? k->row_words / 4 : k->class_offsets[c + 1] - k->class_offsets[c];
}

/* Set (or, with clear, unset) the bits of class c's tokens in row.  Classes partition the vocabulary, so
 * unsetting one class's tokens leaves every other class's bits as they were. */
static void spread_class(const Kernel *k, uint32_t *row, int32_t c, int clear) {
    const uint32_t *own = k->class_rows[c];
    if (own) {
        if (clear) for (int32_t w = 0; w < k->row_words; w++) row[w] &= ~own[w];
        else for (int32_t w = 0; w < k->row_words; w++) row[w] |= own[w];
        return;
    }
    for (int32_t i = k->class_offsets[c]; i < k->class_offsets[c + 1]; i++) {
        int32_t t = k->class_tokens[i];
        if (clear) row[t >> 5] &= ~((uint32_t)1 << (t & 31));
        else row[t >> 5] |= (uint32_t)1 << (t & 31);
    }
}

/* The packed vocabulary row of class set `classes`, memoized per class set: many pairs of state sets allow
 * the same classes, and spreading classes over the vocabulary costs more than finding them.  `like`, when
 * not -1, is a class set whose row may be at hand (what the canvas row held before): after a decision a
 * row's classes are a subset of its old ones, and when the classes dropped cost less to unset than the
 * kept ones to set, the new row starts from a copy of the old. */
static const uint32_t *class_row(Kernel *k, int32_t classes, int32_t like) {
    if (classes >= k->rows_capacity) {
        Py_ssize_t capacity = k->class_sets.capacity;
        uint32_t **rows = realloc(k->rows, (size_t)capacity * sizeof(uint32_t *));
        if (!rows) { no_memory(); return NULL; }
        memset(rows + k->rows_capacity, 0, (size_t)(capacity - k->rows_capacity) * sizeof(uint32_t *));
        k->rows = rows;
        k->rows_capacity = capacity;
    }
    if (k->rows[classes]) return k->rows[classes];
    size_t bytes = (size_t)k->row_words * sizeof(uint32_t);
    if (k->rows_bytes + bytes > ROW_BYTES_LIMIT) {
        for (Py_ssize_t i = 0; i < k->rows_capacity; i++) { free(k->rows[i]); k->rows[i] = NULL; }
        k->rows_bytes = 0;
    }
    int32_t CW = k->class_sets.words;
    const uint64_t *allowed = store_get(&k->class_sets, classes);
    const uint32_t *base = like >= 0 && like < k->rows_capacity ? k->rows[like] : NULL;
    uint64_t *dropped = k->class_scratch;  /* free again: the classes are interned */
    if (base) {
        const uint64_t *before = store_get(&k->class_sets, like);
        int64_t fresh = 0, trimmed = k->row_words / 4;
        for (int32_t w = 0; w < CW; w++) {
            if (allowed[w] & ~before[w]) { base = NULL; break; }
            dropped[w] = before[w] & ~allowed[w];
        }
        if (base) {
            FOR_MEMBERS(allowed, CW, c) fresh += spread_cost(k, c);
            FOR_MEMBERS(dropped, CW, c) trimmed += spread_cost(k, c);
            if (trimmed >= fresh) base = NULL;
        }
    }
    uint32_t *row = malloc(bytes);
    if (!row) { no_memory(); return NULL; }
    if (base) {
        memcpy(row, base, bytes);
        FOR_MEMBERS(dropped, CW, c) spread_class(k, row, c, 1);
    } else {
        memset(row, 0, bytes);
        FOR_MEMBERS(allowed, CW, c) spread_class(k, row, c, 0);
    }
    k->rows_bytes += bytes;
    return k->rows[classes] = row;
}

/* The states of both sets: interned, or -1 with an error set. */
static int32_t intersection(Kernel *k, int32_t a, int32_t b) {
    if (check_set(k, a) < 0 || check_set(k, b) < 0) return -1;
    uint64_t key = pair_key(a, b);
    if (key == k->last_intersection_key) return k->last_intersection;
    const uint64_t *x = store_get(&k->sets, a), *y = store_get(&k->sets, b);
    for (int32_t w = 0; w < k->sets.words; w++) k->scratch[w] = x[w] & y[w];
    int32_t id;
    if (intern_scratch(k, &id) < 0) return -1;
    k->last_intersection_key = key;
    return k->last_intersection = id;
}

/* The class set of open position i, or -1 with an error set; it depends on (F[i], B[i + 1]) alone, the
 * key of a first memo.  Its tokens lead from F[i] into B[i + 1], but only the states on some admissible
 * path matter: those of F[i] that some token takes into B[i + 1] (that is F[i] ∩ B[i], since
 * B[i] = pre(B[i + 1], any) at an open position) and those of B[i + 1] some token reaches from F[i]
 * (B[i + 1] ∩ F[i + 1]). Far fewer states than F or B alone, so the arcs between them cost less, and
 * pairs that differ only off those paths share the second memo's entry. */
static int32_t open_classes(Kernel *k, const int32_t *F, const int32_t *B, Py_ssize_t i) {
    uint64_t position_key = pair_key(F[i], B[i + 1]);
    int32_t classes = memo_get(&k->position_classes, position_key);
    if (classes >= 0) return classes;
    int32_t sources = intersection(k, F[i], B[i]);
    if (sources < 0) return -1;
    int32_t targets = intersection(k, F[i + 1], B[i + 1]);
    if (targets < 0) return -1;
    uint64_t key = pair_key(sources, targets);
    if ((classes = memo_get(&k->pair_classes, key)) < 0) {
        classes = classes_between(k, sources, targets, F[i], B[i], F[i + 1], B[i + 1]);
        if (classes < 0 || memo_put(&k->pair_classes, key, classes) < 0) return classes < 0 ? -1 : no_memory();
    }
    return memo_put(&k->position_classes, position_key, classes) < 0 ? no_memory() : classes;
}

/* ------------------------------------------------------------------------------ Python methods */

static int check_ready(const Kernel *k) {
    if (!k->ready) {
        PyErr_SetString(PyExc_RuntimeError, "the kernel is not initialised");
        return -1;
    }
    return 0;
}

/* A canvas's int32 array argument of `count` entries (count < 0: any), writable or not. */
static int int32_array(Py_buffer *view, Py_ssize_t count, const char *name) {
    if (view->len % 4 || (count >= 0 && view->len / 4 != count)) {
        PyErr_Format(PyExc_ValueError, "%s must be an int32 array of %zd entries", name, count);
        return -1;
    }
    return 0;
}

/* The length L of a canvas given as int32 arrays (tokens [L], forward and backward sets [L + 1]), or -1. */
static Py_ssize_t canvas_length(Py_buffer *tokens, Py_buffer *forward, Py_buffer *backward) {
    Py_ssize_t L = tokens->len / 4;
    if (int32_array(tokens, -1, "tokens") < 0 || int32_array(forward, L + 1, "forward") < 0
        || int32_array(backward, L + 1, "backward") < 0)
        return -1;
    return L;
}

static int token_class_at(const Kernel *k, const int32_t *tokens, Py_ssize_t i, int32_t *out) {
    int32_t token = tokens[i];
    if (token == OPEN) { *out = ANY_CLASS; return 0; }
    if (token < 0 || token >= k->vocab_size) {
        PyErr_Format(PyExc_ValueError, "token id %d outside the vocabulary (size %d)", token, k->vocab_size);
        return -1;
    }
    *out = k->token_class[token];
    return 0;
}

static PyObject *kernel_single(Kernel *k, PyObject *arg) {
    if (check_ready(k) < 0) return NULL;
    long state = PyLong_AsLong(arg);
    if (state == -1 && PyErr_Occurred()) return NULL;
    if (state < 0 || state >= k->n_states) return PyErr_Format(PyExc_ValueError, "%ld is not a state", state);
    memset(k->scratch, 0, (size_t)k->sets.words * sizeof(uint64_t));
    bit_set(k->scratch, (int32_t)state);
    int32_t id;
    if (intern_scratch(k, &id) < 0) return NULL;
    return PyLong_FromLong(id);
}

static PyObject *kernel_members(Kernel *k, PyObject *arg) {
    if (check_ready(k) < 0) return NULL;
    long id = PyLong_AsLong(arg);
    if (id == -1 && PyErr_Occurred()) return NULL;
    if (check_set(k, (int32_t)id) < 0) return NULL;
    PyObject *result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)k->sets.words * 8);
    if (!result) return NULL;
    uint8_t *bytes = (uint8_t *)PyBytes_AS_STRING(result);
    const uint64_t *words = store_get(&k->sets, (int32_t)id);
    for (int32_t w = 0; w < k->sets.words; w++)
        for (int j = 0; j < 8; j++) bytes[w * 8 + j] = (uint8_t)(words[w] >> (8 * j));
    return result;
}

static PyObject *kernel_intersects(Kernel *k, PyObject *args) {
    int a, b;
    if (check_ready(k) < 0 || !PyArg_ParseTuple(args, "ii", &a, &b)) return NULL;
    if (check_set(k, a) < 0 || check_set(k, b) < 0) return NULL;
    const uint64_t *x = store_get(&k->sets, a), *y = store_get(&k->sets, b);
    for (int32_t w = 0; w < k->sets.words; w++)
        if (x[w] & y[w]) Py_RETURN_TRUE;
    Py_RETURN_FALSE;
}

static PyObject *set_operation(Kernel *k, PyObject *args, int (*operation)(Kernel *, int32_t, int32_t, int32_t *)) {
    int id, c, out;
    if (check_ready(k) < 0 || !PyArg_ParseTuple(args, "ii", &id, &c)) return NULL;
    if (c < ANY_CLASS || c >= k->n_classes) return PyErr_Format(PyExc_ValueError, "%d is not a token class", c);
    if (operation(k, id, c, &out) < 0) return NULL;
    return PyLong_FromLong(out);
}

static PyObject *kernel_post(Kernel *k, PyObject *args) { return set_operation(k, args, post); }
static PyObject *kernel_pre(Kernel *k, PyObject *args) { return set_operation(k, args, pre); }

/* Recompute a canvas's forward sets (set[i + 1] = post(set[i], ...)) after the `n` changed positions, or its
 * backward sets (set[i] = pre(set[i + 1], ...)) before them, walking the changes (strictly ascending, checked
 * by the callers) up or down, and skipping stretches that settle: a recomputed entry equal to the old one
 * ends the stretch, and the sweep resumes at the next change beyond it.  -1 with an error set. */
static int sweep_changes(Kernel *k, int32_t *set, const int32_t *token, Py_ssize_t L, const int32_t *change,
                         Py_ssize_t n, int forward) {
#define NTH_CHANGE(j) change[forward ? (j) : n - 1 - (j)]  /* the changes in the sweep's direction */
    Py_ssize_t next = 0;
    Py_ssize_t i = n ? NTH_CHANGE(next++) : -1;
    while (n && (forward ? i < L : i >= 0)) {
        int32_t c, updated;
        if (token_class_at(k, token, i, &c) < 0) return -1;
        int32_t *target = forward ? &set[i + 1] : &set[i];
        if ((forward ? post(k, set[i], c, &updated) : pre(k, set[i + 1], c, &updated)) < 0) return -1;
        if (updated == *target) {
            while (next < n && (forward ? NTH_CHANGE(next) <= i : NTH_CHANGE(next) >= i)) next++;
            if (next == n) break;
            i = NTH_CHANGE(next++);
            continue;
        }
        *target = updated;
        i += forward ? 1 : -1;
    }
#undef NTH_CHANGE
    return 0;
}

/* sweep(sets, tokens, changed, forward): sweep_changes over a canvas's sets array ([L + 1]) after (forward)
 * or before the changed positions. */
static PyObject *kernel_sweep(Kernel *k, PyObject *args) {
    Py_buffer sets, tokens, changed;
    int forward;
    if (check_ready(k) < 0 || !PyArg_ParseTuple(args, "w*y*y*p", &sets, &tokens, &changed, &forward)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t L = tokens.len / 4, n = changed.len / 4;
    if (int32_array(&tokens, -1, "tokens") < 0 || int32_array(&sets, L + 1, "sets") < 0
        || int32_array(&changed, -1, "changed") < 0)
        goto done;
    const int32_t *change = changed.buf;
    for (Py_ssize_t j = 0; j < n; j++) {
        if (change[j] < 0 || change[j] >= L) {
            PyErr_Format(PyExc_IndexError, "position %d outside a canvas of length %zd", change[j], L);
            goto done;
        }
        if (j && change[j] <= change[j - 1]) {
            PyErr_SetString(PyExc_ValueError, "changed positions must be strictly ascending");
            goto done;
        }
    }
    if (sweep_changes(k, sets.buf, tokens.buf, L, change, n, forward) < 0) goto done;
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&sets);
    PyBuffer_Release(&tokens);
    PyBuffer_Release(&changed);
    return result;
}

/* One change of decide(): `position` and the token id (OPEN to reopen), or -1 with an error set. */
static int read_change(const Kernel *k, PyObject *key, PyObject *value, Py_ssize_t L, int32_t *position,
                       int32_t *token) {
    Py_ssize_t p = PyNumber_AsSsize_t(key, PyExc_IndexError);
    if (p == -1 && PyErr_Occurred()) return -1;
    if (p < 0 || p >= L) {
        PyErr_Format(PyExc_IndexError, "position %zd outside a canvas of length %zd", p, L);
        return -1;
    }
    *position = (int32_t)p;
    if (value == Py_None) {
        *token = OPEN;
        return 0;
    }
    Py_ssize_t t = PyNumber_AsSsize_t(value, PyExc_ValueError);
    if (t == -1 && PyErr_Occurred()) return -1;
    if (t < 0 || t >= k->vocab_size) {
        PyErr_Format(PyExc_ValueError, "token id %zd outside the vocabulary (size %d)", t, k->vocab_size);
        return -1;
    }
    *token = (int32_t)t;
    return 0;
}

static int ascending(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* decide(tokens, token_ids, forward, backward, changes): a canvas's decide in one call (its Python loop
 * cost more than the sweeps of a typical step).  `changes` maps positions to token ids or None (reopen);
 * all are checked before any is applied, so a bad one leaves the canvas as it was.  Then `tokens` (the
 * canvas's list) and `token_ids` take them, and both sweeps run from the changed positions. */
static PyObject *kernel_decide(Kernel *k, PyObject *args) {
    PyObject *tokens, *changes;
    Py_buffer ids, forward, backward;
    if (check_ready(k) < 0
        || !PyArg_ParseTuple(args, "O!w*w*w*O!", &PyList_Type, &tokens, &ids, &forward, &backward, &PyDict_Type,
                             &changes))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t L = PyList_GET_SIZE(tokens), n = PyDict_GET_SIZE(changes), j = 0, at = 0;
    int32_t *change = PyMem_Malloc((size_t)(n ? n : 1) * 2 * sizeof(int32_t));
    if (!change) {
        PyErr_NoMemory();
        goto done;
    }
    if (int32_array(&ids, L, "token_ids") < 0 || int32_array(&forward, L + 1, "forward") < 0
        || int32_array(&backward, L + 1, "backward") < 0)
        goto done;
    PyObject *key, *value;
    int32_t *token_of = change + n;
    while (PyDict_Next(changes, &at, &key, &value)) {
        if (j == n) {  /* an __index__ grew the dict under us */
            PyErr_SetString(PyExc_RuntimeError, "changes changed size during decide");
            goto done;
        }
        if (read_change(k, key, value, L, &change[j], &token_of[j]) < 0) goto done;
        j++;
    }
    n = j;
    int32_t *token_id = ids.buf;
    for (j = 0; j < n; j++) {
        PyObject *item = token_of[j] == OPEN ? Py_NewRef(Py_None) : PyLong_FromLong(token_of[j]);
        if (!item) goto done;
        PyList_SetItem(tokens, change[j], item);  /* steals item, releases the old one */
        token_id[change[j]] = token_of[j];
    }
    qsort(change, (size_t)n, sizeof(int32_t), ascending);
    if (sweep_changes(k, forward.buf, token_id, L, change, n, 1) < 0
        || sweep_changes(k, backward.buf, token_id, L, change, n, 0) < 0)
        goto done;
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(change);
    PyBuffer_Release(&ids);
    PyBuffer_Release(&forward);
    PyBuffer_Release(&backward);
    return result;
}

/* Write one mask row: packed int32 words (bit t % 32 of word t / 32) or one byte per token. */
static void write_row(const Kernel *k, void *out, const uint32_t *row, int packed) {
    if (packed) {
        memcpy(out, row, (size_t)k->row_words * sizeof(uint32_t));
        return;
    }
    uint8_t *bytes = out;
    for (int32_t t = 0; t < k->vocab_size; t++) bytes[t] = (uint8_t)((row[t >> 5] >> (t & 31)) & 1u);
}

static void write_token(const Kernel *k, void *out, int32_t token, int packed) {
    if (packed) {
        memset(out, 0, (size_t)k->row_words * sizeof(uint32_t));
        ((uint32_t *)out)[token >> 5] = (uint32_t)1 << (token & 31);
    } else {
        memset(out, 0, (size_t)k->vocab_size);
        ((uint8_t *)out)[token] = 1;
    }
}

/* fill_rows(out, keys, forward, backward, tokens, packed): bring the mask buffer `out` ([L, row]) up to date.
 * `keys` (int64 [L, 3], all -1 at first: no key or content is -1) remembers per row its key,
 * (forward[i], backward[i + 1]) for an open position or (DECIDED_KEY, token) for a decided one, and its
 * content, the class set of an open row or -2 - token for a decided one.  Only rows whose key changed are
 * looked at again, and only those whose content changed too are rewritten: after a decision the sets
 * around it change at many positions, their allowed classes at few. */
static PyObject *kernel_fill_rows(Kernel *k, PyObject *args) {
    Py_buffer out, keys, forward, backward, tokens;
    int packed;
    if (check_ready(k) < 0
        || !PyArg_ParseTuple(args, "w*w*y*y*y*p", &out, &keys, &forward, &backward, &tokens, &packed))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t L = canvas_length(&tokens, &forward, &backward);
    size_t width = packed ? (size_t)k->row_words * 4 : (size_t)k->vocab_size;
    if (L < 0) goto done;
    if ((size_t)out.len != (size_t)L * width || keys.len != L * 24) {
        PyErr_SetString(PyExc_ValueError, "out must be [L, row width] and keys int64 [L, 3]");
        goto done;
    }
    const int32_t *token = tokens.buf, *F = forward.buf, *B = backward.buf;
    int64_t *key = keys.buf;
    uint8_t *rows = out.buf;
    for (Py_ssize_t i = 0; i < L; i++) {
        int32_t c;
        if (token_class_at(k, token, i, &c) < 0) goto done;
        int64_t first = token[i] == OPEN ? F[i] : DECIDED_KEY, second = token[i] == OPEN ? B[i + 1] : token[i];
        int64_t *own = key + 3 * i;
        if (own[0] == first && own[1] == second) continue;
        int32_t classes = token[i] == OPEN ? open_classes(k, F, B, i) : 0;
        if (classes < 0) goto done;
        int64_t content = token[i] == OPEN ? classes : -2 - (int64_t)token[i];
        if (own[2] != content) {
            if (token[i] == OPEN) {
                const uint32_t *row = class_row(k, classes, own[2] >= 0 ? (int32_t)own[2] : -1);
                if (!row) goto done;
                write_row(k, rows + i * width, row, packed);
            } else {
                write_token(k, rows + i * width, token[i], packed);
            }
            own[2] = content;
        }
        own[0] = first;  /* only once the row holds what the key says: an error leaves it to be redone */
        own[1] = second;
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&out);
    PyBuffer_Release(&keys);
    PyBuffer_Release(&forward);
    PyBuffer_Release(&backward);
    PyBuffer_Release(&tokens);
    return result;
}

/* write_row(out, forward, backward, tokens, position, packed): the mask row of one open position. */
static PyObject *kernel_write_row(Kernel *k, PyObject *args) {
    Py_buffer out, forward, backward, tokens;
    Py_ssize_t i;
    int packed;
    if (check_ready(k) < 0
        || !PyArg_ParseTuple(args, "w*y*y*y*np", &out, &forward, &backward, &tokens, &i, &packed))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t L = canvas_length(&tokens, &forward, &backward);
    if (L < 0) goto done;
    if ((size_t)out.len != (packed ? (size_t)k->row_words * 4 : (size_t)k->vocab_size)) {
        PyErr_SetString(PyExc_ValueError, "out must hold exactly one row");
        goto done;
    }
    if (i < 0 || i >= L || ((const int32_t *)tokens.buf)[i] != OPEN) {
        PyErr_Format(PyExc_IndexError, "position %zd is not an open position of the canvas", i);
        goto done;
    }
    int32_t classes = open_classes(k, forward.buf, backward.buf, i);
    const uint32_t *row = classes < 0 ? NULL : class_row(k, classes, -1);
    if (!row) goto done;
    write_row(k, out.buf, row, packed);
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&out);
    PyBuffer_Release(&forward);
    PyBuffer_Release(&backward);
    PyBuffer_Release(&tokens);
    return result;
}

/* Drop every interned set and all that is keyed by their numbers, handing the memory back; the empty,
 * accepting and live sets keep their numbers, every other number is void from here on. */
static PyObject *kernel_forget(Kernel *k, PyObject *Py_UNUSED(unused)) {
    if (check_ready(k) < 0) return NULL;
    size_t bytes = (size_t)k->sets.words * sizeof(uint64_t);
    uint64_t *accepting = malloc(bytes);
    if (!accepting) return PyErr_NoMemory();
    memcpy(accepting, store_get(&k->sets, k->accepting), bytes);
    release_sets(k);
    int status = start_sets(k, accepting);
    free(accepting);
    k->epoch++;
    if (status < 0) {
        k->ready = 0;  /* out of memory half way: unusable rather than wrong */
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *kernel_held_bytes(Kernel *k, void *Py_UNUSED(closure)) {
    if (check_ready(k) < 0) return NULL;
    const Memo *memos[] = {&k->post, &k->pre, &k->pair_classes, &k->position_classes};
    size_t bytes = store_bytes(&k->sets) + store_bytes(&k->class_sets) + k->rows_bytes
                   + (size_t)k->rows_capacity * sizeof(uint32_t *);
    for (size_t i = 0; i < sizeof memos / sizeof *memos; i++) bytes += (size_t)memos[i]->size * sizeof(MemoSlot);
    return PyLong_FromSize_t(bytes);
}

static PyObject *kernel_get_int(Kernel *k, void *field) {
    if (check_ready(k) < 0) return NULL;
    return PyLong_FromLong(*(int32_t *)((char *)k + (size_t)field));
}

static PyMethodDef kernel_methods[] = {
    {"single", (PyCFunction)kernel_single, METH_O, "The number of the set holding just one state."},
    {"members", (PyCFunction)kernel_members, METH_O,
     "A set's members as bytes, bit q % 8 of byte q // 8 for state q (numpy: unpackbits, bitorder='little')."},
    {"intersects", (PyCFunction)kernel_intersects, METH_VARARGS, "intersects(a, b): whether two sets share a state."},
    {"post", (PyCFunction)kernel_post, METH_VARARGS,
     "post(set, token_class): states reached by one token of the class (-1: of any class)."},
    {"pre", (PyCFunction)kernel_pre, METH_VARARGS,
     "pre(set, token_class): states from which one token of the class (-1: some token) enters the set."},
    {"decide", (PyCFunction)kernel_decide, METH_VARARGS,
     "decide(tokens, token_ids, forward, backward, changes): apply {position: token id or None} to a canvas, "
     "checking all first, then sweep from the changes."},
    {"sweep", (PyCFunction)kernel_sweep, METH_VARARGS,
     "sweep(sets, tokens, changed, forward): update a canvas's forward or backward sets in place."},
    {"fill_rows", (PyCFunction)kernel_fill_rows, METH_VARARGS,
     "fill_rows(out, keys, forward, backward, tokens, packed): rewrite the mask rows whose key changed."},
    {"write_row", (PyCFunction)kernel_write_row, METH_VARARGS,
     "write_row(out, forward, backward, tokens, position, packed): the mask row of one open position."},
    {"forget", (PyCFunction)kernel_forget, METH_NOARGS,
     "Drop the interned sets, memos and rows (a new epoch): only the empty, accepting and live numbers stay valid."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef kernel_getset[] = {
    {"empty", (getter)kernel_get_int, NULL, "The empty set's number.", (void *)offsetof(Kernel, empty)},
    {"accepting", (getter)kernel_get_int, NULL, "The accepting states' number.", (void *)offsetof(Kernel, accepting)},
    {"live", (getter)kernel_get_int, NULL, "The number of the set of all states.", (void *)offsetof(Kernel, live)},
    {"epoch", (getter)kernel_get_int, NULL, "How many times the kernel forgot its sets.", (void *)offsetof(Kernel, epoch)},
    {"held_bytes", (getter)kernel_held_bytes, NULL,
     "Bytes held by the interned sets, memos and rows, which grow with use until `forget`.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject KernelType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "constrained._state_sets.Kernel",
    .tp_doc = "Kernel(offsets, classes, targets, n_classes, token_class, accepting): interned state sets of one "
              "token automaton (its transitions by state, classes ascending), their "
              "memoized operations, and the canvas sweeps and mask rows built on them.",
    .tp_basicsize = sizeof(Kernel),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)kernel_init,
    .tp_dealloc = (destructor)kernel_dealloc,
    .tp_methods = kernel_methods,
    .tp_getset = kernel_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_state_sets",
    "The compiled core of the canvas mask lattice: state-set algebra, canvas sweeps, mask rows.", -1, NULL,
};

PyMODINIT_FUNC PyInit__state_sets(void) {
    if (PyType_Ready(&KernelType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Kernel", (PyObject *)&KernelType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
