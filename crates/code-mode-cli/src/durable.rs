//! The snapshot vault `code-mode` gives a driver that can pause durably (QuickJS-WASM):
//! `code-mode mcp` then asks clients on MCP protocol 2026-07-28 for approvals with
//! `input_required` rounds (or tasks), the program sealed in between (see `code-mode-mcp`).
//!
//! The key comes from `CODE_MODE_SNAPSHOT_KEY` (64 hexadecimal characters, never a flag,
//! so it shows in no process list; `CODE_MODE_SNAPSHOT_KEY_ID` names it, default 1): with
//! it, a paused program survives a restart of the server. Without it, each process draws a
//! random key, and paused programs resume only in the process that sealed them.

use code_mode::durable::{SnapshotKey, SnapshotVault};

/// The vault of this process (see the module docs).
pub(crate) fn vault() -> Result<SnapshotVault, String> {
    let id = match std::env::var("CODE_MODE_SNAPSHOT_KEY_ID") {
        Ok(text) => text.trim().parse::<u32>().map_err(|_| {
            format!("CODE_MODE_SNAPSHOT_KEY_ID must be a number from 0 to 4294967295, not {text:?}")
        })?,
        Err(_) => 1,
    };
    let key = match std::env::var("CODE_MODE_SNAPSHOT_KEY") {
        Ok(hex) => SnapshotKey::new(id, parse_key(&hex)?),
        Err(_) => SnapshotKey::generate(id).map_err(|e| e.to_string())?,
    };
    Ok(SnapshotVault::new(key))
}

/// 32 bytes from 64 hexadecimal characters; the error never repeats the value.
fn parse_key(hex: &str) -> Result<[u8; 32], String> {
    let hex = hex.trim();
    let bad = || {
        format!(
            "CODE_MODE_SNAPSHOT_KEY must be 64 hexadecimal characters (32 bytes); it has {} characters{}",
            hex.chars().count(),
            if hex.chars().all(|c| c.is_ascii_hexdigit()) {
                ""
            } else {
                ", not all hexadecimal"
            }
        )
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_64_hex_characters_and_errors_do_not_repeat_them() {
        let key = parse_key(&"0a".repeat(32)).unwrap();
        assert_eq!(key, [10; 32]);
        let err = parse_key("secret-value").unwrap_err();
        assert!(
            err.contains("has 12 characters, not all hexadecimal"),
            "{err}"
        );
        assert!(!err.contains("secret-value"), "{err}");
        assert!(parse_key(&"zz".repeat(32)).is_err());
    }
}
