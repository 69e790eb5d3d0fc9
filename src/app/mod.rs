//! Wires the parts together for each command: bind, build the stats, hub, alert queues, trigger
//! engine and themes, start the pipeline with its consumers in their order (stats, triggers,
//! hub: see [`crate::consumers`]) and the source, serve until shutdown. This is the one place
//! parts are connected;
//! the commands' own bodies live beside it (`check`, `live`, `replay`), as does what a starting
//! relay prints (`urls`). Errors carry the exit code DESIGN.md gives.

mod browser;
mod check;
mod config;
mod console;
mod live;
mod replay;
mod saved;
mod urls;

pub use check::check;
pub use console::hold_window_on_error;
pub use live::{live, live_config, live_defaults};
pub use replay::replay;
pub use saved::start_saved;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::alerts::{AlertQueues, SavedAlerts};
use crate::cli::{Cli, Command, CommonArgs};
use crate::config::Config;
use crate::config::current::ConfigState;
use crate::consumers::Consumers;
use crate::events::Source;
use crate::hub::{Audience, Hub, Outbound};
use crate::persist::{ALERTS_FILE, DataDir, Saver};
use crate::pipeline::{self, Feed};
use crate::recorder::EventRecorder;
use crate::server::{self, OriginPolicy, Relay};
use crate::sessions::Sessions;
use crate::sources::demo;
use crate::sources::manager::{SourceManager, SourceSpec};
use crate::stats::Stats;
use crate::themes::watch::ThemeWatcher;
use crate::themes::{ThemeRegistry, ThemeSources};
use crate::triggers::{Actions, Engine, TriggerEngine};

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

