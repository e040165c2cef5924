/* Argument converters for PyArg_ParseTuple's "O&", shared by the C extensions that read numpy arrays.
 *
 * Each takes a C-contiguous buffer of one item width and kind, writable or not, and is released again if a
 * later argument fails (Py_CLEANUP_SUPPORTED). A numpy array of another dtype is refused with a TypeError
 * rather than read as the wrong width. Plain C and the CPython API only: no numpy headers at build time.
 */
#ifndef CONSTRAINED_TYPED_BUFFERS_H
#define CONSTRAINED_TYPED_BUFFERS_H

#include <Python.h>
#include <string.h>

static inline int typed_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, const char *kinds,
                               int writable) {
    if (!obj) {  /* the cleanup call */
        PyBuffer_Release(view);
        return 1;
    }
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return 0;
    const char *format = view->format ? view->format : "B";
    char kind = format[strlen(format) - 1];
    if (view->itemsize != itemsize || !strchr(kinds, kind)) {
        PyErr_Format(PyExc_TypeError, "expected an array of %zd-byte items of kind %s, got format %s",
                     itemsize, kinds, format);
        PyBuffer_Release(view);
        return 0;
    }
    return Py_CLEANUP_SUPPORTED;
}
static inline int uint8_in(PyObject *obj, void *view) { return typed_buffer(obj, view, 1, "B?", 0); }
static inline int int32_in(PyObject *obj, void *view) { return typed_buffer(obj, view, 4, "il", 0); }
static inline int int32_out(PyObject *obj, void *view) { return typed_buffer(obj, view, 4, "il", 1); }
static inline int int64_in(PyObject *obj, void *view) { return typed_buffer(obj, view, 8, "lq", 0); }
static inline int uint64_in(PyObject *obj, void *view) { return typed_buffer(obj, view, 8, "QL", 0); }

#endif
