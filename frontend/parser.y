/* frontend/parser.y: the grammar of the .net language (docs/language.md has it
 * in EBNF). A pure parser: all state lives in the FeParser passed in, the
 * scanner is reentrant, so several files can be parsed at once.
 *
 * Error recovery is at two levels: a broken declaration is skipped up to the
 * next declaration keyword, a broken statement or setting up to the next
 * identifier, `for` or `}`. So one run reports several syntax errors. */
%require "3.6"
%define api.pure full
%locations
%define parse.error custom
/* LAC: the parser checks the lookahead before taking default reductions, so
 * the expected-token list of a message is the one of the state where the
 * error really is (not of some outer state after reductions). */
%define parse.lac full
%expect 0
%param {yyscan_t scanner}
%parse-param {FeParser *ps}

/* No %destructor: every semantic value (names, nodes, lists) is allocated in
 * the compilation's arena and freed with it, so tokens and partial trees the
 * error recovery throws away need no freeing. */

%code requires {
#include "frontend/frontend.h"

#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif

/* The scanner's state (its yyextra). */
typedef struct FeLexer {
    Arena *arena;
    Diag *diag;
    const SrcFile *file;
    int line, col;      /* position of the next byte, 1-based */
    int prev_line_end;  /* column just past the last byte of the line before `line` */
    bool quiet;         /* a bad byte was reported: no more until the next blank */
} FeLexer;

/* The parser's state: the program being built. */
typedef struct FeParser {
    Arena *arena;
    Diag *diag;
    const SrcFile *file;
    AstProgram *prog;
    AstSkeleton **skel_tail;
    AstIo **in_tail, **out_tail;
    AstLet **let_tail;
    int ndecls;         /* declarations parsed: 0 means an empty file */
    int nops;           /* operators since the last complete top-level expression */
    bool too_complex;   /* reported once per file */
    SrcLoc train_loc, chirality_loc;
} FeParser;

/* Lists under construction: head and tail, so that left recursion appends in
 * source order in constant time. */
typedef struct { AstStmt *head, *tail; } FeStmts;
typedef struct { AstName *head, *tail; } FeNames;
typedef struct { AstMirror *head, *tail; } FeMirrors;
typedef struct { AstCoord *head, *tail; } FeCoords;
typedef struct { AstArg *head, *tail; } FeArgs;
typedef struct { AstSetting *head, *tail; } FeSettings;
typedef struct { AstExpr *head, *tail; } FeExprs;

/* Operators one expression may hold. Later stages walk expressions
 * recursively; a left-leaning chain of a million `+` would exhaust their stack. */
#define FE_MAX_OPS 1000
}

%code provides {
int yylex(YYSTYPE *yylval_param, YYLTYPE *yylloc_param, yyscan_t yyscanner);
}

%code {
#include <string.h>

/* Nesting (parentheses, calls, loops) is bounded by the parser's stack; a
 * small bound keeps recursion in later stages shallow. Real programs nest a
 * few levels. */
#define YYMAXDEPTH 3000

static SrcLoc at(const FeParser *ps, YYLTYPE l) {
    return (SrcLoc){ps->file, l.first_line, l.first_column};
}

static void yyerror(YYLTYPE *loc, yyscan_t scanner, FeParser *ps, const char *msg);

/* `node` is evaluated more than once: pass a variable. */
#define APPEND(list, node) \
    ((list).tail ? ((list).tail->next = (node)) : ((list).head = (node)), (list).tail = (node))

static AstExpr *new_expr(FeParser *ps, AstExprKind kind, YYLTYPE l) {
    AstExpr *e = arena_alloc(ps->arena, sizeof *e);
    e->kind = kind;
    e->loc = at(ps, l);
    return e;
}

static void count_op(FeParser *ps, YYLTYPE l) {
    if (++ps->nops > FE_MAX_OPS && !ps->too_complex) {
        ps->too_complex = true;
        diag_error(ps->diag, at(ps, l), "expression is too long (more than %d operators)", FE_MAX_OPS);
    }
}

static AstExpr *new_binary(FeParser *ps, char op, AstExpr *lhs, AstExpr *rhs, YYLTYPE l) {
    count_op(ps, l);
    AstExpr *e = new_expr(ps, AST_BINARY, l);
    e->u.bin.op = op;
    e->u.bin.lhs = lhs;
    e->u.bin.rhs = rhs;
    return e;
}

static AstName name_at(FeParser *ps, const char *name, YYLTYPE l) {
    return (AstName){.name = name, .loc = at(ps, l)};
}

static AstName *new_name(FeParser *ps, const char *name, YYLTYPE l) {
    AstName *n = arena_alloc(ps->arena, sizeof *n);
    *n = name_at(ps, name, l);
    return n;
}

/* A block that may appear once: the second is an error pointing at the first. */
static void once(FeParser *ps, bool *seen, SrcLoc *first, const char *what, YYLTYPE l) {
    if (*seen) {
        diag_error(ps->diag, at(ps, l), "a second '%s' block", what);
        diag_note(ps->diag, *first, "the first '%s' block is here", what);
    }
    *seen = true;
    *first = at(ps, l);
}
}

