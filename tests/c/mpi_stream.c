/* The C API inside an MPI job, from a C program that includes <mpi.h> (so it passes an MPI_Comm):
 * rank 0 hosts the fabric, every other rank streams STEPS fields, then rank 1 reads them all
 * back and checks them. Run by tests/integration/test_capi_native.py under mpiexec -n 3.
 * Exit 0 on every rank when every check passed. */
#include <mpi.h>

#include <mofka_py/mofka_py.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                                                    \
    do {                                                                                                               \
        int rc_ = (call);                                                                                              \
        if (rc_ != MOFKA_PY_OK) {                                                                                      \
            fprintf(stderr, "rank %d: %s:%d: %s -> %s: %s\n", rank, __FILE__, __LINE__, #call,                        \
                    mofka_py_error_name(rc_), mofka_py_last_error());                                                  \
            MPI_Abort(MPI_COMM_WORLD, 1);                                                                              \
        }                                                                                                              \
    } while (0)

enum { STEPS = 8, N = 5000 };

int main(int argc, char** argv) {
    int provided = 0, rank = 0, size = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm clients;
    MPI_Comm_split(MPI_COMM_WORLD, rank == 0 ? MPI_UNDEFINED : 0, rank, &clients);

    mofka_py_mpi_options_t opts;
    CHECK(mofka_py_mpi_options_init(&opts));
    int32_t servers[1] = {0};
    opts.servers = servers;
    opts.num_servers = 1;
    mofka_py_mpi_fabric_t mf;
    CHECK(mofka_py_mpi_fabric_create(MPI_COMM_WORLD, &opts, &mf)); /* collective */
    int is_client = 0;
    CHECK(mofka_py_mpi_fabric_is_client(mf, &is_client));
    if (is_client != (rank != 0)) MPI_Abort(MPI_COMM_WORLD, 2);
    int bad = 0;
    if (is_client) {
        mofka_py_fabric_t fab;
        mofka_py_topic_t topic;
        mofka_py_producer_t prod;
        CHECK(mofka_py_mpi_fabric_fabric(mf, &fab));
        if (rank == 1) {
            mofka_py_topic_config_t cfg;
            CHECK(mofka_py_topic_config_init(&cfg));
            cfg.partitions = 2;
            CHECK(mofka_py_topic_create(fab, "field", &cfg));
        }
        MPI_Barrier(clients);
        CHECK(mofka_py_topic_open(fab, "field", &topic));
        CHECK(mofka_py_producer_create(topic, NULL, &prod));
        double* field = malloc(N * sizeof(double));
        for (int step = 0; step < STEPS; ++step) {
            for (int i = 0; i < N; ++i) field[i] = rank * 1000.0 + step + i * 1e-3;
            char meta[64];
            int len = snprintf(meta, sizeof meta, "{\"rank\": %d, \"step\": %d}", rank, step);
            CHECK(mofka_py_producer_push(prod, meta, (size_t)len, field, N * sizeof(double), -1, NULL));
            CHECK(mofka_py_producer_flush(prod, -1)); /* the field is reused by the next step */
        }
        free(field);
        CHECK(mofka_py_producer_release(prod));
        MPI_Barrier(clients);
        if (rank == 1) {
            mofka_py_consumer_t cons;
            CHECK(mofka_py_consumer_create(topic, NULL, &cons));
            int seen[64][STEPS];
            memset(seen, 0, sizeof seen);
            mofka_py_event_t ev;
            ev.struct_size = sizeof ev;
            for (int k = 0; k < (size - 1) * STEPS; ++k) {
                CHECK(mofka_py_consumer_pull(cons, 30000, &ev));
                int r = -1, s = -1;
                if (sscanf(ev.metadata, "{\"rank\": %d, \"step\": %d}", &r, &s) != 2 || r < 1 || r >= size ||
                    r >= 64 || s < 0 || s >= STEPS || ev.data_size != N * sizeof(double)) {
                    bad = 1;
                } else {
                    const double* d = ev.data;
                    for (int i = 0; i < N; ++i)
                        if (d[i] != r * 1000.0 + s + i * 1e-3) bad = 1;
                    seen[r][s] += 1;
                }
                CHECK(mofka_py_event_release(&ev));
            }
            for (int r = 1; r < size && r < 64; ++r)
                for (int s = 0; s < STEPS; ++s)
                    if (seen[r][s] != 1) bad = 1;
            CHECK(mofka_py_consumer_release(cons));
            printf("rank 1 read %d fields: %s\n", (size - 1) * STEPS, bad ? "MISMATCH" : "ok");
        }
        CHECK(mofka_py_topic_release(topic));
        CHECK(mofka_py_fabric_release(fab));
        MPI_Comm_free(&clients);
    }
    CHECK(mofka_py_mpi_fabric_release(mf)); /* collective close */
    MPI_Finalize();
    return bad;
}
