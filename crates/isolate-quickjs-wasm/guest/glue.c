/*
 * code-mode QuickJS-WASM guest: the C side of the sandbox.
 *
 * QuickJS runs inside a wasm32-wasi reactor. This file is the only C of our own: it owns the
 * runtime and the realm, counts every byte QuickJS allocates (the heap limit), and exposes a
 * handful of exports the Rust host drives. Everything about the program's semantics (console
 * formatting, bindings, result encoding, error description) lives in the JavaScript prelude
 * (prelude.js), evaluated once at pre-initialisation and captured in the snapshot.
 *
 * Host imports (module "cm"):
 *   call(id, name, name_len, args, args_len) -> 0 queued | 1 refused (tool-call budget)
 *   log(level, msg, len)
 * Exports:
 *   cm_preinit(prelude, len)        once, before the snapshot
 *   cm_configure(heap_limit, stack_size, seed, setup, setup_len)   once per instance
 *   cm_eval(src, len)               start a program: 0 settled | 1 pending | -1 internal failure
 *   cm_deliver(id, text, len)       answer a tool call (text is 'v'+json or 'e'+json)
 *   cm_poll()                       run jobs, look at the program: 0 settled | 1 pending | -1
 *   cm_result_ptr/len               the settled program's outcome: 'u', 'v'+json or 'e'+json
 *   cm_alloc/cm_free                buffers for the host's inputs
 *   cm_limits()                     limits the engine hit in this execution: 1 an allocation
 *                                   was refused, 2 the JS stack guard fired (bits)
 */
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quickjs.h"

#define IMPORT(mod, name) __attribute__((import_module(mod), import_name(name)))
#define EXPORT(name) __attribute__((export_name(name)))

IMPORT("cm", "call") int32_t host_call(int32_t id, const char *name, int32_t name_len,
                                       const char *args, int32_t args_len);
IMPORT("cm", "log") void host_log(int32_t level, const char *msg, int32_t len);

/* Added to the patched copy of quickjs.c by build.rs. */
void cm_set_random_seed(JSContext *ctx, uint64_t seed);
/* Set by the patched JS_ThrowStackOverflow (build.rs): QuickJS's stack guard fired. */
extern int cm_stack_overflow;

/* ---------- the heap limit ---------- */

static size_t heap_used;
static size_t heap_limit = SIZE_MAX;
static int oom;

static int over(size_t more) {
    if (more > heap_limit || heap_used > heap_limit - more) {
        oom = 1;
        return 1;
    }
    return 0;
}

static void *cm_js_calloc(void *opaque, size_t count, size_t size) {
    (void)opaque;
    size_t total;
    if (__builtin_mul_overflow(count, size, &total) || over(total)) { oom = 1; return NULL; }
    void *p = calloc(count, size);
    if (!p) { oom = 1; return NULL; }
    heap_used += malloc_usable_size(p);
    return p;
}

static void *cm_js_malloc(void *opaque, size_t size) {
    (void)opaque;
    if (over(size)) return NULL;
    void *p = malloc(size);
    if (!p) { oom = 1; return NULL; }
    heap_used += malloc_usable_size(p);
    return p;
}

static void cm_js_free(void *opaque, void *ptr) {
    (void)opaque;
    if (!ptr) return;
    heap_used -= malloc_usable_size(ptr);
    free(ptr);
}

static void *cm_js_realloc(void *opaque, void *ptr, size_t size) {
    if (!ptr) return size ? cm_js_malloc(opaque, size) : NULL;
    if (size == 0) { cm_js_free(opaque, ptr); return NULL; }
    size_t old = malloc_usable_size(ptr);
    if (size > old && over(size - old)) return NULL;
    void *q = realloc(ptr, size);
    if (!q) { oom = 1; return NULL; }
    heap_used = heap_used - old + malloc_usable_size(q);
    return q;
}

static size_t cm_js_usable(const void *ptr) { return malloc_usable_size((void *)ptr); }

