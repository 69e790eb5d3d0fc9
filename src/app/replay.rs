//! `tikrelay replay`: plays a recording into the pipeline, served like a live stream, or with
//! `--no-server` straight through the pipeline as fast as asked, printing the throughput.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{CommonArgs, ReplayArgs};
use crate::events::Source;
use crate::hub::Hub;
use crate::pipeline::{self, Feed};
use crate::sources::manager::{SourceSpec, replay_stream};
use crate::sources::replay::{self, ReplayOptions};
use crate::stats::Stats;

use super::{AppError, Served, bind, drain, record_events, start};

/// Plays a recording; with `--no-server`, prints the throughput at the end.
pub async fn replay(
    common: &CommonArgs,
    args: ReplayArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    if !args.max {
        replay::validate_speed(args.speed).map_err(AppError::Usage)?;
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
        let events = record_events(args.jsonl.as_deref(), &hub)?;
        let (tx, rx) = pipeline::channel();
        let pipeline = tokio::spawn(pipeline::run(rx, combo_timeout, hub.clone()));
        let tx = Feed::new(tx, &replay_stream(&args.file), Source::Replay);
        let started = std::time::Instant::now();
        let played = tokio::select! {
            r = replay::run(args.file.clone(), options, tx) => r,
            _ = shutdown => Ok(Default::default()),
        };
        let report = pipeline.await.unwrap_or_default();
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        if let Some(e) = events {
            e.finish().await;
        }
        let played = played.map_err(replay_error)?;
        let messages = report.normalise.messages;
        println!(
            "replayed {messages} messages ({} duplicates, {} undecodable) into {} events in {elapsed:.3} s: {:.0} messages/s, {:.0} events/s",
            report.normalise.duplicates,
            report.normalise.undecodable.saturating_add(played.skipped),
            report.events,
            messages as f64 / elapsed,
            report.events as f64 / elapsed,
        );
        return Ok(());
    }
    replay::detect(&args.file).map_err(replay_error)?;
    let listener = bind(common).await?;
    let running = start(listener, common, Source::Replay)?;
    running.hub.stats().set_connection("replay", "connected");
    let events = record_events(args.jsonl.as_deref(), &running.hub)?;
    let input = running.input.clone();
    let sources = running.sources.clone();
    let server = Served::spawn(running);
    let source = sources
        .start(SourceSpec::Replay {
            file: args.file.clone(),
            options,
        })
        .map_err(|e| AppError::Usage(e.to_string()))?;
    let played = tokio::select! {
        r = sources.finished(&source.id) => r.unwrap_or(Ok(())),
        _ = shutdown => Ok(()),
    };
    sources.abort_all();
    drain(&input).await;
    server.stop().await;
    if let Some(e) = events {
        e.finish().await;
    }
    played.map_err(AppError::Usage)
}
