/* runtime/data.c: a task's data, as the model's one input and one output see it.
 *
 * The layout is recognised from the arrays, so that the same program reads what
 * chiraldata writes for every task: a `clip_start` array means frame-by-frame sequences
 * (the lifting data) that the batcher cuts into VideoPose3D's centred windows; otherwise
 * each row of the arrays is one ready sample (forecast and action windows). Every check
 * names the file and the array, with the shape the model expects. */
#include <inttypes.h>
#include <string.h>

#include "runtime/rt.h"

const char *rt_array_name(const RtOpts *o, const char *model_name) {
    for (int i = 0; o && i < o->narrays; i++)
        if (strcmp(o->array_from[i], model_name) == 0) return o->array_to[i];
    return model_name;
}

bool rt_task_supported(const RtModel *m, RtError *e) {
    if (m->ninputs != 1 || m->noutputs != 1)
        return rt_fail(e, "model '%s' has %d inputs and %d outputs; this runtime reads data for models with one of "
                          "each", m->name, m->ninputs, m->noutputs);
    return true;
}

static bool has_array(const RtNpz *z, const char *name) {
    for (int i = 0; i < z->n; i++)
        if (strcmp(z->arrays[i].name, name) == 0) return true;
    return false;
}

/* The expected shape of a model tensor with `lead` leading extents before the frames
 * axis (lead -1 = any): [lead..., frames?, joints, coords] or [lead..., frames?, features]. */
static int tensor_shape(const RtModelIo *io, int64_t lead, bool with_frames, int64_t *shape) {
    int n = 0;
    shape[n++] = lead;
    if (with_frames && io->frames > 0) shape[n++] = io->frames;
    if (io->joints > 0) {
        shape[n++] = io->joints;
        shape[n++] = io->coords;
    } else {
        shape[n++] = io->features;
    }
    return n;
}

static bool get_targets(const RtModelIo *out, const RtNpz *z, const char *yname, int64_t rows, bool windows,
                        const RtArray **y, RtError *e) {
    int64_t shape[RT_MAX_DIMS];
    if (out->is_class) {
        shape[0] = rows;
        shape[1] = out->frames;
        int nd = windows && out->frames > 0 ? 2 : 1;
        if (!(*y = rt_npz_get(z, yname, RT_I64, nd, shape, e))) return false;
        char what[600];
        snprintf(what, sizeof what, "%s: array '%s'", z->path, yname);
        return rt_check_labels((*y)->data, rt_array_count(*y), out->features, what, e);
    }
    int nd = tensor_shape(out, rows, windows, shape);
    return (*y = rt_npz_get(z, yname, RT_F32, nd, shape, e)) != NULL;
}

bool rt_task_load(const RtModel *m, const RtOpts *o, const char *path, RtTask *t, RtError *e) {
    memset(t, 0, sizeof *t);
    if (!rt_task_supported(m, e)) return false;
    if (!rt_npz_read(path, &t->npz, e)) return false;
    const RtModelIo *in = &m->inputs[0], *out = &m->outputs[0];
    const char *xname = rt_array_name(o, in->name), *yname = rt_array_name(o, out->name);
    const char *cname = rt_array_name(o, "clip_start");
    const RtNpz *z = &t->npz;
    int64_t shape[RT_MAX_DIMS];
    const RtArray *x, *y;
    const int64_t t_in = in->frames > 0 ? in->frames : 1, t_out = out->frames > 0 ? out->frames : 1;
    if (has_array(z, cname)) {
        /* frame sequences: every frame of x and y, one row each */
        if (t_out > t_in) {
            rt_fail(e, "%s: array '%s' holds sequences, but the model's output '%s' has more frames (%" PRId64
                       ") than its input '%s' (%" PRId64 ")", path, cname, out->name, t_out, in->name, t_in);
            goto fail;
        }
        int nd = tensor_shape(in, -1, false, shape);
        if (!(x = rt_npz_get(z, xname, RT_F32, nd, shape, e))) goto fail;
        const int64_t nframes = x->shape[0];
        if (!get_targets(out, z, yname, nframes, false, &y, e)) goto fail;
        const RtArray *cs = rt_npz_get(z, cname, RT_I64, 1, NULL, e);
        if (!cs) goto fail;
        if (cs->shape[0] < 1) {
            rt_fail(e, "%s: array '%s': expected at least one entry (0), got none", path, cname);
            goto fail;
        }
        char what[600];
        snprintf(what, sizeof what, "%s: array '%s'", path, cname);
        if (!rt_dataset_sequences(&t->set, x->data, in->features, out->is_class ? NULL : y->data,
                                  out->is_class ? y->data : NULL, out->features, nframes, cs->data, cs->shape[0] - 1,
                                  t_out, t_in - t_out + 1, what, e))
            goto fail;
    } else {
        int nd = tensor_shape(in, -1, true, shape);
        if (!(x = rt_npz_get(z, xname, RT_F32, nd, shape, e))) goto fail;
        const int64_t n = x->shape[0];
        if (!get_targets(out, z, yname, n, true, &y, e)) goto fail;
        rt_dataset_windows(&t->set, x->data, n, t_in, in->features, out->is_class ? NULL : y->data,
                           out->is_class ? y->data : NULL, t_out, out->features);
    }
    rt_dataset_subsample(&t->set, o->subsample);
    if (t->set.nsamples == 0) {
        rt_fail(e, "%s: array '%s': no samples", path, xname);
        goto fail;
    }
    t->x_len = t->set.x_frames * t->set.x_feat;
    t->y_len = t->set.y_frames * t->set.y_feat;
    return true;
fail:
    rt_task_free(t);
    return false;
}

void rt_task_free(RtTask *t) {
    rt_dataset_free(&t->set);
    rt_npz_free(&t->npz);
    memset(t, 0, sizeof *t);
}