static const JSMallocFunctions malloc_functions = {
    cm_js_calloc, cm_js_malloc, cm_js_free, cm_js_realloc, cm_js_usable,
};

/* ---------- state ---------- */

static JSRuntime *rt;
static JSContext *ctx;
/* Captured from the prelude: run(main), deliver(id, text), setup(json), describe(e, syntax). */
static JSValue fn_run, fn_deliver, fn_setup, fn_describe;
static JSValue program;
static int has_program;
static char *result;
static int32_t result_len;

static const char OOM_RESULT[] =
    "e{\"kind\":\"memory\",\"name\":\"MemoryLimitError\",\"message\":\"out of memory\",\"line\":0}";

EXPORT("cm_alloc") void *cm_alloc(int32_t n) { return n < 0 ? NULL : malloc((size_t)n + 1); }
EXPORT("cm_free") void cm_free(void *p) { free(p); }
EXPORT("cm_result_ptr") const char *cm_result_ptr(void) { return result; }
EXPORT("cm_result_len") int32_t cm_result_len(void) { return result_len; }
EXPORT("cm_limits") int32_t cm_limits(void) { return (oom ? 1 : 0) | (cm_stack_overflow ? 2 : 0); }
EXPORT("cm_heap_used") int64_t cm_heap_used(void) { return (int64_t)heap_used; }

static int result_static;

static void set_result(const char *s, size_t n) {
    if (!result_static) free(result);
    result_static = 0;
    char *copy = malloc(n + 1);
    if (!copy) {
        /* Not even room for the outcome: report the memory failure itself. */
        oom = 1;
        result = (char *)OOM_RESULT;
        result_len = (int32_t)(sizeof OOM_RESULT - 1);
        result_static = 1;
        return;
    }
    memcpy(copy, s, n);
    copy[n] = 0;
    result = copy;
    result_len = (int32_t)n;
}

/* Stores a JS string as the result; anything else (or a failure) becomes an internal error. */
static int32_t take_result(JSValue v) {
    if (JS_IsString(v)) {
        size_t len;
        const char *s = JS_ToCStringLen(ctx, &len, v);
        JS_FreeValue(ctx, v);
        if (!s) return -1;
        set_result(s, len);
        JS_FreeCString(ctx, s);
        return 0;
    }
    JS_FreeValue(ctx, v);
    return -1;
}

/* Describes the pending exception through the prelude ('e'+json); -1 when even that fails. */
static int32_t describe_exception(int syntax) {
    JSValue e = JS_GetException(ctx);
    JSValue args[2] = { e, JS_NewBool(ctx, syntax) };
    JSValue d = JS_Call(ctx, fn_describe, JS_UNDEFINED, 2, args);
    JS_FreeValue(ctx, e);
    if (JS_IsException(d)) {
        JS_FreeValue(ctx, JS_GetException(ctx));
        return -1;
    }
    return take_result(d);
}

/* ---------- functions the prelude receives ---------- */

/* __cm_call(id, name, argsJson) -> true (queued) | false (refused by the host) */
static JSValue js_call(JSContext *c, JSValueConst this_val, int argc, JSValueConst *argv) {
    (void)this_val;
    int32_t id;
    if (argc < 3 || JS_ToInt32(c, &id, argv[0])) return JS_ThrowTypeError(c, "bad call");
    size_t nl, al;
    const char *n = JS_ToCStringLen(c, &nl, argv[1]);
    if (!n) return JS_EXCEPTION;
    const char *a = JS_ToCStringLen(c, &al, argv[2]);
    if (!a) { JS_FreeCString(c, n); return JS_EXCEPTION; }
    int32_t refused = host_call(id, n, (int32_t)nl, a, (int32_t)al);
    JS_FreeCString(c, n);
    JS_FreeCString(c, a);
    return JS_NewBool(c, refused == 0);
}

