/* A regular expression determinized at byte level: parsed into a Thompson automaton, then subset construction
 * over byte classes.
 *
 * Why our own: outlines-core's Index over the single bytes determinizes a pattern through regex-automata, which
 * compiles the whole Unicode-aware machinery for patterns that, on a SQL schema, are half a megabyte of ASCII
 * classes; most of a first SQL bind went there. Here the bytes are first grouped into the classes the pattern
 * tells apart (tens), and each subset's successors are found per class, not per byte.
 *
 * What it reads: the part of regex-automata's syntax the compilers write, over ASCII classes: literals (UTF-8
 * sequences included), escapes of punctuation, \xHH, \x{H...}, \n, \t, \r; classes of ASCII characters and
 * ranges; groups (?:...) and (...); alternation; the quantifiers * + ? {n} {n,} {n,m}, lazy or not (the same
 * language). Anything else (negated classes, ., \d, \w, flags, anchors, class operators, non-ASCII classes,
 * malformed syntax) answers None, and the caller determinizes through outlines-core, which reads the whole
 * syntax and words the errors. A literal whose UTF-8 starts with 0xF4 (plane 16, where the caller's markers
 * live) answers None too.
 *
 * determinize(pattern bytes) -> None | (class_of_byte uint8 [256], table int32 [states, classes],
 * accepting uint8 [states], n_classes), as bytes; state 0 is the start, -1 a dead transition. Plain CPython
 * API, no numpy headers at build time.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_growable_arrays.h"

/* ------------------------------------------------------------------------------------------ Thompson automaton */

enum { BYTES, SPLIT, EMPTY, MATCH };
#define UNSUPPORTED (-2) /* a parse result: not this module's syntax */
#define NO_MEMORY (-3)

/* A node: BYTES reads a byte of set `set` then goes to out[0]; SPLIT goes to both outs; EMPTY to out[0]. While
 * a fragment is built, its dangling outs form a list through themselves (slot = node * 2 + which; a dangling
 * slot holds the next slot of its list, or -1). */
typedef struct {
    Int32List kind, out, set; /* out holds two per node */
    uint64_t (*sets)[4];
    Py_ssize_t n_sets;
    int32_t *set_slots; /* open addressing over the distinct sets, -1 free */
    Py_ssize_t slots_capacity;
    const unsigned char *p;
    Py_ssize_t at, n;
    int error;
} Parser;

typedef struct {
    int32_t start, head, tail; /* head/tail: the dangling slots' list (-1: none) */
} Fragment;

static int32_t new_node(Parser *ps, int kind, int32_t set) {
    int32_t id = (int32_t)ps->kind.n;
    if (int32_push(&ps->kind, kind) < 0 || int32_push(&ps->set, set) < 0 || int32_push(&ps->out, -1) < 0
        || int32_push(&ps->out, -1) < 0) {
        ps->error = NO_MEMORY;
        return -1;
    }
    return id;
}

static void patch(Parser *ps, int32_t slot, int32_t target) {
    while (slot >= 0) {
        int32_t next = ps->out.items[slot];
        ps->out.items[slot] = target;
        slot = next;
    }
}

static Fragment joined_lists(Parser *ps, Fragment a, Fragment b) { /* a's start, both lists */
    if (a.head < 0) return (Fragment){a.start, b.head, b.tail};
    if (b.head >= 0) {
        ps->out.items[a.tail] = b.head;
        a.tail = b.tail;
    }
    return a;
}

static Fragment concatenated(Parser *ps, Fragment a, Fragment b) {
    if (a.start < 0) return b; /* nothing yet */
    if (b.start < 0) return a;
    patch(ps, a.head, b.start);
    return (Fragment){a.start, b.head, b.tail};
}

static Fragment failed(Parser *ps, int error) {
    if (!ps->error) ps->error = error;
    return (Fragment){-1, -1, -1};
}

static uint64_t set_hash(const uint64_t bits[4]) {
    uint64_t h = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 4; i++) h = (h ^ bits[i]) * 0xBF58476D1CE4E5B9ull, h ^= h >> 29;
    return h;
}

