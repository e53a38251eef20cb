//! An on-disk cache of the compiled, pre-initialised guest.
//!
//! Compiling the guest twice (once to run the pre-initialisation, once the snapshot) takes a
//! couple of seconds per process; a command-line run pays it every time. So the compiled
//! snapshot is written to `$CODE_MODE_QUICKJS_WASM_CACHE` (or the user's cache folder,
//! `$XDG_CACHE_HOME/code-mode/quickjs-wasm`, else `~/.cache/...`) and loaded from there
//! when the guest, the prelude, wasmtime and the engine settings are the same (they are all
//! in the file name). `CODE_MODE_QUICKJS_WASM_CACHE=off` disables it.
//!
//! Files are written atomically (temporary file + rename) and carry a checksum of their
//! contents; a file that fails the checksum or that wasmtime refuses is ignored and rebuilt.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::{Engine, Module};

/// Hex digest of everything the compiled artifact depends on.
pub(crate) fn key(engine: &Engine, inputs: &[&[u8]]) -> String {
    let mut h = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    for input in inputs {
        input.hash(&mut h);
    }
    env!("CARGO_PKG_VERSION").hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The cache folder, or `None` when disabled or when no folder can be found.
pub(crate) fn dir() -> Option<PathBuf> {
    match std::env::var("CODE_MODE_QUICKJS_WASM_CACHE") {
        Ok(v) if v == "off" || v == "0" || v.is_empty() => return None,
        Ok(v) => return Some(PathBuf::from(v)),
        Err(_) => {}
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("code-mode").join("quickjs-wasm"))
}

fn checksum(bytes: &[u8]) -> [u8; 8] {
    let mut h = std::hash::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish().to_le_bytes()
}

/// The cached module, if a valid one exists.
pub(crate) fn load(dir: &Path, engine: &Engine, key: &str) -> Option<Module> {
    let path = dir.join(format!("guest-{key}.cwasm"));
    let data = std::fs::read(&path).ok()?;
    let (bytes, sum) = data.split_at_checked(data.len().checked_sub(8)?)?;
    if checksum(bytes) != sum {
        return None;
    }
    // SAFETY: the bytes were produced by `Module::serialize` of this crate with an engine of
    // the same compatibility hash (part of the file name), and the checksum shows they are
    // unchanged since. wasmtime also checks the header and version. The folder is the
    // user's own cache; anyone who can write there can already run code as the user.
    unsafe { Module::deserialize(engine, bytes) }.ok()
}

/// Stores the module; failures only cost the next process a rebuild.
pub(crate) fn store(dir: &Path, module: &Module, key: &str) {
    let Ok(mut bytes) = module.serialize() else {
        return;
    };
    let sum = checksum(&bytes);
    bytes.extend_from_slice(&sum);
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(".guest-{key}.{}.tmp", std::process::id()));
    if std::fs::write(&tmp, &bytes).is_ok() {
        let _ = std::fs::rename(&tmp, dir.join(format!("guest-{key}.cwasm")));
    }
    let _ = std::fs::remove_file(&tmp);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damaged_files() {
        let dir = std::env::temp_dir().join(format!("code-mode-wasm-cache-{}", std::process::id()));
        let engine = Engine::default();
        // The smallest valid module: magic and version.
        let module = Module::new(&engine, b"\0asm\x01\0\0\0").unwrap();
        let key = key(&engine, &[b"guest", b"prelude"]);
        assert_ne!(key, super::key(&engine, &[b"guest", b"other prelude"]));
        assert!(load(&dir, &engine, &key).is_none());
        store(&dir, &module, &key);
        assert!(load(&dir, &engine, &key).is_some());
        let path = dir.join(format!("guest-{key}.cwasm"));
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert!(
            load(&dir, &engine, &key).is_none(),
            "a flipped byte is detected"
        );
        std::fs::write(&path, b"short").unwrap();
        assert!(load(&dir, &engine, &key).is_none());
        std::fs::write(&path, b"").unwrap();
        assert!(load(&dir, &engine, &key).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