%union {
    double num;
    const char *name;
    AstExpr *expr;
    AstArg *arg;
    AstStmt *stmt;
    AstType *type;
    AstCoord *coord;
    AstSetting *setting;
    FeStmts stmts;
    FeNames names;
    FeMirrors mirrors;
    FeCoords coords;
    FeArgs args;
    FeSettings settings;
    FeExprs exprs;
}

%token END_OF_FILE 0 "end of file"
%token <name> IDENT "identifier"
%token <num> NUMBER "number"
%token MODEL "'model'" SKELETON "'skeleton'" JOINTS "'joints'" MIRROR "'mirror'"
%token INPUT "'input'" OUTPUT "'output'" LET "'let'" NET "'net'" TRAIN "'train'"
%token CHIRALITY "'chirality'" FOR "'for'" IN "'in'" SEQ "'seq'" CLASS "'class'"
%token FEATURES "'features'" INVARIANT "'invariant'" DOTDOT "'..'"

%type <expr> expr primary tuple_items_start
%type <name> name
%type <arg> arg
%type <args> args args_opt
%type <exprs> tuple_rest
%type <stmt> stmt
%type <stmts> stmts
%type <names> joint_list
%type <mirrors> mirror_list mirrors_opt
%type <coords> coords
%type <coord> coord
%type <type> type type_body
%type <setting> setting
%type <settings> settings
%type <expr> frames_opt

/* Precedence, weakest first. Unary minus binds weaker than ^, as in
 * mathematics: -2^2 = -(2^2) = -4, and 2^-1 still parses (as 2^(-1)). */
%left '+' '-'
%left '*' '/'
%precedence NEG
%right '^'

%start file

%%

file:
  decls
;

/* decls := decl* ; a broken declaration is skipped up to the next keyword
 * that starts one. */
decls:
  %empty
| decls decl    { ps->ndecls++; }
| decls error
;

/* decl := 'model' IDENT | skeleton | 'input' IDENT ':' type
 *       | 'output' IDENT ':' type | 'let' let_item (',' let_item)*
 *       | 'net' '{' stmt* '}' | 'train' '{' setting* '}'
 *       | 'chirality' '{' setting* '}' */
decl:
  MODEL IDENT {
      if (ps->prog->model.name) {
          diag_error(ps->diag, at(ps, @1), "a second 'model' line");
          diag_note(ps->diag, ps->prog->model.loc, "the model is already named '%s' here",
                    ps->prog->model.name);
      } else {
          ps->prog->model = name_at(ps, $2, @2);
      }
  }
| skeleton
| INPUT IDENT ':' type {
      AstIo *io = arena_alloc(ps->arena, sizeof *io);
      io->name = name_at(ps, $2, @2);
      io->type = *$4;
      *ps->in_tail = io;
      ps->in_tail = &io->next;
  }
| OUTPUT IDENT ':' type {
      AstIo *io = arena_alloc(ps->arena, sizeof *io);
      io->name = name_at(ps, $2, @2);
      io->type = *$4;
      *ps->out_tail = io;
      ps->out_tail = &io->next;
  }
| LET let_items
| NET '{' stmts '}' {
      if (ps->prog->has_net) {
          diag_error(ps->diag, at(ps, @1), "a second 'net' block");
          diag_note(ps->diag, ps->prog->net_loc, "the first 'net' block is here");
      } else {
          ps->prog->has_net = true;
          ps->prog->net = $3.head;
          ps->prog->net_loc = at(ps, @1);
      }
  }
| TRAIN '{' settings '}' {
      once(ps, &ps->prog->has_train, &ps->train_loc, "train", @1);
      if (!ps->prog->train) ps->prog->train = $3.head;
  }
| CHIRALITY '{' settings '}' {
      once(ps, &ps->prog->has_chirality, &ps->chirality_loc, "chirality", @1);
      if (!ps->prog->chirality) ps->prog->chirality = $3.head;
  }
