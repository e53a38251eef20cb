//! Conversions between guest values and host data: results, errors, console arguments.
//!
//! Everything here may run guest code (getters, `toJSON`, `toString`, proxies), so every
//! step is fallible, runs under the execution's interrupt handler, and stops as soon as the
//! deadline has passed. Only engine-native operations are used (`JSON.stringify` of the
//! engine, not the guest's possibly replaced `JSON` global), so a guest that overwrites
//! `JSON`, `Promise` or `console` cannot break the host's handling of its result.

use code_mode::driver::{MAX_VALUE_DEPTH, json_text_depth};
use code_mode::{ErrorKind, ExecutionError, Limits, serde_json};
use rquickjs::{Ctx, Object, Type, Value};

use crate::engine::{Deadline, SCRIPT_NAME};

/// A guest string as Rust text. JavaScript strings may hold lone surrogates, which QuickJS
/// hands out as 3-byte WTF-8 sequences (not UTF-8): each becomes U+FFFD, as the other
/// drivers (and `String.prototype.toWellFormed`) do, instead of failing the program.
pub(crate) fn string_lossy(s: &rquickjs::String<'_>) -> String {
    let value = s.as_value();
    let ctx = value.ctx().as_raw().as_ptr();
    let mut len: usize = 0;
    // SAFETY: `ctx` is the live context of `s` (entered: we are called with a `Ctx`); the
    // returned buffer is read while valid and freed exactly once.
    unsafe {
        let ptr = rquickjs::qjs::JS_ToCStringLen(ctx, &mut len as *mut usize as _, value.as_raw());
        if ptr.is_null() {
            return String::new();
        }
        let bytes = std::slice::from_raw_parts(ptr.cast::<u8>(), len);
        let out = code_mode::driver::wtf8_to_string(bytes);
        rquickjs::qjs::JS_FreeCString(ctx, ptr);
        out
    }
}

/// What failed while the host was handling a guest value.
pub(crate) enum Thrown<'js> {
    /// A thrown JavaScript value.
    Value(Value<'js>),
    /// The host decided the failure itself.
    Error(ExecutionError),
}

/// Creates `new Error(message)` with `name` as its own `name` property.
pub(crate) fn make_error<'js>(
    ctx: &Ctx<'js>,
    name: &str,
    message: &str,
) -> rquickjs::Result<Value<'js>> {
    let err = new_error(ctx)?;
    name_error(&err, name, message)?;
    Ok(err.into_value())
}

/// A new `Error` object whose `stack` is the guest's stack at this moment: QuickJS records
/// it at creation. Made when a binding is called, it is the error a failed call rejects
/// with later, so the program's error names the line of the call, not of the host loop.
pub(crate) fn new_error<'js>(ctx: &Ctx<'js>) -> rquickjs::Result<Object<'js>> {
    // SAFETY: `ctx` is entered; `JS_NewError` returns an owned value (or the exception
    // marker), which `from_raw` takes over.
    let raw = unsafe { rquickjs::qjs::JS_NewError(ctx.as_raw().as_ptr()) };
    if unsafe { rquickjs::qjs::JS_IsException(raw) } {
        return Err(rquickjs::Error::Exception);
    }
    let value = unsafe { Value::from_raw(ctx.clone(), raw) };
    value
        .into_object()
        .ok_or_else(|| rquickjs::Error::new_from_js("value", "Error"))
}

/// Gives `err` its own `message` and, unless it is `Error`, `name`: defined as data
/// properties (writable, configurable, not enumerable, as the engine's own errors have
/// them), so no accessor a program put on `Error.prototype` runs.
pub(crate) fn name_error(err: &Object<'_>, name: &str, message: &str) -> rquickjs::Result<()> {
    use rquickjs::object::Property;
    err.prop("message", Property::from(message).writable().configurable())?;
    if name != "Error" {
        err.prop("name", Property::from(name).writable().configurable())?;
    }
    Ok(())
}

/// Converts the arguments of a call to `name` to JSON. `Ok(Err(msg))` is a host-side
/// refusal (nested too deeply, not JSON), thrown in the guest as a `TypeError`.
pub(crate) fn to_json<'js>(
    ctx: &Ctx<'js>,
    name: &str,
    v: Value<'js>,
) -> rquickjs::Result<Result<serde_json::Value, String>> {
    let Some(text) = ctx.json_stringify(v)? else {
        return Ok(Ok(serde_json::Value::Object(Default::default())));
    };
    Ok(code_mode::parse_tool_input(name, &string_lossy(&text)))
}

