/* frontend/frontend.h: the .net language's syntax tree and parser.
 * Prefix ast_ (ast.c) and fe_ (parse.c). The frontend knows nothing of the IR:
 * it turns text into a tree in which every node carries its SrcLoc.
 * Lists are singly linked through `next`, in source order. */
#ifndef CHIRALC_FRONTEND_H
#define CHIRALC_FRONTEND_H

#include "support/support.h"

/* ---- ast.c: the syntax tree ------------------------------------------------ */

typedef struct AstExpr AstExpr;
typedef struct AstArg AstArg;
typedef struct AstStmt AstStmt;

typedef enum AstExprKind {
    AST_NUM,    /* 1024, 0.25, 1e-3 */
    AST_IDENT,  /* width, h, joints */
    AST_CALL,   /* conv1d(h, width, kernel=3) */
    AST_BINARY, /* a + b, a - b, a * b, a / b, a ^ b */
    AST_NEG,    /* -a */
    AST_TUPLE,  /* (0.9, 0.999) */
} AstExprKind;

struct AstArg {
    const char *key; /* NULL for a positional argument */
    SrcLoc key_loc;
    AstExpr *value;
    AstArg *next;
};

struct AstExpr {
    AstExprKind kind;
    SrcLoc loc; /* of the first token, or of the operator for AST_BINARY */
    union {
        double num;
        const char *ident;
        struct { const char *fn; AstArg *args; } call;
        struct { char op; AstExpr *lhs, *rhs; } bin; /* op: + - * / ^ */
        AstExpr *neg;
        struct { AstExpr *items; } tuple; /* items linked through tuple_next */
    } u;
    AstExpr *tuple_next;
};

/* A statement of the net block. */
typedef enum AstStmtKind { AST_ASSIGN, AST_FOR } AstStmtKind;
struct AstStmt {
    AstStmtKind kind;
    SrcLoc loc;
    union {
        struct { const char *name; AstExpr *value; } assign;
        struct { const char *var; SrcLoc var_loc; AstExpr *lo, *hi; AstStmt *body; } loop;
    } u;
    AstStmt *next;
};

typedef struct AstName {   /* an identifier with its location */
    const char *name;
    SrcLoc loc;
    struct AstName *next;
} AstName;

typedef struct AstMirror { /* mirror a:b */
    AstName a, b;
    struct AstMirror *next;
} AstMirror;

typedef struct AstSkeleton {
    AstName name;
    AstName *joints;
    AstMirror *mirrors;
    struct AstSkeleton *next;
} AstSkeleton;

typedef struct AstCoord {  /* x! (negated) or y (kept) */
    const char *name;
    bool negated;
    SrcLoc loc;
    struct AstCoord *next;
} AstCoord;

/* The type of an input or output:
 *   [seq[(frames)]] SKELETON (coords)   [invariant]
 *   [seq[(frames)]] class(N)            [invariant]
 *   [seq[(frames)]] features(N)         [invariant] */
typedef enum AstTypeKind { AST_TYPE_SKELETON, AST_TYPE_CLASS, AST_TYPE_FEATURES } AstTypeKind;
typedef struct AstType {
    AstTypeKind kind;
    SrcLoc loc;
    bool seq;
    AstExpr *frames;    /* NULL: not given */
    AstName skeleton;   /* AST_TYPE_SKELETON */
    AstCoord *coords;   /* AST_TYPE_SKELETON */
    AstExpr *width;     /* AST_TYPE_CLASS, AST_TYPE_FEATURES */
    bool invariant;
} AstType;

typedef struct AstIo {      /* input NAME : TYPE  /  output NAME : TYPE */
    AstName name;
    AstType type;
    struct AstIo *next;
} AstIo;

typedef struct AstLet {     /* let a = 1, b = 2 */
    AstName name;
    AstExpr *value;
    struct AstLet *next;
} AstLet;

/* A setting of the train or chirality block: `KEY VALUE`, e.g. `batch 1024`,
 * `loss mpjpe(pose3d)`, `neg_ratio 1/3`, `layout joints`. */
typedef struct AstSetting {
    AstName key;
    AstExpr *value;
    struct AstSetting *next;
} AstSetting;

typedef struct AstProgram {
    const SrcFile *file;
    AstName model;          /* name == NULL when the file has no model line */
    AstSkeleton *skeletons;
    AstIo *inputs, *outputs;
    AstLet *lets;
    AstStmt *net;           /* NULL when there is no net block */
    SrcLoc net_loc;
    bool has_net;
    AstSetting *train;      /* train { ... } */
    AstSetting *chirality;  /* chirality { ... } */
    bool has_train, has_chirality;  /* the block is written, even if empty */
} AstProgram;

/* Prints the tree back as .net source (canonical spacing); used by tests to
 * check that parsing loses nothing. */
void ast_print(FILE *out, const AstProgram *p);

/* ---- parse.c: reentrant lexer + pure parser ---------------------------------- */

/* Parses one source file into a tree allocated in `a`. Syntax errors are
 * reported through d (several per file where the parser can recover).
 * Returns NULL when there were errors. */
AstProgram *fe_parse(Arena *a, Diag *d, const SrcFile *file);

/* Limits the lexer enforces, with their own error messages. */
#define FE_MAX_IDENT 255

#endif