;

let_items:
  let_item
| let_items ',' let_item
;

/* let_item := IDENT '=' expr */
let_item:
  IDENT '=' expr {
      AstLet *l = arena_alloc(ps->arena, sizeof *l);
      l->name = name_at(ps, $1, @1);
      l->value = $3;
      *ps->let_tail = l;
      ps->let_tail = &l->next;
      ps->nops = 0;
  }
;

/* skeleton := 'skeleton' IDENT '{' 'joints' IDENT+ ['mirror' (IDENT ':' IDENT)+] '}' */
skeleton:
  SKELETON IDENT '{' JOINTS joint_list mirrors_opt '}' {
      AstSkeleton *s = arena_alloc(ps->arena, sizeof *s);
      s->name = name_at(ps, $2, @2);
      s->joints = $5.head;
      s->mirrors = $6.head;
      *ps->skel_tail = s;
      ps->skel_tail = &s->next;
  }
;

joint_list:
  IDENT               { $$.head = $$.tail = new_name(ps, $1, @1); }
| joint_list IDENT    { AstName *j = new_name(ps, $2, @2); $$ = $1; APPEND($$, j); }
;

mirrors_opt:
  %empty              { $$.head = $$.tail = NULL; }
| MIRROR mirror_list  { $$ = $2; }
;

/* mirror_list := (IDENT ':' IDENT)+ */
mirror_list:
  IDENT ':' IDENT {
      AstMirror *m = arena_alloc(ps->arena, sizeof *m);
      m->a = name_at(ps, $1, @1);
      m->b = name_at(ps, $3, @3);
      $$.head = $$.tail = m;
  }
| mirror_list IDENT ':' IDENT {
      AstMirror *m = arena_alloc(ps->arena, sizeof *m);
      m->a = name_at(ps, $2, @2);
      m->b = name_at(ps, $4, @4);
      $$ = $1;
      APPEND($$, m);
  }
;

/* type := ['seq' ['(' expr ')']] type_body ['invariant'] */
type:
  type_body                     { $$ = $1; }
| type_body INVARIANT           { $$ = $1; $$->invariant = true; }
| SEQ frames_opt type_body {
      $$ = $3; $$->seq = true; $$->frames = $2; $$->loc = at(ps, @1);
  }
| SEQ frames_opt type_body INVARIANT {
      $$ = $3; $$->seq = true; $$->frames = $2; $$->loc = at(ps, @1); $$->invariant = true;
  }
;

frames_opt:
  %empty                        { $$ = NULL; }
| '(' expr ')'                  { $$ = $2; ps->nops = 0; }
;

/* type_body := IDENT '(' coord (',' coord)* ')' | 'class' '(' expr ')'
 *            | 'features' '(' expr ')' */
type_body:
  IDENT '(' coords ')' {
      $$ = arena_alloc(ps->arena, sizeof *$$);
      $$->kind = AST_TYPE_SKELETON;
      $$->loc = at(ps, @1);
      $$->skeleton = name_at(ps, $1, @1);
      $$->coords = $3.head;
  }
| CLASS '(' expr ')' {
      $$ = arena_alloc(ps->arena, sizeof *$$);
      $$->kind = AST_TYPE_CLASS;
      $$->loc = at(ps, @1);
      $$->width = $3;
      ps->nops = 0;
  }
| FEATURES '(' expr ')' {
      $$ = arena_alloc(ps->arena, sizeof *$$);
      $$->kind = AST_TYPE_FEATURES;
      $$->loc = at(ps, @1);
      $$->width = $3;
      ps->nops = 0;
  }
;

coords:
  coord                 { $$.head = $$.tail = $1; }
| coords ',' coord      { $$ = $1; APPEND($$, $3); }
;

/* coord := IDENT ['!'] */
coord:
  IDENT {
      $$ = arena_alloc(ps->arena, sizeof *$$);
      $$->name = $1;
      $$->loc = at(ps, @1);
  }
| IDENT '!' {
      $$ = arena_alloc(ps->arena, sizeof *$$);
      $$->name = $1;
      $$->negated = true;
      $$->loc = at(ps, @1);
  }
;

/* stmt* ; a broken statement is skipped up to the next identifier, 'for' or '}'. */
stmts:
  %empty                { $$.head = $$.tail = NULL; }
| stmts stmt            { $$ = $1; if ($2) APPEND($$, $2); }
| stmts error           { $$ = $1; }
;