/* The index of a set of bytes (four 64-bit words), the same for equal sets. */
static int32_t set_of(Parser *ps, const uint64_t bits[4]) {
    if (2 * (ps->n_sets + 1) > ps->slots_capacity) { /* grow both, and rehash */
        Py_ssize_t capacity = ps->slots_capacity ? 2 * ps->slots_capacity : 1024;
        int32_t *slots = PyMem_Malloc((size_t)capacity * sizeof(int32_t));
        void *sets = PyMem_Realloc(ps->sets, (size_t)(capacity / 2) * sizeof(ps->sets[0]));
        if (!slots || !sets) {
            PyMem_Free(slots);
            if (sets) ps->sets = sets;
            ps->error = NO_MEMORY;
            return -1;
        }
        ps->sets = sets;
        memset(slots, 0xff, (size_t)capacity * sizeof(int32_t));
        for (Py_ssize_t k = 0; k < ps->n_sets; k++) {
            Py_ssize_t i = (Py_ssize_t)(set_hash(ps->sets[k]) & (uint64_t)(capacity - 1));
            while (slots[i] >= 0) i = (i + 1) & (capacity - 1);
            slots[i] = (int32_t)k;
        }
        PyMem_Free(ps->set_slots);
        ps->set_slots = slots;
        ps->slots_capacity = capacity;
    }
    Py_ssize_t i = (Py_ssize_t)(set_hash(bits) & (uint64_t)(ps->slots_capacity - 1));
    for (; ps->set_slots[i] >= 0; i = (i + 1) & (ps->slots_capacity - 1))
        if (!memcmp(ps->sets[ps->set_slots[i]], bits, sizeof(ps->sets[0]))) return ps->set_slots[i];
    memcpy(ps->sets[ps->n_sets], bits, sizeof(ps->sets[0]));
    ps->set_slots[i] = (int32_t)ps->n_sets;
    return (int32_t)ps->n_sets++;
}

static Fragment bytes_fragment(Parser *ps, const uint64_t bits[4]) {
    int32_t set = set_of(ps, bits);
    if (set < 0) return failed(ps, NO_MEMORY);
    int32_t node = new_node(ps, BYTES, set);
    if (node < 0) return failed(ps, NO_MEMORY);
    return (Fragment){node, 2 * node, 2 * node};
}

static Fragment empty_fragment(Parser *ps) {
    int32_t node = new_node(ps, EMPTY, -1);
    if (node < 0) return failed(ps, NO_MEMORY);
    return (Fragment){node, 2 * node, 2 * node};
}

static int hex_digit(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* One character, escaped or not, as a code point; -1 if it is not one this module reads. A literal non-ASCII
 * character is its UTF-8 sequence in the pattern, decoded. */
static int32_t character(Parser *ps) {
    if (ps->at >= ps->n) return -1;
    int c = ps->p[ps->at++];
    if (c == '\\') {
        if (ps->at >= ps->n) return -1;
        c = ps->p[ps->at++];
        if (c == 'n') return '\n';
        if (c == 't') return '\t';
        if (c == 'r') return '\r';
        if (c == 'x') {
            int32_t value = 0;
            if (ps->at < ps->n && ps->p[ps->at] == '{') {
                ps->at++;
                int digits = 0;
                while (ps->at < ps->n && ps->p[ps->at] != '}') {
                    int d = hex_digit(ps->p[ps->at++]);
                    if (d < 0 || ++digits > 6) return -1;
                    value = value * 16 + d;
                }
                if (ps->at >= ps->n || !digits) return -1;
                ps->at++;
            } else {
                for (int i = 0; i < 2; i++) {
                    int d = ps->at < ps->n ? hex_digit(ps->p[ps->at++]) : -1;
                    if (d < 0) return -1;
                    value = value * 16 + d;
                }
            }
            return value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF) ? -1 : value;
        }
        /* punctuation stands for itself; letters, digits and the rest are classes or assertions here */
        return c < 0x80 && c > ' ' && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
                   ? c
                   : -1;
    }
    if (c < 0x80) return c;
    int length = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (!length || ps->at + length - 1 > ps->n) return -1;
    int32_t value = c & (0x3F >> (length - 1));
    for (int i = 1; i < length; i++) {
        int next = ps->p[ps->at++];
        if ((next & 0xC0) != 0x80) return -1;
        value = (value << 6) | (next & 0x3F);
    }
    return value;
}