/* __cm_log(level, msg) */
static JSValue js_log(JSContext *c, JSValueConst this_val, int argc, JSValueConst *argv) {
    (void)this_val;
    int32_t level;
    if (argc < 2 || JS_ToInt32(c, &level, argv[0])) return JS_UNDEFINED;
    size_t len;
    const char *s = JS_ToCStringLen(c, &len, argv[1]);
    if (!s) return JS_EXCEPTION;
    host_log(level, s, (int32_t)len);
    JS_FreeCString(c, s);
    return JS_UNDEFINED;
}

/* __cm_json_depth(text) -> the nesting depth of JSON text (brackets outside strings), for
 * the prelude's console: a loop in the interpreter costs milliseconds per megabyte. */
static JSValue js_json_depth(JSContext *c, JSValueConst this_val, int argc, JSValueConst *argv) {
    (void)this_val;
    if (argc < 1) return JS_NewInt32(c, 0);
    size_t len;
    const char *s = JS_ToCStringLen(c, &len, argv[0]);
    if (!s) return JS_EXCEPTION;
    int32_t depth = 0, max = 0;
    int in_string = 0, escaped = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (in_string) {
            if (escaped) escaped = 0;
            else if (ch == '\\') escaped = 1;
            else if (ch == '"') in_string = 0;
        } else if (ch == '"') in_string = 1;
        else if (ch == '[' || ch == '{') { if (++depth > max) max = depth; }
        else if (ch == ']' || ch == '}') depth--;
    }
    JS_FreeCString(c, s);
    return JS_NewInt32(c, max);
}

/* __cm_utf8_length(text) -> the UTF-8 bytes of text, for the prelude's result cap: the
 * engine's own encoder in C, where the interpreter's took ~190 ms for a 4 MiB result. */
static JSValue js_utf8_length(JSContext *c, JSValueConst this_val, int argc, JSValueConst *argv) {
    (void)this_val;
    if (argc < 1) return JS_NewInt32(c, 0);
    size_t len;
    const char *s = JS_ToCStringLen(c, &len, argv[0]);
    if (!s) return JS_EXCEPTION;
    JS_FreeCString(c, s);
    return JS_NewFloat64(c, (double)len);
}

/* ---------- exports ---------- */

EXPORT("cm_preinit") int32_t cm_preinit(const char *prelude, int32_t len) {
    if (rt) return -1;
    rt = JS_NewRuntime2(&malloc_functions, NULL);
    if (!rt) return -2;
    ctx = JS_NewContext(rt);
    if (!ctx) return -3;
    JSValue g = JS_GetGlobalObject(ctx);
    JS_SetPropertyStr(ctx, g, "__cm_call", JS_NewCFunction(ctx, js_call, "__cm_call", 3));
    JS_SetPropertyStr(ctx, g, "__cm_log", JS_NewCFunction(ctx, js_log, "__cm_log", 2));
    JS_SetPropertyStr(ctx, g, "__cm_json_depth", JS_NewCFunction(ctx, js_json_depth, "__cm_json_depth", 1));
    JS_SetPropertyStr(ctx, g, "__cm_utf8_length", JS_NewCFunction(ctx, js_utf8_length, "__cm_utf8_length", 1));
    JS_FreeValue(ctx, g);
    JSValue api = JS_Eval(ctx, prelude, (size_t)len, "<prelude>", JS_EVAL_TYPE_GLOBAL | JS_EVAL_FLAG_STRICT);
    if (JS_IsException(api)) {
        JSValue e = JS_GetException(ctx);
        const char *s = JS_ToCString(ctx, e);
        if (s) { set_result(s, strlen(s)); JS_FreeCString(ctx, s); }
        JS_FreeValue(ctx, e);
        return -4;
    }
    fn_run = JS_GetPropertyStr(ctx, api, "run");
    fn_deliver = JS_GetPropertyStr(ctx, api, "deliver");
    fn_setup = JS_GetPropertyStr(ctx, api, "setup");
    fn_describe = JS_GetPropertyStr(ctx, api, "describe");
    JS_FreeValue(ctx, api);
    if (!JS_IsFunction(ctx, fn_run) || !JS_IsFunction(ctx, fn_deliver) ||
        !JS_IsFunction(ctx, fn_setup) || !JS_IsFunction(ctx, fn_describe))
        return -5;
    JS_RunGC(rt);
    return 0;
}

