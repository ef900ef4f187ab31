/* runtime/backend_cpu.c: the backend table of the programs whose model runs on the host
 * (the C and LLVM backends), the choice of the program's backend, and the helpers the
 * commands use to keep a host buffer and the model's copy of it.
 *
 * On the CPU the model's buffers are the host buffers themselves (host_memory), so the
 * helpers below neither copy nor allocate and a CPU program does exactly what it did
 * before there was a table. */
#include <string.h>

#include "runtime/rt.h"

static bool cpu_init(RtError *e) {
    (void)e;
    return true;
}
static const char *cpu_device(void) { return "the host CPU"; }
static void *cpu_alloc(size_t bytes) { return rt_calloc(bytes + 1, 1); }
static void cpu_upload(void *dev, const void *host, size_t bytes) {
    if (dev != host && bytes) memcpy(dev, host, bytes);
}
static void cpu_download(void *host, const void *dev, size_t bytes) {
    if (dev != host && bytes) memcpy(host, dev, bytes);
}
static void cpu_zero(void *dev, size_t bytes) { memset(dev, 0, bytes); }
/* The moments live where o->state points: lend it the backend's copy for the step. */
static void cpu_optim_step(RtOptim *o, float *state, float *p, const float *g, double lr) {
    float *own = o->state;
    o->state = state;
    rt_optim_step(o, p, g, lr);
    o->state = own;
}
static void cpu_sync(void) {}

const RtBackend rt_backend_cpu = {
    .name = "cpu",
    .host_memory = true,
    .init = cpu_init,
    .device = cpu_device,
    .alloc = cpu_alloc,
    .free = rt_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .zero = cpu_zero,
    .loss = rt_loss,
    .clip = rt_clip_grad_norm,
    .optim_step = cpu_optim_step,
    .sync = cpu_sync,
};

static const RtBackend *g_backend = &rt_backend_cpu;

const RtBackend *rt_backend(void) { return g_backend; }
void rt_backend_use(const RtBackend *b) { g_backend = b ? b : &rt_backend_cpu; }

void *rt_dev_like(void *host, size_t bytes) {
    if (!host) return NULL;
    return g_backend->host_memory ? host : g_backend->alloc(bytes);
}

void rt_dev_release(void *dev, void *host) {
    if (dev && dev != host) g_backend->free(dev);
}

void rt_dev_upload(void *dev, const void *host, size_t bytes) {
    if (dev != host && bytes) g_backend->upload(dev, host, bytes);
}

void rt_dev_download(void *host, const void *dev, size_t bytes) {
    if (dev != host && bytes) g_backend->download(host, dev, bytes);
}
