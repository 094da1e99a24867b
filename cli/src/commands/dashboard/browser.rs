//! Opening the printed URL in the user's browser, when there is one to open.

/// Whether a browser can show anything here: on Linux and the BSDs that needs a graphical
/// session; macOS and Windows always have one.
fn has_display() -> bool {
    if cfg!(any(target_os = "macos", target_os = "windows")) {
        return true;
    }
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()))
}

/// Opens `url` without waiting for the browser; says why not when it cannot.
pub fn open(url: &str) {
    if !has_display() {
        eprintln!("no display to open a browser on; open {url} yourself");
        return;
    }
    if let Err(e) = open::that_detached(url) {
        eprintln!("cannot open a browser ({e}); open {url} yourself");
    }
}