EXPORT("cm_configure") int32_t cm_configure(int64_t limit, int32_t stack_size, int64_t seed,
                                            const char *setup, int32_t setup_len) {
    if (!ctx) return -1;
    heap_limit = limit > 0 ? (size_t)limit : SIZE_MAX;
    oom = 0;
    JS_UpdateStackTop(rt);
    JS_SetMaxStackSize(rt, (size_t)stack_size);
    cm_set_random_seed(ctx, (uint64_t)seed);
    JSValue arg = JS_NewStringLen(ctx, setup, (size_t)setup_len);
    JSValue r = JS_Call(ctx, fn_setup, JS_UNDEFINED, 1, &arg);
    JS_FreeValue(ctx, arg);
    if (JS_IsException(r)) { describe_exception(0); return -1; }
    JS_FreeValue(ctx, r);
    return 0;
}

static int32_t run_jobs(void) {
    for (;;) {
        JSContext *c1;
        int r = JS_ExecutePendingJob(rt, &c1);
        if (r == 0) return 0;
        if (r < 0) return -1;
    }
}

/* Looks at the program's promise: 0 settled (result set), 1 pending, -1 internal failure. */
static int32_t check(void) {
    if (run_jobs() < 0) {
        if (describe_exception(0) < 0) return -1;
        JS_FreeValue(ctx, program);
        has_program = 0;
        return 0;
    }
    switch (JS_PromiseState(ctx, program)) {
    case JS_PROMISE_PENDING:
        return 1;
    case JS_PROMISE_FULFILLED: {
        JSValue v = JS_PromiseResult(ctx, program);
        JS_FreeValue(ctx, program);
        has_program = 0;
        return take_result(v);
    }
    default: {
        /* run() never rejects: only uncatchable failures (out of memory) get here. */
        JSValue v = JS_PromiseResult(ctx, program);
        JS_FreeValue(ctx, program);
        has_program = 0;
        JS_Throw(ctx, v);
        return describe_exception(0);
    }
    }
}

EXPORT("cm_eval") int32_t cm_eval(const char *src, int32_t len) {
    if (has_program) return -1;
    cm_stack_overflow = 0;
    /* The host wrote a NUL after the source, as JS_Eval requires. */
    JSValue main = JS_Eval(ctx, src, (size_t)len, "<code>", JS_EVAL_TYPE_GLOBAL);
    if (JS_IsException(main)) return describe_exception(1);
    JSValue p = JS_Call(ctx, fn_run, JS_UNDEFINED, 1, &main);
    JS_FreeValue(ctx, main);
    if (JS_IsException(p)) return describe_exception(0);
    if (!JS_IsPromise(p)) { JS_FreeValue(ctx, p); return -1; }
    program = p;
    has_program = 1;
    return check();
}

EXPORT("cm_deliver") int32_t cm_deliver(int32_t id, const char *text, int32_t len) {
    JSValue args[2] = { JS_NewInt32(ctx, id), JS_NewStringLen(ctx, text, (size_t)len) };
    if (JS_IsException(args[1])) return -1;
    JSValue r = JS_Call(ctx, fn_deliver, JS_UNDEFINED, 2, args);
    JS_FreeValue(ctx, args[1]);
    if (JS_IsException(r)) { JS_FreeValue(ctx, JS_GetException(ctx)); return -1; }
    JS_FreeValue(ctx, r);
    return 0;
}

EXPORT("cm_poll") int32_t cm_poll(void) { return has_program ? check() : -1; }
