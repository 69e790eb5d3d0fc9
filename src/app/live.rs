//! `tikrelay live`: validates the flags into the live client's configuration, then relays a
//! TikTok LIVE (recording frames and events when asked) until it ends or the relay is stopped.

use std::future::Future;

use tokio::net::TcpListener;

use crate::cli::{CommonArgs, LiveArgs};
use crate::events::Source;
use crate::recorder::FrameRecorder;
use crate::sources::live::ws::Outputs;
use crate::sources::live::{Endpoints, LiveConfig, Target, Timings, client};

use super::{AppError, RecordPaths, Served, drain, record_error, record_events, start};

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
    super::saved::remember_on_connect(
        &running.hub,
        &running.relay.setup,
        vec![config.target.to_string()],
    );
    let events = record_events(record.events.as_deref(), &running.hub)?;
    let input = running.input.clone();
    let server = Served::spawn(running);
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
    server.stop().await;
    if let Some(f) = frames {
        f.finish().await;
    }
    if let Some(e) = events {
        e.finish().await;
    }
    result
}
