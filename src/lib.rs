//! tikrelay: a local TikTok LIVE event relay for OBS overlays.
//!
//! # Layout
//! - [`tiktok`]: the webcast wire format (frames, gzip) shared by every source, and the live
//!   client (room lookup, sign step, websocket, reconnects).
//! - [`sources`]: event sources besides live TikTok (the synthetic demo, replay).
//! - [`events`]: the one [`events::Event`] type, the normaliser, gift combos, de-duplication.
//! - [`pipeline`]: the task that turns source input into published events.
//! - [`recorder`]: `--record` (raw frames, TIKREC1) and `--record-events` (JSONL), and the reader.
//! - [`compat`]: the TikFinity-compatible event socket (`--compat-port`).
//! - [`hub`]: fan-out to websocket clients (bounded per client) and in-process consumers.
//! - [`stats`]: session totals and the state snapshot.
//! - [`themes`]: theme folders, handlebars rendering, field validation.
//! - [`server`]: every HTTP and websocket route, behind the origin guard.
//! - [`config`]: the TOML config file (queues, triggers, actions, goals): the validated types,
//!   `load` and `parse` in `config/mod.rs`, the raw serde tables in `raw.rs`, validation in
//!   `validate.rs`.
//! - [`triggers`]: trigger matching and the action workers (Minecraft RCON, webhooks).
//! - [`obs`]: OBS scene, source and text actions over obs-websocket v5 (client and worker).
//! - [`alerts`]: named alert queues, one alert playing at a time per queue.
//! - [`persist`]: the data dir where pending alerts and totals survive a restart.
//! - [`signals`]: the stop signals that end the relay cleanly (Ctrl-C, SIGTERM, SIGHUP, the
//!   Windows console events).
//! - [`fuzzing`]: one entry point per fuzz target (`fuzz/`), replayed by `cargo test` too.
//! - [`app`]: wires the parts together for each command; [`cli`] is the command line.

pub mod alerts;
pub mod app;
pub mod cli;
pub mod compat;
pub mod config;
pub mod events;
pub mod fuzzing;
pub mod hub;
pub mod obs;
pub mod persist;
pub mod pipeline;
pub mod recorder;
pub mod server;
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
