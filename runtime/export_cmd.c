/* runtime/export_cmd.c: `MODEL export --load ckpt --dense out.safetensors`: the
 * checkpoint's weights as stock PyTorch layers hold them (runtime/export.c writes the
 * file from the model's densify function). */
#include "runtime/rt.h"

int rt_cmd_export(const RtModel *m, const RtOpts *o) {
    RtError e;
    if (!m->densify || m->ndense == 0)
        return rt_fail(&e, "model '%s' has no dense export (it was compiled without the dense table)", m->name),
               rt_report(m, &e);
    float *params = rt_calloc((size_t)m->params_size + 1, sizeof(float));
    float *state = rt_calloc((size_t)m->state_size + 1, sizeof(float));
    RtCkptMeta meta;
    bool ok = rt_ckpt_load(o->load, m, params, state, NULL, &meta, &e) &&
              rt_export_dense(m, params, state, o->dense, &e);
    rt_free(params);
    rt_free(state);
    if (!ok) return rt_report(m, &e);
    printf("%s: wrote %s (%d tensors, %lld floats) from %s\n", m->name, o->dense, m->ndense, (long long)m->dense_size,
           o->load);
    return RT_EXIT_OK;
}
