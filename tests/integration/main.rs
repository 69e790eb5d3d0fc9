//! The integration tests, compiled as one binary (one link on a 2-core machine). Each module
//! covers one area; shared helpers (relay process, websocket client, browser driver) live in
//! `support`.

mod support;

mod demo_e2e;
mod live;
mod replay;
