//! Event sources: the live TikTok client ([`live`]), the synthetic demo stream ([`demo`]) and
//! replay ([`replay`]), and the [`manager`] that runs any number of them side by side (what a
//! request to start one says: [`spec`]). Every source feeds the same [`crate::pipeline`]
//! through its own [`crate::pipeline::Feed`] (the one direction data flows), tagged with its
//! stream, so overlays cannot tell them apart except by the `source` and `stream` fields. They decode with the shared wire format in
//! [`crate::tiktok`], and the demo and the live client draw from the one small [`rng`].

pub mod demo;
pub mod live;
pub mod manager;
pub mod replay;
pub mod rng;
pub mod spec;
