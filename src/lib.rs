//! tikrelay: a local TikTok LIVE event relay for OBS overlays.
//!
//! # Layout
//! - [`tiktok`]: the webcast wire format (frames, gzip, fetch results) shared by every source;
//!   it imports only the generated protocol types ([`proto`]).
//! - [`sources`]: the event sources: the live client (room lookup, sign step, websocket,
//!   reconnects, backlog rule), the synthetic demo, replay, and the source manager that runs
//!   any number of them side by side. Each feeds [`pipeline`] through its own `Feed`, tagged
//!   with its stream, the one direction data flows.
//! - [`events`]: the one [`events::Event`] type, each kind declared once (`event_kinds!`), its
//!   JSON, the normaliser, gift combos, de-duplication.
//! - [`pipeline`]: the task that turns source input into events and delivers them, one normaliser
//!   per stream.
//! - [`consumers`]: every event's consumers in their fixed order: stats, triggers, then the hub.
//! - [`recorder`]: `--record` (raw frames, TIKREC1) and `--record-events` (JSONL), and the reader.
//! - [`compat`]: the TikFinity-compatible event socket (`--compat-port`).
//! - [`hub`]: the last consumer: fan-out to websocket clients (bounded per client), recent
//!   events, in-process listeners (recorder, compatible socket); the [`hub::Publisher`] handle
//!   the alert queues and the state push send relay messages with.
//! - [`stats`]: session totals and the state snapshot.
//! - [`sessions`]: sessions follow the LIVE: where one ends, and the archive of past sessions.
//! - [`themes`]: the theme registry, theme folders and `theme.json`, handlebars rendering,
//!   static files, template limits, field validation, hot reload and its
//!   `reload`/`template_error` messages.
//! - [`server`]: every HTTP and websocket route, behind the origin guard; `hello` and
//!   `/api/state` are assembled there from each part's snapshot.
//! - [`config`]: the TOML config file (queues, triggers, actions, goals): the validated types,
//!   `load` and `parse` in `config/mod.rs`, the raw serde tables in `raw.rs`, validation in
//!   `validate.rs` and `conditions.rs` (a trigger's match conditions), where the file lives
//!   (`location.rs`), the config in use and hot reload (`current.rs`, `watch.rs`), the relay's
//!   own edits (`edit.rs`).
//! - [`triggers`]: the trigger engine (state and firing in `engine.rs`, matching in
//!   `matching.rs`) and the action workers (Minecraft RCON, webhooks, Streamer.bot).
//! - [`obs`]: OBS scene, source and text actions over obs-websocket v5 (client and worker).
//! - [`alerts`]: named alert queues, one alert playing at a time per queue: the protocol's
//!   types and client ops in `mod.rs`, the queues in `queues.rs`.
//! - [`persist`]: the data dir where pending alerts and totals survive a restart.
//! - [`setup`]: the saved setup (handles, config, port) that `tikrelay` without a command uses.
//! - [`signals`]: the stop signals that end the relay cleanly (Ctrl-C, SIGTERM, SIGHUP, the
//!   Windows console events).
//! - [`fuzzing`]: one entry point per fuzz target (`fuzz/`), replayed by `cargo test` too.
//! - [`app`]: the one place the parts are wired together for each command (`app/mod.rs`), with
//!   the commands' bodies beside it (`check`, `live`, `replay`) and what a starting relay prints
//!   (`urls`); [`cli`] is the command line.

pub mod alerts;
pub mod app;
pub mod cli;
pub mod compat;
pub mod config;
pub mod consumers;
pub mod events;
pub mod fuzzing;
pub mod hub;
pub mod media;
pub mod obs;
pub mod persist;
pub mod pipeline;
pub mod recorder;
pub mod server;
pub mod sessions;
pub mod setup;
pub mod signals;
pub mod sources;
pub mod stats;
pub mod themes;
pub mod tiktok;
pub mod triggers;

/// Code generated from `proto/webcast.proto`, plus the schema itself for reflection.
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/webcast.rs"));

    /// The compiled schema (a `FileDescriptorSet`), for descriptor-driven decoding.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/webcast.bin"));
}

#[cfg(test)]
mod tests {
    /// The `use crate::…` lines of every `.rs` file under `dir` (relative to `src/`).
    fn crate_imports(dir: &str) -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src")
            .join(dir);
        let mut found = Vec::new();
        let mut dirs = vec![root];
        while let Some(d) = dirs.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for line in text.lines() {
                        let line = line.trim();
                        if line.starts_with("use crate::") || line.contains(" crate::") {
                            found.push((path.display().to_string(), line.to_string()));
                        }
                    }
                }
            }
        }
        assert!(!found.is_empty(), "no imports found under src/{dir}");
        found
    }

    #[test]
    fn the_wire_format_imports_nothing_above_it() {
        for (file, line) in crate_imports("tiktok") {
            for above in [
                "pipeline", "sources", "recorder", "events", "hub", "app", "server", "stats",
            ] {
                assert!(
                    !line.contains(&format!("crate::{above}")),
                    "{file}: `{line}` points up the module graph"
                );
            }
        }
    }

    #[test]
    fn the_hub_calls_nothing_above_it() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/hub.rs");
        let text = std::fs::read_to_string(path).unwrap();
        for above in ["triggers", "alerts", "stats", "consumers", "server", "app"] {
            assert!(
                !text.contains(&format!("crate::{above}")),
                "src/hub.rs names crate::{above}: the hub is the last consumer"
            );
        }
    }

    #[test]
    fn the_live_client_does_not_borrow_from_the_demo() {
        for (file, line) in crate_imports("sources/live") {
            assert!(!line.contains("sources::demo"), "{file}: `{line}`");
        }
    }
}
