//! `tikrelay live`: validates the flags into the live client's configuration, then relays one
//! or more TikTok LIVEs side by side (recording frames and events when asked) until they end or
//! the relay is stopped. Each target is its own source in the [`crate::sources::manager`], with
//! its own stream, and reconnects on its own.

use std::future::Future;

use tokio::net::TcpListener;

use crate::cli::{CommonArgs, LiveArgs};
use crate::events::Source;
use crate::recorder::FrameRecorder;
use crate::sources::live::{Endpoints, LiveConfig, Target, Timings};
use crate::sources::manager::LiveDefaults;

use super::{AppError, RecordPaths, Served, drain, record_error, record_events, start};

/// Where live sources connect: the `--sign-url`, `--tiktok-*-url` and `--sign-api-key` flags.
pub fn live_defaults(common: &CommonArgs) -> Result<LiveDefaults, AppError> {
    let t = &common.tiktok;
    let endpoints = Endpoints::new(&t.tiktok_web_url, &t.tiktok_webcast_url, &t.sign_url);
    endpoints.validate().map_err(AppError::Usage)?;
    Ok(LiveDefaults {
        endpoints,
        sign_api_key: t
            .sign_api_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string),
        timings: Timings::default(),
    })
}

/// Validates the `live` flags into one live client configuration per target.
pub fn live_config(common: &CommonArgs, args: &LiveArgs) -> Result<Vec<LiveConfig>, AppError> {
    let defaults = live_defaults(common)?;
    let mut configs: Vec<LiveConfig> = Vec::new();
    for raw in &args.targets {
        let target = Target::parse(raw).map_err(AppError::Usage)?;
        if configs.iter().any(|c| c.target == target) {
            return Err(AppError::Usage(format!(
                "{target} is given twice; name each LIVE once"
            )));
        }
        configs.push(LiveConfig {
            target,
            endpoints: defaults.endpoints.clone(),
            sign_api_key: defaults.sign_api_key.clone(),
            wait_live: args.wait_live,
            timings: defaults.timings.clone(),
        });
    }
    if configs.len() > 1 && args.record.is_some() {
        return Err(AppError::Usage(
            "--record writes one LIVE's frames; give one target with it (--record-events records every stream)".into(),
        ));
    }
    Ok(configs)
}

/// Relays TikTok LIVEs. Returns when every LIVE has ended and `exit_on_end` is set, on
/// shutdown, or with the error that stopped the live clients before any could relay anything
/// (exit code 3). A target that fails while another relays is logged and shown on the
/// dashboard; the others go on.
///
/// Without `exit_on_end`, the end of the LIVEs stops the live clients but the server stays up,
/// so overlays keep showing the final totals until the streamer presses Ctrl-C (exit code 0).
pub async fn live(
    listener: TcpListener,
    common: &CommonArgs,
    configs: Vec<LiveConfig>,
    record: RecordPaths,
    exit_on_end: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let frames = match &record.frames {
        Some(p) => Some(FrameRecorder::create(p).map_err(|e| record_error(p, e))?),
        None => None,
    };
    let running = start(listener, common, Source::Tiktok)?;
    super::saved::remember_on_connect(
        &running.hub,
        &running.relay.setup,
        configs.iter().map(|c| c.target.to_string()).collect(),
    );
    let events = record_events(record.events.as_deref(), &running.hub)?;
    let input = running.input.clone();
    let sources = running.sources.clone();
    let server = Served::spawn(running);
    let mut ids = Vec::new();
    for config in configs {
        let info = sources
            .start_live(config, frames.clone())
            .map_err(|e| AppError::Usage(e.to_string()))?;
        ids.push(info.id);
    }
    let all_done = {
        let sources = sources.clone();
        async move {
            let mut outcomes = Vec::new();
            for id in &ids {
                outcomes.push(sources.finished(id).await.unwrap_or(Ok(())));
            }
            outcomes
        }
    };
    tokio::pin!(shutdown);
    let result = tokio::select! {
        _ = &mut shutdown => Ok(()),
        outcomes = all_done => {
            let errors: Vec<String> = outcomes.iter().filter_map(|o| o.clone().err()).collect();
            if errors.len() == outcomes.len() {
                Err(AppError::Unreachable(errors.join("; ")))
            } else {
                drain(&input).await;
                if !exit_on_end {
                    tracing::info!(
                        "the LIVE has ended; overlays stay served until Ctrl-C (use --wait-live to wait for the next LIVE)"
                    );
                    shutdown.await;
                }
                Ok(())
            }
        }
    };
    sources.abort_all();
    server.stop().await;
    if let Some(f) = frames {
        f.finish().await;
    }
    if let Some(e) = events {
        e.finish().await;
    }
    result
}
