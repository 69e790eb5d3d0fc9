//! Which config file a command uses, and the running relay following it: `--config`, else the
//! per-user file (created on the first start by commands that serve; `check` only reads it when
//! it exists). Each reload that yields a new config is applied to the trigger engine and the
//! goals, and every reload (good or broken) is announced to pages as a `config` message
//! (`{"ok", "error"}`), on which the dashboard re-reads `/api/config`.

use std::sync::Arc;

use serde_json::json;

use crate::cli::{Cli, Command};
use crate::config::current::ConfigState;
use crate::config::location;
use crate::config::watch::ConfigWatcher;
use crate::hub::{Audience, Hub, Outbound};
use crate::triggers::Engine;

/// Fills in `--config` when it was not given: the per-user file (see [`location`]).
pub(super) fn resolve(cli: &mut Cli) {
    if cli.common.config.is_some() {
        return;
    }
    cli.common.config = match &cli.command {
        Some(Command::Check(_)) => location::default_path().filter(|p| p.exists()),
        Some(Command::Theme(_)) => None,
        Some(Command::Replay(args)) if args.no_server => None,
        // Commands that serve, and the start without a command.
        _ => location::resolve_and_create(None),
    };
}

/// Applies every reload of `state` to `engine` and the goals, tells pages, and watches the
/// file. A folder that cannot be watched is logged; the relay runs on without hot reload.
pub(super) fn follow(
    state: &Arc<ConfigState>,
    engine: &Arc<Engine>,
    stats: &Arc<crate::stats::Stats>,
    hub: &Arc<Hub>,
) -> Option<ConfigWatcher> {
    let mut changes = state.subscribe();
    let weak_state = Arc::downgrade(state);
    let weak_hub = Arc::downgrade(hub);
    let engine = engine.clone();
    let stats = stats.clone();
    tokio::spawn(async move {
        let mut applied = engine.config();
        while changes.changed().await.is_ok() {
            let (Some(state), Some(hub)) = (weak_state.upgrade(), weak_hub.upgrade()) else {
                break;
            };
            let current = state.get();
            if !Arc::ptr_eq(&current, &applied) {
                engine.apply(current.clone());
                stats.set_goals(current.goals);
                applied = current;
            }
            let problem = state.problem();
            hub.send(Outbound::relay(
                "config",
                json!({"ok": problem.is_none(), "error": problem}),
                Audience::All,
            ));
        }
    });
    match crate::config::watch::spawn(state.clone()) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("{e}; config edits apply after a restart of tikrelay");
            None
        }
    }
}

/// The sign server's API key from the config file (`[live] sign_api_key`) when neither
/// `--sign-api-key` nor `TIKRELAY_SIGN_API_KEY` gave one.
pub(super) fn sign_key_from_file(
    live: &mut crate::sources::live::LiveConfig,
    common: &crate::cli::CommonArgs,
) {
    if live.sign_api_key.is_none() {
        live.sign_api_key = super::load_config(common)
            .ok()
            .and_then(|c| c.sign_api_key.clone());
    }
}

/// Keeps the sign server key of live sources started over `/api/sources` (the dashboard's
/// connect screen) equal to the config file's `[live] sign_api_key`, so a key saved on the
/// dashboard is used by the next connect without a restart. A key given by flag or environment
/// wins and is left alone.
pub(super) fn follow_sign_key(
    state: &Arc<ConfigState>,
    sources: &Arc<crate::sources::manager::SourceManager>,
    common: &crate::cli::CommonArgs,
) {
    let given = common
        .tiktok
        .sign_api_key
        .as_deref()
        .is_some_and(|k| !k.trim().is_empty());
    if given {
        return;
    }
    let mut changes = state.subscribe();
    let weak_state = Arc::downgrade(state);
    let weak_sources = Arc::downgrade(sources);
    tokio::spawn(async move {
        while changes.changed().await.is_ok() {
            let (Some(state), Some(sources)) = (weak_state.upgrade(), weak_sources.upgrade())
            else {
                break;
            };
            sources.set_sign_api_key(state.sign_api_key());
        }
    });
}
