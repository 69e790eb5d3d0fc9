//! Wires the parts together for each command: bind, build the hub and themes, start the
//! pipeline and the source, serve until shutdown. Errors carry the exit code DESIGN.md gives.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::cli::{Cli, Command, CommonArgs, LiveArgs, ReplayArgs};
use crate::events::Source;
use crate::events::normalise::Normaliser;
use crate::hub::Hub;
use crate::pipeline::{self, Input};
use crate::recorder::{EventRecorder, FrameRecorder};
use crate::server::{self, OriginPolicy, Relay};
use crate::sources::demo;
use crate::sources::replay::{self, ReplayOptions};
use crate::stats::Stats;
use crate::themes::{ThemeRegistry, ThemeSources};
use crate::tiktok::ws::Outputs;
use crate::tiktok::{Endpoints, LiveConfig, Target, Timings, client};

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
        Command::Live(args) => {
            let config = live_config(&args)?;
            let listener = bind(&cli.common).await?;
            let record = RecordPaths {
                frames: args.record.clone(),
                events: args.record_events.clone(),
            };
            live(
                listener,
                &cli.common,
                config,
                record,
                args.exit_on_end,
                shutdown,
            )
            .await
        }
        Command::Replay(args) => replay(&cli.common, args, shutdown).await,
    }
}

/// Validates the `live` flags into the live client's configuration.
pub fn live_config(args: &LiveArgs) -> Result<LiveConfig, AppError> {
    let target = Target::parse(&args.target).map_err(AppError::Usage)?;
    let t = &args.tiktok;
    let endpoints = Endpoints::new(&t.tiktok_web_url, &t.tiktok_webcast_url, &t.sign_url);
    endpoints.validate().map_err(AppError::Usage)?;
    Ok(LiveConfig {
        target,
        endpoints,
        sign_api_key: t
            .sign_api_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string),
        wait_live: args.wait_live,
        timings: Timings::default(),
    })
}

/// Where `live` records, if anywhere.
#[derive(Debug, Clone, Default)]
pub struct RecordPaths {
    /// Raw frames (TIKREC1).
    pub frames: Option<PathBuf>,
    /// Relayed events (JSONL).
    pub events: Option<PathBuf>,
}

fn record_error(path: &Path, e: std::io::Error) -> AppError {
    AppError::Usage(format!(
        "cannot write the recording {}: {e} (check that the folder exists and is writable)",
        path.display()
    ))
}

/// Relays a TikTok LIVE. Returns when the LIVE ends and `exit_on_end` is set, on shutdown, or
/// with the error that stopped the live client before it could relay anything (exit code 3).
///
/// Without `exit_on_end`, the end of the LIVE stops the live client but the server stays up,
/// so overlays keep showing the final totals until the streamer presses Ctrl-C (exit code 0).
pub async fn live(
    listener: TcpListener,
    common: &CommonArgs,
    config: LiveConfig,
    record: RecordPaths,
    exit_on_end: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let frames = match &record.frames {
        Some(p) => Some(FrameRecorder::create(p).map_err(|e| record_error(p, e))?),
        None => None,
    };
    let running = start(listener, common, Source::Tiktok)?;
    let events = match &record.events {
        Some(p) => Some(
            EventRecorder::start(p, running.hub.subscribe_events())
                .map_err(|e| record_error(p, e))?,
        ),
        None => None,
    };
    let input = running.input.clone();
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(running.serve(async move {
        let _ = server_stopped.await;
    }));
    let outputs = Outputs {
        input: input.clone(),
        recorder: frames.clone(),
    };
    let who = config.target.to_string();
    let mut source = tokio::spawn(client::run(config, outputs));
    tokio::pin!(shutdown);
    let result = tokio::select! {
        _ = &mut shutdown => {
            source.abort();
            Ok(())
        }
        done = &mut source => match done {
            Ok(Ok(())) if exit_on_end => {
                drain(&input).await;
                Ok(())
            }
            Ok(Ok(())) => {
                drain(&input).await;
                tracing::info!(
                    "{who}: the LIVE has ended; overlays stay served until Ctrl-C (use --wait-live to wait for the next LIVE)"
                );
                shutdown.await;
                Ok(())
            }
            Ok(Err(e)) => Err(AppError::Unreachable(e.to_string())),
            Err(e) => Err(AppError::Other(anyhow::anyhow!("the live client stopped: {e}"))),
        }
    };
    let _ = stop_server.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    if let Some(f) = frames {
        f.finish().await;
    }
    if let Some(e) = events {
        e.finish().await;
    }
    result
}