/// How a value JSON cannot hold crosses out of the sandbox (see
/// [`QuickJsDriverBuilder::value_style`](crate::QuickJsDriverBuilder::value_style)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValueStyle {
    /// The core's contract, shared by every driver: a returned function, symbol or BigInt
    /// is a `ResultError` saying so; a thrown non-Error value is an `Error` saying what was
    /// thrown (`42 was thrown`).
    #[default]
    Strict,
    /// As TanStack's drivers give them (`@tanstack/ai-isolate-node`): a returned function
    /// or symbol is no value, as `JSON.stringify` makes it; a thrown non-Error value is an
    /// `UnknownError` whose message is the value (`42`, `null`, `undefined`).
    TanStack,
}

/// Converts the program's return value to JSON, enforcing the result size limit.
pub(crate) fn to_result<'js>(
    ctx: &Ctx<'js>,
    value: Value<'js>,
    limits: &Limits,
    style: ValueStyle,
) -> Result<Option<serde_json::Value>, Thrown<'js>> {
    let refuse = |what: &str| {
        Thrown::Error(ExecutionError::new(
            ErrorKind::Result,
            format!(
                "The returned value is not JSON-serializable: {what} cannot be returned; return plain data"
            ),
        ))
    };
    match value.type_of() {
        Type::Undefined | Type::Uninitialized => return Ok(None),
        Type::Function | Type::Constructor | Type::Symbol if style == ValueStyle::TanStack => {
            return Ok(None);
        }
        Type::Function | Type::Constructor => return Err(refuse("a function")),
        Type::Symbol => return Err(refuse("a symbol")),
        Type::BigInt => return Err(refuse("a BigInt (convert it with Number() or String())")),
        _ => {}
    }
    let text = match ctx.json_stringify(value) {
        Ok(Some(s)) => string_lossy(&s),
        Ok(None) => return Ok(None),
        Err(_) => {
            let exc = ctx.catch();
            return Err(match guest_error_parts(ctx, &exc) {
                Some((name, message)) if name == "TypeError" => Thrown::Error(ExecutionError::new(
                    ErrorKind::Result,
                    format!("The returned value is not JSON-serializable: {message}"),
                )),
                _ => Thrown::Value(exc),
            });
        }
    };
    let depth = code_mode::driver::json_text_depth(&text);
    if depth > code_mode::MAX_VALUE_DEPTH {
        return Err(Thrown::Error(ExecutionError::new(
            ErrorKind::Result,
            code_mode::driver::too_deep_message("The returned value", depth),
        )));
    }
    if text.len() as u64 > limits.max_result_bytes() {
        return Err(Thrown::Error(ExecutionError::result_too_large(
            text.len() as u64,
            limits.max_result_bytes(),
        )));
    }
    code_mode::driver::parse_guest_json(&text)
        .map(Some)
        .map_err(|e| {
            Thrown::Error(ExecutionError::new(
                ErrorKind::Result,
                format!("The returned value cannot be converted to JSON: {e}"),
            ))
        })
}

/// Reads `name` and `message` of an error-like object, if it is one.
/// An error's name (a string, else `Error`) and message (a string, else empty), as the guest
/// prelude reads them: a getter that throws counts as absent (its exception is taken).
fn guest_error_parts<'js>(ctx: &Ctx<'js>, v: &Value<'js>) -> Option<(String, String)> {
    let obj = v.as_object()?;
    let read = |key: &str| match obj.get::<_, Value<'js>>(key) {
        Ok(v) => v.as_string().map(string_lossy),
        Err(_) => {
            let _ = ctx.catch();
            None
        }
    };
    let name = read("name").unwrap_or_else(|| "Error".into());
    let message = read("message").unwrap_or_default();
    Some((name, message))
}

/// The message of the `RangeError` QuickJS throws when its stack guard fires.
pub(crate) const ENGINE_STACK_OVERFLOW: &str = "Maximum call stack size exceeded";

