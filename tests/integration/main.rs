//! The integration tests, compiled as one binary (one link on a 2-core machine). Each module
//! covers one area; shared helpers (relay process, websocket client, browser driver) live in
//! `support`.

mod support;

mod alerts;
mod alerts_page;
mod compat;
mod config_file;
mod demo_e2e;
mod firstrun;
mod flow;
mod full_disk;
mod fuzz_corpus;
mod limits;
mod live;
mod media;
mod normalise;
mod obs;
mod obs_faults;
mod rcon;
mod release;
mod replay;
mod roles_wire;
mod schema;
mod sessions;
mod signals;
mod sources;
mod sources_pages;
mod streamerbot;
mod themes_browser;
mod themes_cli;
mod themes_limits;
mod themes_reload;
mod triggers;
mod web_limits;
mod web_security;
