//! The console window of a double-clicked start. Windows gives a program started from Explorer a
//! console of its own and closes it the moment the program exits, so an error would flash by
//! unread; in that case (and only then: not in a PowerShell or cmd window the streamer opened,
//! nor on other systems, where a terminal stays open) a failed start waits for Enter.

use std::io::IsTerminal;

/// Whether this process is alone in its console, i.e. the console was made for it (a
/// double-click). Elsewhere, and in a console shared with a shell, `false`.
fn console_is_our_own() -> bool {
    #[cfg(windows)]
    {
        #[link(name = "kernel32")]
        unsafe extern "system" {
            fn GetConsoleProcessList(list: *mut u32, count: u32) -> u32;
        }
        let mut ids = [0u32; 4];
        // SAFETY: the buffer and its length match; the call only writes within it.
        let attached = unsafe { GetConsoleProcessList(ids.as_mut_ptr(), ids.len() as u32) };
        attached == 1
    }
    #[cfg(not(windows))]
    {
        false
    }
}

/// Called when tikrelay is about to exit with an error: in a console made for it, says so and
/// waits for Enter, so the streamer can read the error before the window closes.
pub fn hold_window_on_error() {
    if console_is_our_own() && std::io::stdin().is_terminal() {
        eprintln!("press Enter to close this window");
        let _ = std::io::stdin().read_line(&mut String::new());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(not(windows))]
    fn elsewhere_an_error_never_waits() {
        // A terminal on Linux or macOS stays open after the program ends: nothing to hold.
        assert!(!super::console_is_our_own());
    }
}
