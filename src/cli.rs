//! The command line, parsed by clap. This is the raw form; [`crate::app`] validates it and
//! builds what each command needs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// What `tikrelay --version` prints after the name: the version and the commit it was built
/// from (`unknown` outside a git checkout), e.g. `0.1.0 (89712a9)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("TIKRELAY_GIT_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "tikrelay",
    version = VERSION,
    about = "Local TikTok LIVE event relay: JSON events, OBS overlays, alert queues",
    long_about = "tikrelay connects to a TikTok LIVE stream (or a synthetic demo stream), turns what \
happens into JSON events and serves overlay pages plus an event websocket on one local address \
for OBS browser sources."
)]
pub struct Cli {
    /// Without a command, tikrelay starts with the saved setup (see [`StartArgs`]).
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub start: StartArgs,
}

/// Options of the start without a command (`tikrelay` alone, e.g. a double-click): the relay
/// starts with the saved setup (the handles last connected, the config, the port), or idle with
/// the dashboard opened in the browser when nothing is saved.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Do not open the dashboard in the browser (it is never opened without a display).
    #[arg(long)]
    pub no_browser: bool,
}

impl Cli {
    /// Parses the command line (exits with usage on bad input, as clap does) and notes which
    /// options were given rather than defaulted.
    pub fn parse_args() -> Cli {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().get_matches();
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        cli.common.port_given = matches
            .value_source("port")
            .is_some_and(|s| s != clap::parser::ValueSource::DefaultValue);
        cli
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a synthetic stream (no TikTok account needed): the quickest way to see overlays work.
    Demo(DemoArgs),
    /// Validate the config file (--config, else the built-in default) and the themes (every
    /// template and theme.json under --overlays), then exit: 0 when all is well, 2 with file,
    /// line and column otherwise.
    Check(CheckArgs),
    /// Theme folders: `theme new DIR` starts a theme of your own from the built-in one.
    #[command(subcommand)]
    Theme(ThemeCommand),
    /// Relay a TikTok LIVE stream: tikrelay live @user (or user, or room:ID).
    Live(LiveArgs),
    /// Play a recording (--record file, bare frames, or JSONL events) through the relay.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
pub struct LiveArgs {
    /// Whose LIVE: @user, user, a tiktok.com/@user/live link, or room:ID. Several targets
    /// relay several LIVEs side by side, each as its own stream.
    #[arg(required = true, num_args = 1.., value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Write every raw frame to FILE (TIKREC1 format; play it with tikrelay replay).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Write every relayed event to FILE as JSON lines.
    #[arg(long, value_name = "FILE.jsonl")]
    pub record_events: Option<PathBuf>,
    /// Wait until the user goes live (checking every 30 s), and again after the LIVE ends.
    #[arg(long)]
    pub wait_live: bool,
    /// Exit (code 0) when the LIVE ends instead of keeping the overlays served until Ctrl-C.
    #[arg(long, conflicts_with = "wait_live")]
    pub exit_on_end: bool,
}

/// Where the live client connects; every URL can point at a local fake.
#[derive(Debug, Args, Clone)]
pub struct TiktokArgs {
    /// The sign server that makes TikTok's signed first request (Euler Stream by default).
    #[arg(long, global = true, value_name = "URL", default_value = crate::sources::live::DEFAULT_SIGN_URL, env = "TIKRELAY_SIGN_URL")]
    pub sign_url: String,
    /// API key for the sign server (raises its limits). Prefer the environment variable: a
    /// key on the command line shows in the process list.
    #[arg(
        long,
        global = true,
        value_name = "KEY",
        env = "TIKRELAY_SIGN_API_KEY",
        hide_env_values = true
    )]
    pub sign_api_key: Option<String>,
    /// TikTok's web host (live page, room API).
    #[arg(long, global = true, value_name = "URL", default_value = crate::sources::live::DEFAULT_WEB_URL, env = "TIKRELAY_TIKTOK_WEB_URL")]
    pub tiktok_web_url: String,
    /// TikTok's webcast host (live check by room id).
    #[arg(long, global = true, value_name = "URL", default_value = crate::sources::live::DEFAULT_WEBCAST_URL, env = "TIKRELAY_TIKTOK_WEBCAST_URL")]
    pub tiktok_webcast_url: String,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A --record file (TIKREC1), a bare stream of [u32 BE length][push frame], or JSONL events.
    pub file: PathBuf,
    /// Play at X times the recorded speed (0.01 to 10000; waits are at most 60 s).
    #[arg(long, default_value_t = 1.0, conflicts_with = "max")]
    pub speed: f64,
    /// Play as fast as possible (with --no-server: the throughput benchmark).
    #[arg(long)]
    pub max: bool,
    /// Start over at the end, forever.
    #[arg(long = "loop")]
    pub repeat: bool,
    /// Write the relayed events to OUT as JSON lines.
    #[arg(long, value_name = "OUT")]
    pub jsonl: Option<PathBuf>,
    /// Do not serve overlays; print messages/s and events/s at the end.
    #[arg(long)]
    pub no_server: bool,
}