/* A code point's UTF-8 bytes as a chain of one-byte nodes. */
static Fragment literal(Parser *ps, int32_t point) {
    unsigned char utf8[4];
    int length;
    if (point < 0x80) {
        utf8[0] = (unsigned char)point;
        length = 1;
    } else if (point < 0x800) {
        utf8[0] = (unsigned char)(0xC0 | (point >> 6));
        utf8[1] = (unsigned char)(0x80 | (point & 0x3F));
        length = 2;
    } else if (point < 0x10000) {
        utf8[0] = (unsigned char)(0xE0 | (point >> 12));
        utf8[1] = (unsigned char)(0x80 | ((point >> 6) & 0x3F));
        utf8[2] = (unsigned char)(0x80 | (point & 0x3F));
        length = 3;
    } else {
        utf8[0] = (unsigned char)(0xF0 | (point >> 18));
        utf8[1] = (unsigned char)(0x80 | ((point >> 12) & 0x3F));
        utf8[2] = (unsigned char)(0x80 | ((point >> 6) & 0x3F));
        utf8[3] = (unsigned char)(0x80 | (point & 0x3F));
        length = 4;
    }
    if (utf8[0] == 0xF4) return failed(ps, UNSUPPORTED);
    Fragment chain = {-1, -1, -1};
    for (int i = 0; i < length; i++) {
        uint64_t bits[4] = {0};
        bits[utf8[i] >> 6] |= 1ull << (utf8[i] & 63);
        chain = concatenated(ps, chain, bytes_fragment(ps, bits));
        if (ps->error) return chain;
    }
    return chain;
}

static Fragment byte_class(Parser *ps) { /* after '[' */
    uint64_t bits[4] = {0};
    if (ps->at < ps->n && ps->p[ps->at] == '^') return failed(ps, UNSUPPORTED);
    int first = 1;
    for (;;) {
        if (ps->at >= ps->n) return failed(ps, UNSUPPORTED);
        unsigned char c = ps->p[ps->at];
        if (c == ']' && !first) {
            ps->at++;
            break;
        }
        first = 0;
        if (c == '[') return failed(ps, UNSUPPORTED);
        if (ps->at + 1 < ps->n && (c == '&' || c == '-' || c == '~') && ps->p[ps->at + 1] == c)
            return failed(ps, UNSUPPORTED); /* a class operator */
        int32_t low = character(ps), high = low;
        if (low < 0 || low >= 0x80) return failed(ps, UNSUPPORTED);
        if (ps->at + 1 < ps->n && ps->p[ps->at] == '-' && ps->p[ps->at + 1] != ']') {
            ps->at++;
            if (ps->p[ps->at] == '[') return failed(ps, UNSUPPORTED);
            high = character(ps);
            if (high < low || high >= 0x80) return failed(ps, UNSUPPORTED);
        }
        for (int32_t b = low; b <= high; b++) bits[b >> 6] |= 1ull << (b & 63);
    }
    return bytes_fragment(ps, bits);
}

static Fragment alternation(Parser *ps);

static Fragment atom(Parser *ps) {
    if (ps->at >= ps->n) return failed(ps, UNSUPPORTED);
    unsigned char c = ps->p[ps->at];
    if (c == '(') {
        ps->at++;
        if (ps->at < ps->n && ps->p[ps->at] == '?') {
            if (ps->at + 1 >= ps->n || ps->p[ps->at + 1] != ':') return failed(ps, UNSUPPORTED);
            ps->at += 2;
        }
        Fragment inner = alternation(ps);
        if (ps->error) return inner;
        if (ps->at >= ps->n || ps->p[ps->at] != ')') return failed(ps, UNSUPPORTED);
        ps->at++;
        return inner;
    }
    if (c == '[') {
        ps->at++;
        return byte_class(ps);
    }
    if (strchr(".^$*+?{}[])|", c)) return failed(ps, UNSUPPORTED);
    int32_t point = character(ps);
    if (point < 0) return failed(ps, UNSUPPORTED);
    return literal(ps, point);
}