pub async fn run(
    mut cli: Cli,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    // Without a command, the saved config and port fill in what was not given, before the
    // per-user config file does.
    let saved = match cli.command {
        None => Some(saved::apply_saved(&mut cli.common)?),
        Some(_) => None,
    };
    config::resolve(&mut cli);
    let Some(command) = cli.command else {
        let saved = saved.unwrap_or_default();
        return start_saved(cli.common, cli.start, saved, shutdown).await;
    };
    match command {
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
            running
                .sources
                .start(SourceSpec::Demo {
                    name: None,
                    options,
                })
                .map_err(|e| AppError::Usage(e.to_string()))?;
            running.serve(shutdown).await;
            Ok(())
        }
        Command::Check(_) => check(&cli.common),
        Command::Theme(crate::cli::ThemeCommand::New { dir }) => check::theme_new(&dir),
        Command::Live(args) => {
            let mut config = live_config(&cli.common, &args)?;
            for one in &mut config {
                config::sign_key_from_file(one, &cli.common);
            }
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

/// Loads and validates `--config` (or the built-in default); invalid is a usage error (exit 2).
pub fn load_config(common: &CommonArgs) -> Result<Config, AppError> {
    crate::config::load(common.config.as_deref()).map_err(|e| AppError::Usage(e.to_string()))
}

/// Opens `--data-dir` (an error if it cannot be used) or the per-user default (a warning, and
/// nothing is saved, if it cannot be used). Demo and replay sessions keep their alerts and
/// totals in a subfolder of their own, so trying the demo never leaves alerts pending for the
/// next live stream.
fn open_data_dir(common: &CommonArgs, source: Source) -> Result<Option<DataDir>, AppError> {
    let sub = match source {
        Source::Tiktok => None,
        Source::Demo | Source::Test => Some("demo"),
        Source::Replay => Some("replay"),
    };
    let with_sub = |dir: &std::path::Path| match sub {
        Some(sub) => dir.join(sub),
        None => dir.to_path_buf(),
    };
    if let Some(dir) = &common.data_dir {
        let dir = &with_sub(dir);
        return DataDir::open(dir).map(Some).map_err(|e| {
            AppError::Usage(format!(
                "--data-dir {}: {e}; pass a folder you can write to",
                dir.display()
            ))
        });
    }
    let Some(dir) = crate::persist::default_data_dir().map(|d| with_sub(&d)) else {
        // The variable the default folder comes from (see persist::default_data_dir).
        let var = if cfg!(windows) { "APPDATA" } else { "HOME" };
        tracing::warn!(
            "no data folder found ({var} is not set); pending alerts and totals will not survive a restart; pass --data-dir"
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

fn theme_sources(common: &CommonArgs) -> ThemeSources {
    ThemeSources {
        overlays_dir: common.overlays.clone(),
        templates_dir: common.templates.clone(),
    }
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

/// Starts `--record-events`/`--jsonl` recording of what the hub publishes, if asked for.
fn record_events(path: Option<&Path>, hub: &Hub) -> Result<Option<EventRecorder>, AppError> {
    path.map(|p| EventRecorder::start(p, hub.subscribe_events()).map_err(|e| record_error(p, e)))
        .transpose()
}

/// A server running in its own task, stopped by [`Served::stop`].
struct Served {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    fn spawn(running: Running) -> Served {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(running.serve(async move {
            let _ = stopped.await;
        }));
        Served { stop, task }
    }

    /// Stops the server; waits a little for it to save and close.
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// Waits until the pipeline has taken every input, then a moment for clients to receive it.
async fn drain(input: &Feed) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while input.capacity() < input.max_capacity() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
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
    /// Session totals (the pipeline's first consumer).
    pub stats: Arc<Stats>,
    /// A feed into the pipeline tagged with the command's own stream (`demo`, `replay`,
    /// `tiktok`), for inputs that come from no managed source (tests, benchmarks).
    pub input: Feed,
    /// The sources feeding the pipeline; started and stopped at will.
    pub sources: Arc<SourceManager>,
    listener: TcpListener,
    relay: Arc<Relay>,
    /// Hot reload of `--overlays`/`--templates`; lives as long as the server.
    watcher: Option<ThemeWatcher>,
    /// Hot reload of the config file; lives as long as the server.
    config_watcher: Option<crate::config::watch::ConfigWatcher>,
    /// The config in use, reloaded when its file is saved.
    pub config: Arc<ConfigState>,
    /// Alert queues, triggers and the data dir saver.
    pub engine: Arc<Engine>,
    /// The TikFinity-compatible socket's address, when it is open.
    pub compat_addr: Option<SocketAddr>,
    compat: Option<(TcpListener, Arc<crate::compat::Clients>)>,
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
    let limits = server_limits(common)?;
    let origin = OriginPolicy::new(addr).with_token(urls::access_token(common, addr));
    let config = Arc::new(load_config(common)?);
    let config_state = ConfigState::new(common.config.clone(), config.clone());
    let data = open_data_dir(common, source)?;
    let setup = saved::setup_store(common, source, &data)?;
    let sessions = Sessions::restore(data.as_ref(), common.new_session);
    sessions.spawn_archiver();
    let stats = sessions.stats().clone();
    stats.set_connection(source.as_str(), "starting");
    stats.set_goals(config.goals);
    let hub = Hub::new();
    let compat = open_compat(common, &config, &hub, &stats, addr)?;
    if let Some(d) = &data {
        tracing::info!("data dir: {}", d.path().display());
    }
    let obs = config.obs.clone();
    let media = open_media(common, data.is_some(), &config.media);
    let engine = start_engine(config, &hub, &stats, data);
    let themes = Arc::new(ThemeRegistry::load(theme_sources(common)));
    let (pipeline_tx, pipeline_rx) = pipeline::channel();
    let consumers = Consumers::new(stats.clone(), hub.clone()).with_triggers(engine.clone());
    tokio::spawn(pipeline::run(pipeline_rx, combo_timeout, consumers));
    let input = Feed::new(pipeline_tx.clone(), source.as_str(), source);
    let mut live = live_defaults(common)?;
    // The config file's `[live] sign_api_key` when neither the flag nor the variable gave one.
    live.sign_api_key = live.sign_api_key.or_else(|| config_state.sign_api_key());
    let sources = SourceManager::new(pipeline_tx, live);
    config::follow_sign_key(&config_state, &sources, common);
    spawn_state_push(&stats, &hub);
    let relay = Arc::new(Relay {
        hub: hub.clone(),
        stats: stats.clone(),
        themes: themes.clone(),
        input: input.clone(),
        sources: sources.clone(),
        origin,
        alerts: engine.alerts.clone(),
        obs,
        limits,
        media,
        sessions,
        config: config_state.clone(),
        engine: engine.clone(),
        setup,
    });
    let watcher = watch_themes(&themes, &hub);
    let config_watcher = config::follow(&config_state, &engine, &stats, &hub);
    Ok(Running {
        addr,
        hub,
        stats,
        input,
        sources,
        listener,
        relay,
        watcher,
        config_watcher,
        config: config_state,
        engine,
        compat_addr: compat.as_ref().and_then(|(l, _)| l.local_addr().ok()),
        compat,
    })
}

/// Builds the alert queues (restored from `data`, publishing through the hub), the data dir
/// saver, the action workers and the trigger engine. Must run inside a tokio runtime.
fn start_engine(
    config: Arc<Config>,
    hub: &Arc<Hub>,
    stats: &Arc<Stats>,
    data: Option<DataDir>,
) -> Arc<Engine> {
    let alerts = AlertQueues::new(&config.queues, hub.publisher());
    if let Some(saved) = data
        .as_ref()
        .and_then(|d| d.load::<SavedAlerts>(ALERTS_FILE))
    {
        alerts.restore(saved);
    }
    tokio::spawn(alerts.clone().run());
    let saver = data.map(|dir| {
        let saver = Saver::new(dir, stats.clone(), &alerts);
        let s = saver.clone();
        alerts.on_change(move || s.mark_dirty());
        tokio::spawn(saver.clone().run());
        saver
    });
    let actions = Actions::spawn(&config);
    let triggers = TriggerEngine::new(config, alerts.clone(), actions);
    Arc::new(Engine::new(triggers, alerts, saver, stats.clone()))
}

/// Pushes the parts of the totals that changed to overlays as one `state` message every
/// [`STATE_PUSH_INTERVAL`], so a like storm becomes a few messages a second; ends with the hub.
fn spawn_state_push(stats: &Arc<Stats>, hub: &Arc<Hub>) {
    let stats = stats.clone();
    let hub = Arc::downgrade(hub);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(STATE_PUSH_INTERVAL);
        loop {
            tick.tick().await;
            let Some(hub) = hub.upgrade() else { break };
            if let Some(changed) = stats.take_changes() {
                hub.send(Outbound::relay("state", changed, Audience::All));
            }
        }
    });
}

/// Opens the image cache in the `media` folder of the data dir (a temp folder without one).
/// Live, demo and replay share it (unlike their session files): a replay shows the images the
/// live session cached. A cache that cannot be opened is logged and `/media` answers 503; the
/// relay goes on.
fn open_media(
    common: &CommonArgs,
    have_data_dir: bool,
    settings: &crate::media::MediaSettings,
) -> Option<Arc<crate::media::MediaCache>> {
    let base = common
        .data_dir
        .clone()
        .or_else(crate::persist::default_data_dir)
        .filter(|_| have_data_dir);
    let dir = match base {
        Some(d) => d.join("media"),
        None => std::env::temp_dir().join("tikrelay-media"),
    };
    match crate::media::MediaCache::open(&dir, settings) {
        Ok(cache) => Some(Arc::new(cache)),
        Err(e) => {
            tracing::warn!("{e}; avatars and gift images will not be cached (pass --data-dir)");
            None
        }
    }
}

/// Opens the TikFinity-compatible socket when `--compat-port` or `[compat] port` asks for it
/// (the flag wins), and starts feeding it from the hub.
fn open_compat(
    common: &CommonArgs,
    config: &Config,
    hub: &Arc<Hub>,
    stats: &Arc<Stats>,
    relay_addr: SocketAddr,
) -> Result<Option<(TcpListener, Arc<crate::compat::Clients>)>, AppError> {
    let Some(port) = common.compat_port.or(config.compat_port) else {
        return Ok(None);
    };
    let listener = crate::compat::bind(&common.host, port).map_err(|e| {
        let hint = match e.source.kind() {
            std::io::ErrorKind::AddrInUse => {
                "another program uses this port (TikFinity itself, if it runs, holds 21213); close it or pass another --compat-port"
            }
            std::io::ErrorKind::PermissionDenied => "pick a port above 1024 with --compat-port",
            _ => "check --host and --compat-port",
        };
        AppError::Bind {
            addr: e.addr,
            source: e.source,
            hint,
        }
    })?;
    let clients = crate::compat::start(hub, stats.clone(), format!("http://{relay_addr}"));
    Ok(Some((listener, clients)))
}

/// The timeouts and connection cap from the flags; the cap fits the open-file limit, which is
/// first raised as far as the OS allows.
fn server_limits(common: &CommonArgs) -> Result<server::Limits, AppError> {
    let secs = |value: f64, flag: &str| {
        Duration::try_from_secs_f64(value)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| AppError::Usage(format!("{flag} takes seconds above 0, e.g. 10")))
    };
    let header_timeout = secs(common.header_timeout, "--header-timeout")?;
    let idle_timeout = secs(common.idle_timeout, "--idle-timeout")?;
    if common.max_connections == 0 {
        return Err(AppError::Usage(
            "--max-connections takes a number above 0, e.g. 1024".into(),
        ));
    }
    let fd_limit = server::limits::raise_fd_limit();
    let max_connections = server::limits::fit_cap(common.max_connections, fd_limit);
    if max_connections < common.max_connections {
        tracing::warn!(
            "--max-connections {} lowered to {max_connections} to fit the open-file limit ({}); raise it with ulimit -n",
            common.max_connections,
            fd_limit.unwrap_or_default()
        );
    }
    Ok(server::Limits {
        header_timeout,
        idle_timeout,
        max_connections,
    })
}

/// Starts hot reload: theme changes become `reload` and `template_error` messages for pages.
/// A folder that cannot be watched is logged; the relay still serves it, without hot reload.
fn watch_themes(themes: &Arc<ThemeRegistry>, hub: &Arc<Hub>) -> Option<ThemeWatcher> {
    let hub = Arc::downgrade(hub);
    let result = crate::themes::watch::spawn(themes.clone(), move |changes| {
        let Some(hub) = hub.upgrade() else { return };
        for change in changes {
            hub.send(change.message());
        }
    });
    match result {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("{e}; pages will not reload on save (restart tikrelay after edits)");
            None
        }
    }
}

impl Running {
    /// Prints the listening line and the URLs, then serves until `shutdown`.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        self.print_urls();
        let _watcher = self.watcher;
        let _config_watcher = self.config_watcher;
        let engine = self.engine.clone();
        let sessions = self.relay.sessions.clone();
        // Save before the server drains its connections: pending alerts and totals must reach
        // the disk even if a client holds the graceful shutdown up.
        let shutdown = async move {
            shutdown.await;
            sessions.collect();
            engine.save_now();
        };
        let (compat_stop, compat_stopped) = tokio::sync::oneshot::channel::<()>();
        if let Some((listener, clients)) = self.compat {
            tokio::spawn(crate::compat::serve(listener, clients, async move {
                let _ = compat_stopped.await;
            }));
        }
        server::serve(self.listener, self.relay, shutdown).await;
        let _ = compat_stop.send(());
        self.engine.save_now();
    }
}