/// Waits until the pipeline has taken every input, then a moment for clients to receive it.
async fn drain(input: &mpsc::Sender<Input>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while input.capacity() < input.max_capacity() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
}

/// Plays a recording; with `--no-server`, prints the throughput at the end.
pub async fn replay(
    common: &CommonArgs,
    args: ReplayArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        return Err(AppError::Usage(format!(
            "--speed {} is not a speed; give a factor above 0, e.g. --speed 2",
            args.speed
        )));
    }
    if !args.file.is_file() {
        return Err(AppError::Usage(format!(
            "cannot read {}: no such file",
            args.file.display()
        )));
    }
    let options = ReplayOptions {
        speed: args.speed,
        max: args.max,
        repeat: args.repeat,
    };
    let replay_error = |e: replay::ReplayError| AppError::Usage(e.to_string());
    if args.no_server {
        let combo_timeout = Duration::try_from_secs_f64(common.combo_timeout)
            .map_err(|_| AppError::Usage("--combo-timeout takes seconds, e.g. 10".into()))?;
        let hub = Hub::new(Arc::new(Stats::default()));
        let events = match &args.jsonl {
            Some(p) => Some(
                EventRecorder::start(p, hub.subscribe_events()).map_err(|e| record_error(p, e))?,
            ),
            None => None,
        };
        let (tx, rx) = mpsc::channel(pipeline::INPUT_BUFFER);
        let pipeline = tokio::spawn(pipeline::run(
            rx,
            Normaliser::new(Source::Replay, combo_timeout),
            hub.clone(),
        ));
        let started = std::time::Instant::now();
        let played = tokio::select! {
            r = replay::run(args.file.clone(), options, tx) => r.map(|_| ()),
            _ = shutdown => Ok(()),
        };
        let report = pipeline.await.unwrap_or_default();
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        if let Some(e) = events {
            e.finish().await;
        }
        played.map_err(replay_error)?;
        let messages = report.normalise.messages;
        println!(
            "replayed {messages} messages ({} duplicates, {} undecodable) into {} events in {elapsed:.3} s: {:.0} messages/s, {:.0} events/s",
            report.normalise.duplicates,
            report.normalise.undecodable,
            report.events,
            messages as f64 / elapsed,
            report.events as f64 / elapsed,
        );
        return Ok(());
    }
    let listener = bind(common).await?;
    let running = start(listener, common, Source::Replay)?;
    running.hub.stats().set_connection("replay", "connected");
    let events = match &args.jsonl {
        Some(p) => Some(
            EventRecorder::start(p, running.hub.subscribe_events())
                .map_err(|e| record_error(p, e))?,
        ),
        None => None,
    };
    let input = running.input.clone();
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(running.serve(async move {
        let _ = server_stopped.await;
    }));
    let played = tokio::select! {
        r = replay::run(args.file.clone(), options, input.clone()) => r.map(|_| ()),
        _ = shutdown => Ok(()),
    };
    drain(&input).await;
    let _ = stop_server.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    if let Some(e) = events {
        e.finish().await;
    }
    played.map_err(replay_error)?;
    tracing::info!("replay finished");
    Ok(())
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
    let stats = Arc::new(Stats::default());
    stats.set_connection(source.as_str(), "starting");
    let hub = Hub::new(stats);
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
    });
    Ok(Running {
        addr,
        hub,
        input,
        listener,
        relay,
    })
}

impl Running {
    /// Prints the listening line and the URLs, then serves until `shutdown`.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        self.print_urls();
        server::serve(self.listener, self.relay, shutdown).await;
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