/* The fragment made optional (reads it or nothing). */
static Fragment optional(Parser *ps, Fragment f) {
    int32_t split = new_node(ps, SPLIT, -1);
    if (split < 0) return failed(ps, NO_MEMORY);
    ps->out.items[2 * split] = f.start;
    return joined_lists(ps, (Fragment){split, 2 * split + 1, 2 * split + 1}, (Fragment){-1, f.head, f.tail});
}

/* The fragment read any number of times, at least once when `once`. */
static Fragment repeated(Parser *ps, Fragment f, int once) {
    int32_t split = new_node(ps, SPLIT, -1);
    if (split < 0) return failed(ps, NO_MEMORY);
    ps->out.items[2 * split] = f.start;
    patch(ps, f.head, split);
    return (Fragment){once ? f.start : split, 2 * split + 1, 2 * split + 1};
}

static int number(Parser *ps, int32_t *value) {
    int digits = 0;
    *value = 0;
    while (ps->at < ps->n && ps->p[ps->at] >= '0' && ps->p[ps->at] <= '9') {
        *value = *value * 10 + (ps->p[ps->at++] - '0');
        if (++digits > 4) return -1;
    }
    return digits ? 0 : -1;
}

static Fragment piece(Parser *ps) {
    Py_ssize_t begin = ps->at;
    Fragment f = atom(ps);
    if (ps->error || ps->at >= ps->n) return f;
    unsigned char c = ps->p[ps->at];
    if (c == '*' || c == '+' || c == '?') {
        ps->at++;
        f = c == '?' ? optional(ps, f) : repeated(ps, f, c == '+');
    } else if (c == '{') {
        ps->at++;
        int32_t least, most;
        if (number(ps, &least) < 0) return failed(ps, UNSUPPORTED);
        most = least;
        if (ps->at < ps->n && ps->p[ps->at] == ',') {
            ps->at++;
            if (ps->at < ps->n && ps->p[ps->at] == '}') most = -1;
            else if (number(ps, &most) < 0 || most < least) return failed(ps, UNSUPPORTED);
        }
        if (ps->at >= ps->n || ps->p[ps->at] != '}') return failed(ps, UNSUPPORTED);
        Py_ssize_t after = ++ps->at;
        int32_t wanted = most < 0 ? least + 1 : most;
        Fragment *copy = PyMem_Malloc(((size_t)wanted + 1) * sizeof(Fragment));
        if (!copy) return failed(ps, NO_MEMORY);
        /* the atom again for each further copy, parsed anew from its text */
        for (int32_t i = 0; i < wanted && !ps->error; i++) {
            if (i > 0) {
                ps->at = begin;
                f = atom(ps);
            }
            copy[i] = f;
        }
        ps->at = after;
        Fragment whole = {-1, -1, -1};
        if (!ps->error && most < 0) {
            whole = repeated(ps, copy[least], 0);
        } else if (!ps->error && most > least) {
            /* optional copies nest, (x(x(x)?)?)?, so that a subset holds one copy at a time, innermost first */
            whole = optional(ps, copy[most - 1]);
            for (int32_t i = most - 2; i >= least && !ps->error; i--)
                whole = optional(ps, concatenated(ps, copy[i], whole));
        }
        for (int32_t i = least - 1; i >= 0 && !ps->error; i--) whole = concatenated(ps, copy[i], whole);
        PyMem_Free(copy);
        if (ps->error) return whole;
        f = whole.start < 0 ? empty_fragment(ps) : whole;
    } else {
        return f;
    }
    if (ps->error) return f;
    if (ps->at < ps->n && ps->p[ps->at] == '?') ps->at++; /* lazy: the same language */
    if (ps->at < ps->n && strchr("*+?{", ps->p[ps->at])) return failed(ps, UNSUPPORTED);
    return f;
}

