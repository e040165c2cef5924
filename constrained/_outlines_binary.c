/* outlines-core's index, read from the binary form it pickles itself to.
 *
 * Why: `Index.get_transitions()` builds a Python dict of dicts, one entry per (state, token) transition:
 * hundreds of thousands of them for a large pattern's byte automaton, slower to build, and as slow again to
 * turn into arrays. The same Index pickles to compact bytes far faster (bincode,
 * variable-length integers), and this reads those bytes into three flat int32 arrays in one pass.
 *
 * The layout is outlines-core's, not a published format, so the reader trusts nothing: any surprise (a
 * truncated or oversized integer, a count that overruns the data, bytes missing or left over) makes it
 * return None, and outlines_index.py checks what it did read against the Index's own accessors before using
 * it, falling back to `get_transitions()` otherwise.
 *
 * The layout read: initial state; the final states (count, then each); the transitions (count of states,
 * then per state its number, its count of transitions, and per transition the token and the next state);
 * then the end token and the vocabulary size, and nothing after them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const uint8_t *at, *end;
    int failed;
} Reader;

/* bincode's variable-length unsigned integer: one byte below 251, else a tag (251, 252, 253) and 2, 4 or 8
 * little-endian bytes. */
static uint64_t read_varint(Reader *r) {
    if (r->failed || r->at >= r->end) { r->failed = 1; return 0; }
    uint8_t tag = *r->at++;
    if (tag < 251) return tag;
    int width = tag == 251 ? 2 : tag == 252 ? 4 : tag == 253 ? 8 : 0;
    if (!width || r->end - r->at < width) { r->failed = 1; return 0; }
    uint64_t value = 0;
    for (int i = 0; i < width; i++) value |= (uint64_t)r->at[i] << (8 * i);
    r->at += width;
    return value;
}

static int32_t read_int32(Reader *r) {
    uint64_t value = read_varint(r);
    if (value > INT32_MAX) r->failed = 1;
    return (int32_t)value;
}

/* The transitions, into the three arrays when they are given (else only counted). */
static Py_ssize_t read_transitions(Reader *r, int32_t *sources, int32_t *tokens, int32_t *targets) {
    uint64_t n_states = read_varint(r);
    Py_ssize_t n = 0;
    for (uint64_t s = 0; s < n_states && !r->failed; s++) {
        int32_t state = read_int32(r);
        uint64_t count = read_varint(r);
        if (count > (uint64_t)(r->end - r->at) / 2) { r->failed = 1; break; }  /* two bytes at least each */
        for (uint64_t i = 0; i < count && !r->failed; i++, n++) {
            int32_t token = read_int32(r), target = read_int32(r);
            if (sources) { sources[n] = state; tokens[n] = token; targets[n] = target; }
        }
    }
    return r->failed ? -1 : n;
}

static PyObject *read_index(PyObject *Py_UNUSED(module), PyObject *arg) {
    Py_buffer data;
    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *result = NULL, *finals = NULL, *arrays[3] = {NULL, NULL, NULL};
    Reader r = {data.buf, (const uint8_t *)data.buf + data.len, 0};
    int32_t initial = read_int32(&r);
    uint64_t n_finals = read_varint(&r);
    if (r.failed || n_finals > (uint64_t)(r.end - r.at)) goto unreadable;
    if (!(finals = PyList_New(0))) goto done;
    for (uint64_t i = 0; i < n_finals; i++) {
        int32_t state = read_int32(&r);
        if (r.failed) goto unreadable;
        PyObject *number = PyLong_FromLong(state);
        if (!number || PyList_Append(finals, number) < 0) { Py_XDECREF(number); goto done; }
        Py_DECREF(number);
    }
    Reader counting = r;
    Py_ssize_t n = read_transitions(&counting, NULL, NULL, NULL);
    if (n < 0) goto unreadable;
    for (int a = 0; a < 3; a++)
        if (!(arrays[a] = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(int32_t)))) goto done;
    read_transitions(&r, (int32_t *)PyBytes_AS_STRING(arrays[0]), (int32_t *)PyBytes_AS_STRING(arrays[1]),
                     (int32_t *)PyBytes_AS_STRING(arrays[2]));
    uint64_t end_token = read_varint(&r), vocab_size = read_varint(&r);
    if (r.failed || r.at != r.end) goto unreadable;
    result = Py_BuildValue("iOOOOKK", initial, finals, arrays[0], arrays[1], arrays[2],
                           (unsigned long long)end_token, (unsigned long long)vocab_size);
    goto done;
unreadable:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(finals);
    for (int a = 0; a < 3; a++) Py_XDECREF(arrays[a]);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef methods[] = {
    {"read_index", read_index, METH_O,
     "read_index(data): (initial, finals, sources, tokens, targets, end_token, vocab_size) from an Index's "
     "binary form, the three arrays as int32 bytes; None when the bytes do not read as expected."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_outlines_binary", "outlines-core's Index read from its binary form.", -1, methods,
};

PyMODINIT_FUNC PyInit__outlines_binary(void) { return PyModule_Create(&module); }