/// Turns a thrown value into the normalised error. Time and memory were decided by the
/// caller from the engine's own signals; nothing here reads a limit from the thrown value's
/// text (a program's `throw new Error('out of memory')` is its own error). rquickjs gives no
/// hook on QuickJS's stack guard, so its own overflow error alone is recognised by its exact
/// name and message: a longer message that merely contains it is the program's.
pub(crate) fn classify<'js>(
    ctx: &Ctx<'js>,
    thrown: Thrown<'js>,
    limits: &Limits,
    deadline: &Deadline,
    style: ValueStyle,
    is_tool_error: &dyn Fn(&Object<'js>) -> bool,
) -> ExecutionError {
    let value = match thrown {
        Thrown::Error(e) => return e,
        Thrown::Value(v) => v,
    };
    let timeout = || ExecutionError::timeout(limits.timeout());
    // A thrown primitive other than a string, as TanStack's node driver reports it.
    let unknown = |text: String| ExecutionError::new(ErrorKind::Guest("UnknownError".into()), text);
    match value.type_of() {
        // QuickJS throws `null` when it cannot even allocate the error object.
        Type::Null | Type::Uninitialized | Type::Undefined
            if value.is_null() || value.type_of() == Type::Uninitialized =>
        {
            if deadline.passed() {
                return timeout();
            }
            if style == ValueStyle::TanStack {
                return unknown("null".into());
            }
            return ExecutionError::new(ErrorKind::Guest("Error".into()), "null was thrown");
        }
        Type::String => {
            let message = value.as_string().map(string_lossy).unwrap_or_default();
            return ExecutionError::new(ErrorKind::Guest("Error".into()), message);
        }
        Type::Object | Type::Exception | Type::Array => {}
        _ => {
            let message = format_primitive(ctx, value).unwrap_or_else(|| "unknown value".into());
            if style == ValueStyle::TanStack {
                return unknown(message);
            }
            return ExecutionError::new(
                ErrorKind::Guest("Error".into()),
                format!("{message} was thrown"),
            );
        }
    }
    let Some(obj) = value.as_object() else {
        return ExecutionError::new(
            ErrorKind::Guest("Error".into()),
            "an unknown value was thrown",
        );
    };
    let read = |key: &str| -> Result<Option<String>, ()> {
        match obj.get::<_, Value<'js>>(key) {
            Ok(v) => Ok(v.as_string().map(string_lossy)),
            Err(_) => {
                let _ = ctx.catch();
                if deadline.passed() { Err(()) } else { Ok(None) }
            }
        }
    };
    let (Ok(name), Ok(message), Ok(stack)) = (read("name"), read("message"), read("stack")) else {
        return timeout();
    };
    let name = name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "Error".into());
    let message = message.unwrap_or_default();
    // A tool's error that reads like the engine's (a JavaScript tool that overflowed its own
    // stack rejects with this very error) is the tool's.
    if name == "RangeError" && message == ENGINE_STACK_OVERFLOW && !is_tool_error(obj) {
        return ExecutionError::stack_overflow(limits.stack_bytes());
    }
    let line = stack.as_deref().and_then(line_in_stack);
    ExecutionError::new(ErrorKind::from_guest_name(&name), message).with_line(line)
}