/* stmt := IDENT '=' expr | 'for' IDENT 'in' expr '..' expr '{' stmt* '}' */
stmt:
  IDENT '=' expr {
      $$ = arena_alloc(ps->arena, sizeof *$$);
      $$->kind = AST_ASSIGN;
      $$->loc = at(ps, @1);
      $$->u.assign.name = $1;
      $$->u.assign.value = $3;
      ps->nops = 0;
  }
| FOR IDENT IN expr DOTDOT expr '{' stmts '}' {
      $$ = arena_alloc(ps->arena, sizeof *$$);
      $$->kind = AST_FOR;
      $$->loc = at(ps, @1);
      $$->u.loop.var = $2;
      $$->u.loop.var_loc = at(ps, @2);
      $$->u.loop.lo = $4;
      $$->u.loop.hi = $6;
      $$->u.loop.body = $8.head;
      ps->nops = 0;
  }
/* A broken loop header is skipped up to its '{', and the body still parsed. */
| FOR error '{' stmts '}'   { $$ = NULL; }
;

/* setting* ; a broken setting is skipped up to the next identifier or '}'. */
settings:
  %empty                { $$.head = $$.tail = NULL; }
| settings setting      { $$ = $1; APPEND($$, $2); }
| settings error        { $$ = $1; }
;

/* setting := IDENT expr   (no separator: `batch 64 epochs 40` is two settings) */
setting:
  IDENT expr {
      $$ = arena_alloc(ps->arena, sizeof *$$);
      $$->key = name_at(ps, $1, @1);
      $$->value = $2;
      ps->nops = 0;
  }
;

/* expr := expr ('+'|'-'|'*'|'/'|'^') expr | '-' expr | primary */
expr:
  expr '+' expr         { $$ = new_binary(ps, '+', $1, $3, @2); }
| expr '-' expr         { $$ = new_binary(ps, '-', $1, $3, @2); }
| expr '*' expr         { $$ = new_binary(ps, '*', $1, $3, @2); }
| expr '/' expr         { $$ = new_binary(ps, '/', $1, $3, @2); }
| expr '^' expr         { $$ = new_binary(ps, '^', $1, $3, @2); }
| '-' expr %prec NEG {
      count_op(ps, @1);
      $$ = new_expr(ps, AST_NEG, @1);
      $$->u.neg = $2;
  }
| primary
;

/* primary := NUMBER | name | name '(' [arg (',' arg)*] ')' | '(' expr ')'
 *          | '(' expr ',' expr (',' expr)* ')' */
primary:
  NUMBER {
      $$ = new_expr(ps, AST_NUM, @1);
      $$->u.num = $1;
  }
| name {
      $$ = new_expr(ps, AST_IDENT, @1);
      $$->u.ident = $1;
  }
| name '(' args_opt ')' {
      $$ = new_expr(ps, AST_CALL, @1);
      $$->u.call.fn = $1;
      $$->u.call.args = $3.head;
  }
| '(' expr ')'          { $$ = $2; }
| tuple_items_start tuple_rest ')' {
      $$ = new_expr(ps, AST_TUPLE, @1);
      $$->u.tuple.items = $1;
      $1->tuple_next = $2.head;
  }
;

/* The first item of a tuple: '(' expr, seen together with the ',' after it,
 * so that '(' expr ')' stays a plain parenthesised expression. */
tuple_items_start:
  '(' expr ','          { $$ = $2; }
;

tuple_rest:
  expr                  { $$.head = $$.tail = $1; }
| tuple_rest ',' expr   { $$ = $1; $$.tail->tuple_next = $3; $$.tail = $3; }
;

/* Keywords that are also ordinary names inside expressions: the invariance
 * layer `invariant(h, 256)`, `augment mirror(0.5)` and `layout joints`. */
name:
  IDENT                 { $$ = $1; }
| INVARIANT             { $$ = "invariant"; }
| MIRROR                { $$ = "mirror"; }
| JOINTS                { $$ = "joints"; }
;

args_opt:
  %empty                { $$.head = $$.tail = NULL; }
| args
;

args:
  arg                   { $$.head = $$.tail = $1; }
| args ',' arg          { $$ = $1; APPEND($$, $3); }
;

/* arg := expr | IDENT '=' expr */
arg:
  expr {
      $$ = arena_alloc(ps->arena, sizeof *$$);
      $$->value = $1;
  }
| IDENT '=' expr {
      $$ = arena_alloc(ps->arena, sizeof *$$);
      $$->key = $1;
      $$->key_loc = at(ps, @1);
      $$->value = $3;
  }
;

%%

/* Bison calls yyerror itself only when its stack is exhausted (every syntax
 * error goes through yyreport_syntax_error below). */