static Fragment sequence(Parser *ps) {
    Fragment f = {-1, -1, -1};
    while (!ps->error && ps->at < ps->n && ps->p[ps->at] != '|' && ps->p[ps->at] != ')')
        f = concatenated(ps, f, piece(ps));
    if (!ps->error && f.start < 0) f = empty_fragment(ps);
    return f;
}

static Fragment alternation(Parser *ps) {
    Fragment f = sequence(ps);
    while (!ps->error && ps->at < ps->n && ps->p[ps->at] == '|') {
        ps->at++;
        Fragment other = sequence(ps);
        if (ps->error) break;
        int32_t split = new_node(ps, SPLIT, -1);
        if (split < 0) return failed(ps, NO_MEMORY);
        ps->out.items[2 * split] = f.start;
        ps->out.items[2 * split + 1] = other.start;
        f = joined_lists(ps, (Fragment){split, f.head, f.tail}, (Fragment){-1, other.head, other.tail});
    }
    return f;
}

/* ------------------------------------------------------------------------------------------------ byte classes */

/* class_of_byte: bytes share a class when every set holds both or neither (a partition refined set by set).
 * Returns the number of classes, and per set the classes it holds as a 256-bit mask. */
static int byte_classes(Parser *ps, uint8_t class_of_byte[256], uint64_t (*set_classes)[4]) {
    int n_classes = 1;
    memset(class_of_byte, 0, 256);
    int16_t split_to[256];
    for (Py_ssize_t s = 0; s < ps->n_sets; s++) {
        for (int k = 0; k < n_classes; k++) split_to[k] = -1;
        int n_before = n_classes;
        /* a class with members in and out of the set: its members in it move to a new class */
        uint8_t inside[256] = {0}, outside[256] = {0};
        for (int b = 0; b < 256; b++) {
            if (ps->sets[s][b >> 6] >> (b & 63) & 1) inside[class_of_byte[b]] = 1;
            else outside[class_of_byte[b]] = 1;
        }
        for (int b = 0; b < 256; b++) {
            int k = class_of_byte[b];
            if (k < n_before && inside[k] && outside[k] && (ps->sets[s][b >> 6] >> (b & 63) & 1)) {
                if (split_to[k] < 0) split_to[k] = (int16_t)n_classes++;
                class_of_byte[b] = (uint8_t)split_to[k];
            }
        }
    }
    for (Py_ssize_t s = 0; s < ps->n_sets; s++) {
        memset(set_classes[s], 0, sizeof(set_classes[s]));
        for (int b = 0; b < 256; b++)
            if (ps->sets[s][b >> 6] >> (b & 63) & 1) set_classes[s][class_of_byte[b] >> 6] |= 1ull << (class_of_byte[b] & 63);
    }
    return n_classes;
}

/* ---------------------------------------------------------------------------------------- subset construction */

typedef struct {
    Int32List pool, offsets; /* each subset's members, in the order found: pool[offsets[d]:offsets[d + 1]] */
    uint64_t *hashes;   /* each subset's hash: a sum over its members, so that their order does not matter */
    int32_t *slots;     /* open addressing over the subsets, -1 free */
    Py_ssize_t capacity, hashes_capacity;
    Int32List stack, found;
    int32_t *stamp, *member, now; /* member[node] == now: the subset being closed holds node */
} Subsets;