/// The first line number of the program's own frames in a QuickJS stack trace.
fn line_in_stack(stack: &str) -> Option<u32> {
    let marker = format!("{SCRIPT_NAME}:");
    let at = stack.find(&marker)? + marker.len();
    let digits: String = stack[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn format_primitive<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> Option<String> {
    let s: rquickjs::Coerced<rquickjs::String<'js>> = rquickjs::FromJs::from_js(ctx, value).ok()?;
    Some(string_lossy(&s.0))
}

/// Formats one console argument: strings as is, objects as JSON, the rest like `String(v)`.
pub(crate) fn format_value<'js>(
    ctx: &Ctx<'js>,
    value: Value<'js>,
    deadline: &Deadline,
) -> rquickjs::Result<String> {
    let interrupted = |ctx: &Ctx<'js>| -> rquickjs::Result<()> {
        if deadline.passed() {
            // Re-raise: the interrupt must not be swallowed by formatting.
            return Err(rquickjs::Exception::throw_internal(ctx, "interrupted"));
        }
        Ok(())
    };
    Ok(match value.type_of() {
        Type::String => value.as_string().map(string_lossy).unwrap_or_default(),
        Type::Undefined | Type::Uninitialized => "undefined".into(),
        Type::Null => "null".into(),
        Type::Symbol => {
            // The symbol's own description, read from the engine (not through
            // `Symbol.prototype.description`, which the program may replace).
            let desc = rquickjs::Atom::from_value(ctx.clone(), &value)
                .and_then(|atom| atom.to_js_string())
                .map(|s| string_lossy(&s))
                .unwrap_or_default();
            format!("Symbol({desc})")
        }
        Type::Function | Type::Constructor => {
            let name = value
                .as_object()
                .and_then(|o| o.get::<_, Option<String>>("name").ok().flatten())
                .filter(|n| !n.is_empty());
            match name {
                Some(n) => format!("[Function: {n}]"),
                None => "[Function (anonymous)]".into(),
            }
        }
        Type::BigInt => format!("{}n", format_primitive(ctx, value).unwrap_or_default()),
        Type::Object | Type::Array | Type::Exception | Type::Promise | Type::Proxy => {
            let obj: Object<'js> = match value.as_object() {
                Some(o) => o.clone(),
                None => return Ok("[object]".into()),
            };
            if obj.is_error() {
                let (name, message) = guest_error_parts(ctx, &value).unwrap_or_default();
                interrupted(ctx)?;
                return Ok(if message.is_empty() {
                    name
                } else {
                    format!("{name}: {message}")
                });
            }
            match ctx.json_stringify(value.clone()) {
                Ok(Some(s)) => {
                    let text = string_lossy(&s);
                    if text.len() > 2 * MAX_VALUE_DEPTH && json_text_depth(&text) > MAX_VALUE_DEPTH
                    {
                        DEEP.into()
                    } else {
                        text
                    }
                }
                Ok(None) => "undefined".into(),
                Err(_) => {
                    let _ = ctx.catch();
                    interrupted(ctx)?;
                    let mut path = Vec::new();
                    if deeper(ctx, &value, 1, &mut path) {
                        interrupted(ctx)?;
                        return Ok(DEEP.into());
                    }
                    interrupted(ctx)?;
                    match format_primitive(ctx, value) {
                        Some(s) => s,
                        None => {
                            let _ = ctx.catch();
                            interrupted(ctx)?;
                            "[unprintable]".into()
                        }
                    }
                }
            }
        }
        _ => match format_primitive(ctx, value) {
            Some(s) => s,
            None => {
                let _ = ctx.catch();
                interrupted(ctx)?;
                "[unprintable]".into()
            }
        },
    })
}

/// What an object nested past the value limit logs as, on every driver (the guest prelude
/// writes the same).
const DEEP: &str = "[nested deeper than 64 levels]";
const _: () = assert!(MAX_VALUE_DEPTH == 64, "DEEP names the limit");

/// Whether a value JSON could not show nests objects past the limit (a cycle is not depth),
/// as the guest prelude's `deeper` decides it: own enumerable keys, getters that throw
/// skipped, at most `MAX_VALUE_DEPTH + 1` levels.
fn deeper<'js>(
    ctx: &Ctx<'js>,
    value: &Value<'js>,
    depth: usize,
    path: &mut Vec<Object<'js>>,
) -> bool {
    let Some(obj) = value.as_object() else {
        return false;
    };
    if value.type_of() == Type::Function || value.type_of() == Type::Constructor {
        return false;
    }
    if depth > MAX_VALUE_DEPTH {
        return true;
    }
    if path.iter().any(|p| p == obj) {
        return false;
    }
    let keys: Vec<rquickjs::Atom<'js>> = match obj.keys::<rquickjs::Atom<'js>>().collect() {
        Ok(k) => k,
        Err(_) => {
            let _ = ctx.catch();
            return false;
        }
    };
    path.push(obj.clone());
    for key in keys {
        let child: Value<'js> = match obj.get(key) {
            Ok(v) => v,
            Err(_) => {
                let _ = ctx.catch();
                continue;
            }
        };
        if deeper(ctx, &child, depth + 1, path) {
            return true;
        }
    }
    path.pop();
    false
}

/// The address of an object, to tell later whether a thrown value is that object. Only
/// compared, never followed: an address reused after the object was freed can only make a
/// failure read as the program's own (see `Shared::tool_errors`).
pub(crate) fn address(obj: &Object<'_>) -> usize {
    // SAFETY: reads the pointer field of an object value; nothing is dereferenced.
    unsafe { rquickjs::qjs::JS_VALUE_GET_PTR(obj.as_raw()) as usize }
}

#[cfg(test)]
mod tests {
    use super::line_in_stack;

    #[test]
    fn finds_the_program_frame() {
        assert_eq!(
            line_in_stack("    at f (<code>:7:3)\n    at <anonymous> (<code>:9:1)\n"),
            Some(7)
        );
        assert_eq!(line_in_stack("    at native\n"), None);
    }
}
