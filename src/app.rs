//! Wires the parts together for each command: bind, build the hub and themes, start the
//! pipeline and the source, serve until shutdown. Errors carry the exit code DESIGN.md gives.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::cli::{Cli, Command, CommonArgs};
use crate::config::Config;
use crate::events::Source;
use crate::events::normalise::Normaliser;
use crate::hub::Hub;
use crate::persist::{DataDir, SESSION_FILE};
use crate::pipeline::{self, Input};
use crate::server::{self, OriginPolicy, Relay};
use crate::sources::demo;
use crate::stats::SessionState;
use crate::stats::Stats;
use crate::themes::{ThemeRegistry, ThemeSources};
use crate::triggers::{self, Engine};

/// How often changed totals are pushed to overlays as `state` messages.
const STATE_PUSH_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot listen on {addr}: {source} ({hint})")]
    Bind {
        addr: String,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("{0}")]
    Unreachable(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl AppError {
    /// 2 bad usage or invalid config/theme, 3 stream unreachable, 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Usage(_) | AppError::Bind { .. } => 2,
            AppError::Unreachable(_) => 3,
            AppError::Other(_) => 1,
        }
    }
}

/// Completes on Ctrl-C (or never, if the signal cannot be installed).
pub async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
    tracing::info!("Ctrl-C: shutting down");
}

pub async fn run(
    cli: Cli,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    match cli.command {
        Command::Demo(args) => {
            let options = demo::DemoOptions {
                rate: args.rate,
                seed: args.seed,
            };
            if !(options.rate.is_finite() && options.rate >= 0.0) {
                return Err(AppError::Usage(format!(
                    "--rate {} is not a rate; give messages per second, e.g. --rate 4",
                    args.rate
                )));
            }
            let listener = bind(&cli.common).await?;
            let running = start(listener, &cli.common, Source::Demo)?;
            let tx = running.input.clone();
            tokio::spawn(demo::run(options, tx));
            running.serve(shutdown).await;
            Ok(())
        }
        Command::Check(_) => check(&cli.common),
    }
}

/// `tikrelay check`: validates what the common options point at, prints one line per part,
/// and fails (exit 2) on the first invalid one.
pub fn check(common: &CommonArgs) -> Result<(), AppError> {
    let config = load_config(common)?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "config ok: {} ({} triggers; queues: {})",
        config.origin,
        config.triggers.len(),
        config.queues.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    // Further checks (themes with --overlays) add their lines here.
    Ok(())
}

/// Loads and validates `--config` (or the built-in default); invalid is a usage error (exit 2).
pub fn load_config(common: &CommonArgs) -> Result<Config, AppError> {
    crate::config::load(common.config.as_deref()).map_err(|e| AppError::Usage(e.to_string()))
}

/// Opens `--data-dir` (an error if it cannot be used) or the per-user default (a warning, and
/// nothing is saved, if it cannot be used).
fn open_data_dir(common: &CommonArgs) -> Result<Option<DataDir>, AppError> {
    if let Some(dir) = &common.data_dir {
        return DataDir::open(dir).map(Some).map_err(|e| {
            AppError::Usage(format!(
                "--data-dir {}: {e}; pass a folder you can write to",
                dir.display()
            ))
        });
    }
    let Some(dir) = crate::persist::default_data_dir() else {
        tracing::warn!(
            "no data folder found (HOME is not set); pending alerts and totals will not survive a restart; pass --data-dir"
        );
        return Ok(None);
    };
    match DataDir::open(&dir) {
        Ok(d) => Ok(Some(d)),
        Err(e) => {
            tracing::warn!(
                "cannot use {} ({e}); pending alerts and totals will not survive a restart; pass --data-dir",
                dir.display()
            );
            Ok(None)
        }
    }
}

