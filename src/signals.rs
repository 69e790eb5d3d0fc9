//! Stop signals: Ctrl-C everywhere, SIGTERM and SIGHUP on Unix, the console close, Ctrl-Break,
//! logoff and shutdown events on Windows. Each one becomes the shutdown future the commands
//! take, so every way of stopping tikrelay saves and flushes the same way.

/// Completes when the relay is asked to stop: Ctrl-C, and also SIGTERM and SIGHUP on Unix (a
/// service manager stopping it, its terminal closing), or the console window closing, the user
/// logging off or the PC shutting down on Windows. All of them end the same way as Ctrl-C, so
/// pending alerts and totals are saved and recordings flushed; before this, SIGTERM killed the
/// process and lost what changed in the last second. A signal that cannot be installed is
/// logged and the others still work.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "Ctrl-C",
            Err(e) => {
                tracing::warn!("cannot listen for Ctrl-C ({e})");
                std::future::pending().await
            }
        }
    };
    let why = tokio::select! {
        why = ctrl_c => why,
        why = os_signals::stop_requested() => why,
    };
    tracing::info!("{why}: shutting down (saving pending alerts and totals)");
}

#[cfg(unix)]
mod os_signals {
    use tokio::signal::unix::{SignalKind, signal};

    async fn one(kind: SignalKind, name: &'static str) -> &'static str {
        match signal(kind) {
            Ok(mut s) => {
                s.recv().await;
                name
            }
            Err(e) => {
                tracing::warn!(
                    "cannot listen for {name} ({e}); it will end tikrelay without saving"
                );
                std::future::pending().await
            }
        }
    }

    /// SIGTERM (`kill`, systemd, docker stop) or SIGHUP (the terminal closed).
    pub async fn stop_requested() -> &'static str {
        tokio::select! {
            why = one(SignalKind::terminate(), "SIGTERM") => why,
            why = one(SignalKind::hangup(), "SIGHUP") => why,
        }
    }
}

#[cfg(windows)]
mod os_signals {
    use tokio::signal::windows;

    /// Awaits one console event; never completes when it cannot be listened for.
    macro_rules! event {
        ($make:path, $name:literal) => {
            async {
                match $make() {
                    Ok(mut s) => {
                        s.recv().await;
                        $name
                    }
                    Err(e) => {
                        tracing::warn!("cannot listen for {} ({e})", $name);
                        std::future::pending().await
                    }
                }
            }
        };
    }

    /// The console window closed, Ctrl-Break, the user logs off or Windows shuts down. Windows
    /// gives a few seconds after these before it ends the process (tokio holds the handler
    /// until then), which is enough to save.
    pub async fn stop_requested() -> &'static str {
        tokio::select! {
            why = event!(windows::ctrl_close, "the console window closing") => why,
            why = event!(windows::ctrl_break, "Ctrl-Break") => why,
            why = event!(windows::ctrl_logoff, "logoff") => why,
            why = event!(windows::ctrl_shutdown, "shutdown") => why,
        }
    }
}

#[cfg(not(any(unix, windows)))]
mod os_signals {
    pub async fn stop_requested() -> &'static str {
        std::future::pending().await
    }
}
