//! Panic messages for the host: a panic sets the call's Extism error to its message before the
//! module aborts, so the bootstrap reports the message rather than the trap alone.

use std::panic::PanicHookInfo;
use std::sync::Once;

/// The longest message handed to the host; the rest of a longer one is cut.
const MAX_MESSAGE: usize = 4096;

/// Installs the hook (once per instance; later calls do nothing). Linking this crate on
/// `wasm32-unknown-unknown` installs it when the instance is created; call it at the start of
/// a handler elsewhere (WASI).
pub fn install() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // The hook before (under WASI the default one, which writes to standard error) still
        // runs after ours.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            report(info);
            previous(info);
        }));
    });
}

/// `panicked at src/lib.rs:6:44: <payload>`, on one line, at most [`MAX_MESSAGE`] bytes.
pub fn message(info: &PanicHookInfo<'_>) -> String {
    let payload = info
        .payload()
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string());
    let mut message = match info.location() {
        Some(at) => format!(
            "panicked at {}:{}:{}: {payload}",
            at.file(),
            at.line(),
            at.column()
        ),
        None => format!("panicked: {payload}"),
    }
    .replace('\n', " ");
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}

fn report(info: &PanicHookInfo<'_>) {
    let message = message(info);
    if let Ok(memory) = extism_pdk::Memory::from_bytes(&message) {
        // SAFETY: the offset is of a block just allocated and filled in the host's memory.
        unsafe { extism_pdk::extism::error_set(memory.offset()) };
    }
}