/// Binds the listening socket; a port in use is a usage error with a hint, not a panic.
pub async fn bind(common: &CommonArgs) -> Result<TcpListener, AppError> {
    let addr = format!("{}:{}", common.host, common.port);
    TcpListener::bind(&addr).await.map_err(|source| {
        let hint = match source.kind() {
            std::io::ErrorKind::AddrInUse => {
                "another program (or another tikrelay) uses this port; stop it or pass --port with a free port"
            }
            std::io::ErrorKind::PermissionDenied => "pick a port above 1024 with --port",
            _ => "check --host and --port",
        };
        AppError::Bind { addr, source, hint }
    })
}

/// A relay that is set up and about to serve.
pub struct Running {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    pub input: mpsc::Sender<Input>,
    listener: TcpListener,
    relay: Arc<Relay>,
    /// Alert queues, triggers and the data dir saver.
    pub engine: Arc<Engine>,
}

/// Builds the hub, themes and pipeline around a bound listener.
pub fn start(
    listener: TcpListener,
    common: &CommonArgs,
    source: Source,
) -> Result<Running, AppError> {
    let addr = listener
        .local_addr()
        .map_err(|e| AppError::Other(anyhow::anyhow!("cannot read the listening address: {e}")))?;
    let combo_timeout = Duration::try_from_secs_f64(common.combo_timeout)
        .map_err(|_| AppError::Usage("--combo-timeout takes seconds, e.g. 10".into()))?;
    let config = Arc::new(load_config(common)?);
    let data = open_data_dir(common)?;
    let session = match &data {
        Some(d) if !common.new_session => d.load::<SessionState>(SESSION_FILE),
        _ => None,
    };
    let stats = Arc::new(session.map(Stats::from_state).unwrap_or_default());
    stats.set_connection(source.as_str(), "starting");
    stats.set_goals(config.goals);
    let hub = Hub::new(stats);
    if let Some(d) = &data {
        tracing::info!("data dir: {}", d.path().display());
    }
    let engine = triggers::start(config, &hub, data);
    let themes = Arc::new(ThemeRegistry::load(ThemeSources {
        overlays_dir: common.overlays.clone(),
        templates_dir: common.templates.clone(),
    }));
    let (input, input_rx) = mpsc::channel(pipeline::INPUT_BUFFER);
    tokio::spawn(pipeline::run(
        input_rx,
        Normaliser::new(source, combo_timeout),
        hub.clone(),
    ));
    let pusher = Arc::downgrade(&hub);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(STATE_PUSH_INTERVAL);
        loop {
            tick.tick().await;
            match pusher.upgrade() {
                Some(hub) => hub.push_state_changes(),
                None => break,
            }
        }
    });
    let relay = Arc::new(Relay {
        hub: hub.clone(),
        themes: themes.clone(),
        input: input.clone(),
        origin: OriginPolicy::new(addr),
        alerts: engine.alerts.clone(),
    });
    Ok(Running {
        addr,
        hub,
        input,
        listener,
        relay,
        engine,
    })
}

impl Running {
    /// Prints the listening line and the URLs, then serves until `shutdown`.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        self.print_urls();
        let engine = self.engine.clone();
        // Save before the server drains its connections: pending alerts and totals must reach
        // the disk even if a client holds the graceful shutdown up.
        let shutdown = async move {
            shutdown.await;
            engine.save_now();
        };
        server::serve(self.listener, self.relay, shutdown).await;
        self.engine.save_now();
    }

    fn print_urls(&self) {
        let base = format!("http://{}", self.addr);
        let mut out = std::io::stdout().lock();
        // The first stdout line is machine-read: keep its format.
        let _ = writeln!(out, "listening on {base}");
        let _ = writeln!(out, "dashboard: {base}/");
        let _ = writeln!(out, "overlays (add as OBS Browser sources):");
        for page in self.relay.themes.pages() {
            let _ = writeln!(
                out,
                "  {base}{}  ({}x{})",
                page.path, page.width, page.height
            );
        }
        let _ = out.flush();
    }
}
