//! `tikrelay` without a command (a double-click on Windows): start with the saved setup (the
//! handles last connected, the config, the port; see [`crate::setup`]), or, with nothing saved,
//! start idle and open the dashboard, whose first screen connects a handle. Also where the
//! setup is written when a `live` source connects.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::{CommonArgs, StartArgs};
use crate::events::{EventKind, Source};
use crate::hub::Hub;
use crate::persist::DataDir;
use crate::setup::{SavedSetup, SetupStore, handle_of};
use crate::sources::live::Target;
use crate::sources::manager::SourceSpec;

use super::{AppError, Running, bind, open_data_dir, start};

/// The saved setup of this relay: always the top-level data dir (a demo's own subfolder holds
/// its alerts and totals, not the streamer's setup). `config` and `port` are what this start
/// was given, saved along with a handle.
pub(super) fn setup_store(
    common: &CommonArgs,
    source: Source,
    data: &Option<DataDir>,
) -> Result<Arc<SetupStore>, AppError> {
    let dir = match source {
        Source::Tiktok => data.clone(),
        _ => open_data_dir(common, Source::Tiktok)?,
    };
    let given = GivenSetup::of(common);
    Ok(Arc::new(
        SetupStore::open(dir).with_start(given.config, given.port),
    ))
}

/// The config and port a start was given (not defaulted), as the setup stores them.
struct GivenSetup {
    config: Option<PathBuf>,
    port: Option<u16>,
}

impl GivenSetup {
    fn of(common: &CommonArgs) -> GivenSetup {
        GivenSetup {
            // Absolute, because a double-clicked start runs in another folder. The per-user
            // file is found anyway, so only another file is worth saving.
            config: common
                .config
                .as_deref()
                .map(absolute)
                .filter(|p| Some(p) != crate::config::location::default_path().as_ref()),
            port: common.port_given.then_some(common.port),
        }
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Saves `handles` (with this start's config and port) as the setup once the first of them is
/// connected: a `live` that never connects (a typo in the handle) leaves the last good setup.
pub(super) fn remember_on_connect(hub: &Arc<Hub>, store: &Arc<SetupStore>, handles: Vec<String>) {
    let handles: Vec<String> = handles.iter().filter_map(|h| handle_of(h).ok()).collect();
    if handles.is_empty() {
        return;
    }
    let mut events = hub.subscribe_events();
    let store = store.clone();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(e) if matches!(e.kind, EventKind::Connected { .. }) => break,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
        match store.replace_handles(handles) {
            Ok(s) => tracing::info!(
                "saved the setup: `tikrelay` without a command connects {} next time",
                s.handles
                    .iter()
                    .map(|h| format!("@{h}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Err(e) => tracing::warn!("{e}; the next start without a command will not know it"),
        }
    });
}

/// Reads the saved setup for a start without a command and fills in the config file and port
/// that were not given.
pub(super) fn apply_saved(common: &mut CommonArgs) -> Result<SavedSetup, AppError> {
    let saved = SetupStore::open(open_data_dir(common, Source::Tiktok)?).get();
    if common.config.is_none() {
        match &saved.config {
            Some(path) if path.is_file() => common.config = Some(path.clone()),
            Some(path) => tracing::warn!(
                "the saved config {} is gone; using the per-user config",
                path.display()
            ),
            None => {}
        }
    }
    if !common.port_given
        && let Some(port) = saved.port
    {
        common.port = port;
    }
    Ok(saved)
}

/// Runs `tikrelay` without a command, with the setup [`apply_saved`] read.
pub async fn start_saved(
    common: CommonArgs,
    args: StartArgs,
    saved: SavedSetup,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let listener = bind(&common).await?;
    let running = start(listener, &common, Source::Tiktok)?;
    let dashboard = running.dashboard_url();
    running.relay.setup.offer_connect();
    if saved.handles.is_empty() {
        running.stats.set_connection("none", "idle");
        tracing::info!("nothing saved yet: connect a stream from the dashboard");
        super::browser::open_dashboard(&dashboard, args.no_browser);
    } else {
        connect_saved(&running, &saved.handles)?;
    }
    running.serve(shutdown).await;
    Ok(())
}

/// Connects the saved handles, each a live source of its own that waits for its LIVE (a
/// double-click before going live must not fail).
fn connect_saved(running: &Running, handles: &[String]) -> Result<(), AppError> {
    for handle in handles {
        let target = Target::parse(handle).map_err(AppError::Usage)?;
        tracing::info!("connecting the saved handle {target}");
        running
            .sources
            .start(SourceSpec::Live {
                target,
                wait_live: true,
            })
            .map_err(|e| AppError::Usage(format!("the saved handle @{handle}: {e}")))?;
    }
    Ok(())
}