static void yyerror(YYLTYPE *loc, yyscan_t scanner, FeParser *ps, const char *msg) {
    (void)scanner;
    if (strcmp(msg, "memory exhausted") == 0)
        diag_error(ps->diag, at(ps, *loc), "nested too deeply (the parser's stack is exhausted)");
    else
        diag_error(ps->diag, at(ps, *loc), "%s", msg);
}

static bool has(const yysymbol_kind_t *set, int n, yysymbol_kind_t k) {
    for (int i = 0; i < n; i++)
        if (set[i] == k) return true;
    return false;
}

/* Removes the members of `group` from `set`, if all are there: returns
 * whether it did. */
static bool take_group(yysymbol_kind_t *set, int *n, const yysymbol_kind_t *group, int ng) {
    for (int i = 0; i < ng; i++)
        if (!has(set, *n, group[i])) return false;
    int m = 0;
    for (int i = 0; i < *n; i++)
        if (!has(group, ng, set[i])) set[m++] = set[i];
    *n = m;
    return true;
}

/* `syntax error, unexpected X, expecting A, B or C`. Bison's raw list of
 * expected tokens is made readable: the tokens that can start an expression
 * become "an expression", those that start a declaration "a declaration";
 * when the list is still long, the tokens that would merely continue an
 * expression (operators, a call's "(", a keyword argument's "=") are left
 * out: the user most likely meant to end it. The end of file
 * is named only when nothing else would do. More than four: no list. */
static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, FeParser *ps) {
    (void)scanner;
    enum { MAXEXP = YYNTOKENS };
    yysymbol_kind_t exp[MAXEXP];
    int n = yypcontext_expected_tokens(ctx, exp, MAXEXP);
    if (n < 0) n = 0;
    const yysymbol_kind_t expr_group[] = {
        YYSYMBOL_NUMBER, YYSYMBOL_IDENT, YYTRANSLATE('('), YYTRANSLATE('-'),
        YYSYMBOL_INVARIANT, YYSYMBOL_MIRROR, YYSYMBOL_JOINTS,
    };
    const yysymbol_kind_t decl_group[] = {
        YYSYMBOL_MODEL, YYSYMBOL_SKELETON, YYSYMBOL_INPUT, YYSYMBOL_OUTPUT,
        YYSYMBOL_LET, YYSYMBOL_NET, YYSYMBOL_TRAIN, YYSYMBOL_CHIRALITY,
    };
    const yysymbol_kind_t continuations[] = {
        YYTRANSLATE('+'), YYTRANSLATE('-'), YYTRANSLATE('*'), YYTRANSLATE('/'),
        YYTRANSLATE('^'), YYTRANSLATE('('), YYTRANSLATE('='), /* f(x=1): x might be a keyword */
    };
    const char *names[MAXEXP + 2];
    int nn = 0;
    bool any_expr = take_group(exp, &n, expr_group, (int)(sizeof expr_group / sizeof *expr_group));
    bool any_decl = take_group(exp, &n, decl_group, (int)(sizeof decl_group / sizeof *decl_group));
    if (n + any_expr + any_decl > 4) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (!has(continuations, (int)(sizeof continuations / sizeof *continuations), exp[i]))
                exp[m++] = exp[i];
        n = m;
    }
    bool eof = has(exp, n, YYSYMBOL_YYEOF);
    for (int i = 0; i < n; i++)
        if (exp[i] != YYSYMBOL_YYEOF) names[nn++] = yysymbol_name(exp[i]);
    if (any_expr) names[nn++] = "an expression";
    if (any_decl) names[nn++] = "a declaration";
    if (nn == 0 && eof) names[nn++] = yysymbol_name(YYSYMBOL_YYEOF);

    char buf[512];
    size_t len = 0;
    yysymbol_kind_t got = yypcontext_token(ctx);
    len += (size_t)snprintf(buf + len, sizeof buf - len, "syntax error");
    if (got != YYSYMBOL_YYEMPTY)
        len += (size_t)snprintf(buf + len, sizeof buf - len, ", unexpected %s", yysymbol_name(got));
    if (nn > 0 && nn <= 4) {
        len += (size_t)snprintf(buf + len, sizeof buf - len, ", expecting %s", names[0]);
        for (int i = 1; i < nn && len < sizeof buf; i++)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", i == nn - 1 ? " or " : ", ",
                                    names[i]);
    }
    diag_error(ps->diag, at(ps, *yypcontext_location(ctx)), "%s", buf);
    return 0;
}