static inline uint64_t node_hash(int32_t node) {
    uint64_t z = 0x9E3779B97F4A7C15ull * ((uint64_t)node + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The subset of `seeds` closed under empty moves (its BYTES and MATCH nodes), as a subset id: an existing one
 * or a new one appended (-1 on no memory). Why no sorting: a subset is recognised by an order-free hash of its
 * members and compared through the marks of the closure just made, which costs its size. */
static int32_t closed_subset(Parser *ps, Subsets *ss, const int32_t *seeds, Py_ssize_t n_seeds) {
    ss->now++;
    ss->stack.n = ss->found.n = 0;
    uint64_t hash = 0;
    for (Py_ssize_t i = 0; i < n_seeds; i++) {
        if (ss->stamp[seeds[i]] == ss->now) continue;
        ss->stamp[seeds[i]] = ss->now;
        if (int32_push(&ss->stack, seeds[i]) < 0) return -1;
    }
    while (ss->stack.n) {
        int32_t node = ss->stack.items[--ss->stack.n];
        int kind = ps->kind.items[node];
        if (kind == BYTES || kind == MATCH) {
            if (int32_push(&ss->found, node) < 0) return -1;
            ss->member[node] = ss->now;
            hash += node_hash(node);
            continue;
        }
        for (int k = kind == SPLIT ? 1 : 0; k >= 0; k--) {
            int32_t next = ps->out.items[2 * node + k];
            if (ss->stamp[next] == ss->now) continue;
            ss->stamp[next] = ss->now;
            if (int32_push(&ss->stack, next) < 0) return -1;
        }
    }
    hash ^= (uint64_t)ss->found.n * 0xD6E8FEB86659FD93ull;
    const int32_t *items = ss->found.items;
    Py_ssize_t n = ss->found.n, n_subsets = ss->offsets.n - 1;
    if (2 * (n_subsets + 1) > ss->capacity) {
        Py_ssize_t capacity = ss->capacity ? 2 * ss->capacity : 4096;
        int32_t *slots = PyMem_Malloc((size_t)capacity * sizeof(int32_t));
        uint64_t *hashes = PyMem_Realloc(ss->hashes, (size_t)(capacity / 2) * sizeof(uint64_t));
        if (!slots || !hashes) {
            PyMem_Free(slots);
            if (hashes) ss->hashes = hashes;
            return -1;
        }
        ss->hashes = hashes;
        memset(slots, 0xff, (size_t)capacity * sizeof(int32_t));
        for (Py_ssize_t d = 0; d < n_subsets; d++) {
            Py_ssize_t i = (Py_ssize_t)(hashes[d] & (uint64_t)(capacity - 1));
            while (slots[i] >= 0) i = (i + 1) & (capacity - 1);
            slots[i] = (int32_t)d;
        }
        PyMem_Free(ss->slots);
        ss->slots = slots;
        ss->capacity = capacity;
    }
    Py_ssize_t i = (Py_ssize_t)(hash & (uint64_t)(ss->capacity - 1));
    for (; ss->slots[i] >= 0; i = (i + 1) & (ss->capacity - 1)) {
        int32_t d = ss->slots[i];
        Py_ssize_t begin = ss->offsets.items[d];
        if (ss->hashes[d] != hash || ss->offsets.items[d + 1] - begin != n) continue;
        Py_ssize_t k = 0;
        while (k < n && ss->member[ss->pool.items[begin + k]] == ss->now) k++;
        if (k == n) return d;
    }
    if (int32_reserve(&ss->pool, n) < 0 || int32_push(&ss->offsets, (int32_t)(ss->pool.n + n)) < 0) return -1;
    memcpy(ss->pool.items + ss->pool.n, items, (size_t)n * 4);
    ss->pool.n += n;
    ss->hashes[n_subsets] = hash;
    ss->slots[i] = (int32_t)n_subsets;
    return (int32_t)n_subsets;
}

static PyObject *determinize(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer pattern;
    if (!PyArg_ParseTuple(args, "y*", &pattern)) return NULL;
    if (pattern.len > INT32_MAX / 64) {
        PyBuffer_Release(&pattern);
        Py_RETURN_NONE;
    }
    Parser ps = {0};
    ps.p = pattern.buf;
    ps.n = pattern.len;
    Subsets ss = {0};
    Int32List table = {0}, bucket[256] = {{0}};
    uint8_t *accepting = NULL;
    uint64_t (*set_classes)[4] = NULL;
    PyObject *result = NULL;
    Fragment whole = alternation(&ps);
    if (!ps.error && ps.at != ps.n) ps.error = UNSUPPORTED; /* an unmatched ')' */
    int32_t match = ps.error ? -1 : new_node(&ps, MATCH, -1);
    if (ps.error == UNSUPPORTED) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (ps.error) goto no_memory;
    patch(&ps, whole.head, match);
    uint8_t class_of_byte[256];
    set_classes = PyMem_Malloc(((size_t)ps.n_sets + 1) * sizeof(set_classes[0]));
    ss.stamp = PyMem_Calloc((size_t)ps.kind.n, sizeof(int32_t));
    ss.member = PyMem_Calloc((size_t)ps.kind.n, sizeof(int32_t));
    if (!set_classes || !ss.stamp || !ss.member || int32_push(&ss.offsets, 0) < 0) goto no_memory;
    int n_classes = byte_classes(&ps, class_of_byte, set_classes);
    if (closed_subset(&ps, &ss, &whole.start, 1) < 0) goto no_memory;
    Py_ssize_t accepting_capacity = 0;
    for (Py_ssize_t d = 0; d < ss.offsets.n - 1; d++) {
        if (int32_reserve(&table, n_classes) < 0) goto no_memory;
        if (d >= accepting_capacity) {
            accepting_capacity = accepting_capacity ? 2 * accepting_capacity : 4096;
            uint8_t *grown = PyMem_Realloc(accepting, (size_t)accepting_capacity);
            if (!grown) goto no_memory;
            accepting = grown;
        }
        accepting[d] = 0;
        for (int32_t k = ss.offsets.items[d]; k < ss.offsets.items[d + 1]; k++) {
            int32_t node = ss.pool.items[k];
            if (ps.kind.items[node] == MATCH) {
                accepting[d] = 1;
                continue;
            }
            const uint64_t *mask = set_classes[ps.set.items[node]];
            for (int w = 0; w < 4; w++)
                for (uint64_t bits = mask[w]; bits; bits &= bits - 1)
                    if (int32_push(&bucket[64 * w + __builtin_ctzll(bits)], ps.out.items[2 * node]) < 0) goto no_memory;
        }
        for (int c = 0; c < n_classes; c++) {
            int32_t next = -1;
            if (bucket[c].n) {
                next = closed_subset(&ps, &ss, bucket[c].items, bucket[c].n);
                if (next < 0) goto no_memory;
                bucket[c].n = 0;
            }
            table.items[table.n++] = next;
        }
    }
    Py_ssize_t n_states = ss.offsets.n - 1;
    PyObject *items[3] = {PyBytes_FromStringAndSize((const char *)class_of_byte, 256),
                          PyBytes_FromStringAndSize((const char *)table.items, table.n * 4),
                          PyBytes_FromStringAndSize((const char *)accepting, n_states)};
    if (items[0] && items[1] && items[2]) result = Py_BuildValue("NNNi", items[0], items[1], items[2], n_classes);
    else for (int i = 0; i < 3; i++) Py_XDECREF(items[i]);
    goto done;
no_memory:
    PyErr_NoMemory();
done:
    for (int c = 0; c < 256; c++) PyMem_Free(bucket[c].items);
    PyMem_Free(table.items);
    PyMem_Free(accepting);
    PyMem_Free(set_classes);
    PyMem_Free(ss.pool.items);
    PyMem_Free(ss.offsets.items);
    PyMem_Free(ss.slots);
    PyMem_Free(ss.stack.items);
    PyMem_Free(ss.found.items);
    PyMem_Free(ss.stamp);
    PyMem_Free(ss.member);
    PyMem_Free(ss.hashes);
    PyMem_Free(ps.kind.items);
    PyMem_Free(ps.out.items);
    PyMem_Free(ps.set.items);
    PyMem_Free(ps.sets);
    PyMem_Free(ps.set_slots);
    PyBuffer_Release(&pattern);
    return result;
}

static PyMethodDef methods[] = {
    {"determinize", determinize, METH_VARARGS,
     "determinize(pattern: bytes): None (a construct left to outlines-core) or (class_of_byte, table, accepting, "
     "n_classes): the pattern's deterministic automaton over byte classes, state 0 the start."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_byte_determinize", "A regular expression determinized at byte level.", -1, methods, NULL,
    NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__byte_determinize(void) { return PyModule_Create(&module); }
