//! The integration tests, compiled as one binary (one link on a 2-core machine). Each module
//! covers one area; shared helpers (relay process, websocket client, browser driver) live in
//! `support`.

mod support;

mod alerts;
mod alerts_page;
mod demo_e2e;
mod fuzz_corpus;
mod live;
mod normalise;
mod rcon;
mod replay;
mod themes_browser;
mod themes_cli;
mod themes_limits;
mod themes_reload;
mod triggers;
