/* Jobs (engine/job.c) and what the executor (engine/exec.c) needs of them. Not installed. */
#ifndef TSR_JOB_H
#define TSR_JOB_H
#include <pthread.h>

#include "internal.h"

struct tsr__lane {
    tsr__lane *next;
    cl_command_queue queue;
    tsr__kcache *kc;
    struct tsr__launch_state *launch; /* measured throughput stays with the lane */
};

enum { JOB_NEW = 0, JOB_RUNNING = 1, JOB_DONE = 2 };

struct tsr_job {
    tsr_engine *e;
    tsr_graph *g; /* the snapshot */
    tsr_run_options opt;
    int cancel; /* atomic */
    tsr__ctx ctx;
    tsr__lane *lane;
    int state;     /* atomic: JOB_* */
    int on_thread; /* started with tsr_job_start (a thread to join) */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tsr_status rc;
    tsr__err err; /* the final message */
    tsr_job_stats stats;
    char *stats_text;
    tsr_image **kept; /* per node: image kept for tsr_job_output */
    char **files;     /* written by sinks */
    int n_files;
    double t_created;
};

/* The executor: infer (if needed), plan, wait for budget, run; events to j->opt. Runs on the
 * job's thread with j->ctx current; errors in j->ctx.err. */
tsr_status tsr__exec_job(tsr_job *j);

/* Budget admission: reserve `bytes` of the device budget for a job, waiting while other jobs
 * hold too much of it (TSR_ERR_CANCELLED if the job is cancelled while it waits). */
tsr_status tsr__budget_acquire(tsr_job *j, size_t bytes, size_t host_bytes, double *waited_s);
void tsr__budget_release(tsr_job *j, size_t bytes, size_t host_bytes);

/* Keep img (one more reference, or a reduced copy) as node v's output of the job. */
tsr_status tsr__job_keep(tsr_job *j, int v, tsr_image *img);
/* A file a sink wrote. */
void tsr__job_file(tsr_job *j, const char *path);

/* The job an exec context belongs to (NULL: the engine's own context). */
tsr_job *tsr__exec_job_of(const tsr_exec *ex);

/* Caller pixels: 0 when valid (size, channels 1-4, sample type, stride), else the reason. */
const char *tsr__pixels_check(const tsr_pixels *px);
/* A hash of the caller's samples (the result cache's key for bound pixels). */
uint64_t tsr__pixels_hash(const tsr_pixels *px);

/* Result cache (engine/rcache.c), thread-safe. */
tsr_image *tsr__rcache_get(tsr_engine *e, uint64_t key);
void tsr__rcache_put(tsr_engine *e, uint64_t key, tsr_image *img);
int tsr__rcache_enabled(tsr_engine *e);

#endif