#[derive(Debug, Subcommand)]
pub enum ThemeCommand {
    /// Copy the built-in theme into DIR (a new folder) as a starting point.
    New {
        /// The new theme folder; its name becomes the theme name in overlay URLs.
        dir: PathBuf,
    },
}

/// Options of `tikrelay check`; what it checks comes from the common options (`--config`,
/// `--overlays`, `--templates`).
#[derive(Debug, Args, Default)]
pub struct CheckArgs {}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Synthetic messages per second; 0 sends none (only events from /api/test).
    #[arg(long, default_value_t = 4.0)]
    pub rate: f64,
    /// Seed of the synthetic stream: the same seed gives the same stream.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Address to listen on. Keep 127.0.0.1 unless OBS runs on another machine.
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1",
        env = "TIKRELAY_HOST"
    )]
    pub host: String,
    /// Port to listen on; 0 picks a free one (the listening line shows it).
    #[arg(long, global = true, default_value_t = 8642, env = "TIKRELAY_PORT")]
    pub port: u16,
    /// Access token for control (queue buttons, test events, alert players). Required by
    /// every control request when given; with a --host other than loopback one is generated
    /// if none is given. The printed URLs carry it as ?token=…
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        env = "TIKRELAY_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Seconds a client may take to send a request's headers.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 10.0)]
    pub header_timeout: f64,
    /// Seconds an HTTP keep-alive connection may wait for its next request, or a request go
    /// without a byte moving (websockets are not affected).
    #[arg(long, global = true, value_name = "SECS", default_value_t = 60.0)]
    pub idle_timeout: f64,
    /// Connections (HTTP and websocket) held at once; lowered to fit the open-file limit.
    #[arg(long, global = true, value_name = "N", default_value_t = 1024)]
    pub max_connections: usize,
    /// Folder of theme folders, served and hot-reloaded; shadows built-in themes of the same name.
    #[arg(long, global = true)]
    pub overlays: Option<PathBuf>,
    /// Folder of shared templates (layout.hbs, dashboard.hbs, partials/).
    #[arg(long, global = true)]
    pub templates: Option<PathBuf>,
    /// Config file (TOML): alert queues, triggers, actions, goals. Without it a built-in default
    /// gives follow, share and gift alerts on queue `main`.
    #[arg(long, global = true, env = "TIKRELAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Folder for pending alerts, alert history and session totals, kept across restarts
    /// (default: the per-user data folder: %APPDATA%\tikrelay on Windows, ~/.local/share/tikrelay
    /// on Linux, ~/Library/Application Support/tikrelay on macOS).
    #[arg(long, global = true, env = "TIKRELAY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Start the session totals from zero: the saved session is archived (listed on the
    /// dashboard and in /api/sessions) instead of restored.
    #[arg(long, global = true)]
    pub new_session: bool,
    /// Also serve a TikFinity-compatible event socket on this port (TikFinity's own is 21213; 0
    /// picks a free one), so widgets written for TikFinity work unchanged. Wins over the
    /// config's `[compat] port`.
    #[arg(long, global = true, value_name = "PORT", env = "TIKRELAY_COMPAT_PORT")]
    pub compat_port: Option<u16>,
    /// Seconds without a message after which an open gift combo ends.
    #[arg(long, global = true, default_value_t = 10.0)]
    pub combo_timeout: f64,
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
    /// Where live sources connect (those of `live` and those started over `/api/sources`).
    #[command(flatten)]
    pub tiktok: TiktokArgs,
    /// Whether `--port` was given (flag or environment) rather than defaulted: only a given
    /// port is saved for, or overrides, the saved setup. Set by [`Cli::parse_args`].
    #[arg(skip)]
    pub port_given: bool,
}

impl CommonArgs {
    /// The tracing filter these flags ask for.
    pub fn log_filter(&self) -> &'static str {
        match (self.verbose, self.quiet) {
            (0, 0) => "info",
            (1, _) => "debug",
            (v, _) if v >= 2 => "trace",
            (_, 1) => "warn",
            _ => "error",
        }
    }
}
