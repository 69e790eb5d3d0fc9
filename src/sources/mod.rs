//! Event sources: the live TikTok client ([`live`]), the synthetic demo stream ([`demo`]) and
//! replay ([`replay`]). Every source feeds the same [`crate::pipeline`] through
//! [`crate::pipeline::Input`] (the one direction data flows), so overlays cannot tell them
//! apart except by the `source` field. They decode with the shared wire format in
//! [`crate::tiktok`], and the demo and the live client draw from the one small [`rng`].

pub mod demo;
pub mod live;
pub mod manager;
pub mod replay;
pub mod rng;
