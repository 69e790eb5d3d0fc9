//! TikTok's webcast wire format, shared by every source: push frames, gzip and fetch results
//! ([`frame`]). The demo builds real frames with it, replay and the live client decode with it,
//! so all of them go through one decode path.
//!
//! This module knows nothing of the sources or the pipeline: it turns bytes into protocol
//! values and back, and imports only the generated protocol types.

pub mod frame;
