/* A C program linked with mofka_py::c from the installed package (run by the installed_package test). */
#include <mofka_py/mofka_py.h>

#include <stdio.h>
#include <string.h>

int main(void) {
    mofka_py_fabric_t fab;
    mofka_py_topic_t topic;
    mofka_py_producer_t prod;
    mofka_py_consumer_t cons;
    mofka_py_event_t ev;
    if (mofka_py_connect("memory://", &fab) || mofka_py_topic_create(fab, "c", NULL) ||
        mofka_py_topic_open(fab, "c", &topic) || mofka_py_producer_create(topic, NULL, &prod) ||
        mofka_py_producer_push(prod, "{\"lang\": \"C\"}", 13, "abc", 3, -1, NULL) || mofka_py_producer_release(prod) ||
        mofka_py_consumer_create(topic, NULL, &cons)) {
        fprintf(stderr, "C API: %s\n", mofka_py_last_error());
        return 1;
    }
    ev.struct_size = sizeof ev;
    if (mofka_py_consumer_pull(cons, 5000, &ev) != MOFKA_PY_OK || ev.data_size != 3 || memcmp(ev.data, "abc", 3)) {
        fprintf(stderr, "C API pull: %s\n", mofka_py_last_error());
        return 1;
    }
    mofka_py_event_release(&ev);
    mofka_py_consumer_release(cons);
    mofka_py_topic_release(topic);
    mofka_py_fabric_release(fab);
    printf("C API %s (ABI %d): round trip OK\n", mofka_py_version(NULL, NULL, NULL), mofka_py_abi_version());
    return 0;
}
