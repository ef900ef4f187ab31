/* passes/pipeline.c: the front half of the compiler, in order. */
#include <string.h>

#include "passes/passes.h"

const Pass pass_list[] = {
    {"shape", pass_shape, IR_STAGE_SHAPED},          /* extents of every tensor */
    {"chirality", pass_chirality, IR_STAGE_TYPED},   /* partner and sign of every feature */
    {"legalize", pass_legalize, IR_STAGE_TYPED},     /* odd activations on negated features */
    {"invariance", pass_invariance, IR_STAGE_TYPED}, /* trivial types where ops need them */
    {"count", pass_count, IR_STAGE_TYPED},           /* parameters and multiply-adds */
    {"autodiff", pass_autodiff, IR_STAGE_TYPED},     /* training: loss and gradients */
};
const int pass_count_of_list = (int)(sizeof pass_list / sizeof pass_list[0]);

const Pass *pass_find(const char *name) {
    for (int i = 0; i < pass_count_of_list; i++)
        if (strcmp(pass_list[i].name, name) == 0) return &pass_list[i];
    return NULL;
}

bool pass_pipeline(IrProgram *p, const PipelineOpts *opts) {
    ir_verify(p, IR_STAGE_BUILT, "elaboration");
    if (opts && opts->dump_after && strcmp(opts->dump_after, "elab") == 0) ir_print(opts->dump, p);
    for (int i = 0; i < pass_count_of_list; i++) {
        const Pass *pass = &pass_list[i];
        if (!pass->run(p)) return false;
        ir_renumber(p);
        ir_verify(p, pass->stage, pass->name);
        if (opts && opts->dump_after && strcmp(opts->dump_after, pass->name) == 0)
            ir_print(opts->dump, p);
    }
    return true;
}
