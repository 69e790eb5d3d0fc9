//! Opening the dashboard in the default browser when `tikrelay` starts without a command and
//! nothing is saved yet: a double-click then lands on the connect screen. Skipped with
//! `--no-browser` and where no browser can show (Linux without `DISPLAY`/`WAYLAND_DISPLAY`: a
//! server, an SSH session, CI). A browser that cannot be started is logged, never fatal: the
//! console line names the URL to open by hand.

use std::ffi::OsString;
use std::process::{Command, Stdio};

/// Whether a browser window can show here: on Linux and the BSDs only with a display server.
/// `var` reads an environment variable (the real one outside tests).
pub(super) fn has_display(var: impl Fn(&str) -> Option<OsString>) -> bool {
    if cfg!(any(windows, target_os = "macos")) {
        return true;
    }
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|k| var(k).is_some_and(|v| !v.is_empty()))
}

/// The program and arguments that open `url` in the default browser on this OS.
fn opener(url: &str) -> (&'static str, Vec<String>) {
    if cfg!(windows) {
        // Not `cmd /c start`: cmd would read the `&` of a query string as a command separator.
        (
            "rundll32",
            vec!["url.dll,FileProtocolHandler".into(), url.into()],
        )
    } else if cfg!(target_os = "macos") {
        ("open", vec![url.into()])
    } else {
        ("xdg-open", vec![url.into()])
    }
}

/// Opens `url` unless `no_browser` or there is no display; says what happened in the log.
pub(super) fn open_dashboard(url: &str, no_browser: bool) {
    if no_browser {
        return;
    }
    if !has_display(|k| std::env::var_os(k)) {
        tracing::info!("no display, so no browser is opened; open {url} in a browser");
        return;
    }
    let (program, args) = opener(url);
    let spawned = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        Ok(mut child) => {
            // Reap the opener when it exits so it does not linger as a zombie.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            tracing::info!("opened the dashboard in the default browser");
        }
        Err(e) => tracing::warn!("cannot open a browser ({program}: {e}); open {url} yourself"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(unix, not(target_os = "macos")))]
    fn a_display_is_needed_on_linux() {
        let none = |_: &str| None;
        assert!(!has_display(none));
        let empty = |_: &str| Some(OsString::new());
        assert!(!has_display(empty));
        let x11 = |k: &str| (k == "DISPLAY").then(|| OsString::from(":0"));
        assert!(has_display(x11));
        let wayland = |k: &str| (k == "WAYLAND_DISPLAY").then(|| OsString::from("wayland-0"));
        assert!(has_display(wayland));
    }

    #[test]
    fn the_url_is_one_argument_even_with_a_query() {
        let (_, args) = opener("http://127.0.0.1:8642/?token=a&b=c");
        assert_eq!(args.last().unwrap(), "http://127.0.0.1:8642/?token=a&b=c");
    }
}
