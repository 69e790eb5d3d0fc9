//! The `tikrelay` binary: parse the command line, set up logging and TLS, run, and map the
//! outcome to an exit code (0 clean end, 2 bad usage or invalid config/theme, 3 stream
//! unreachable). Started from a console of its own (a double-click on Windows), a failure waits
//! for Enter so the window does not close before it can be read.

use std::process::ExitCode;

use tikrelay::{app, cli::Cli, signals};

fn main() -> ExitCode {
    let code = run();
    if code != ExitCode::SUCCESS {
        app::hold_window_on_error();
    }
    code
}

fn run() -> ExitCode {
    let cli = Cli::parse_args();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cli.common.log_filter()));
    // Logs go to stderr: stdout carries the listening line that scripts and tests read.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // rustls needs exactly one crypto provider; ring is the one compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(app::run(cli, signals::shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(e.exit_code())
        }
    }
}
