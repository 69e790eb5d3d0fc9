//! Event sources other than the live TikTok client: the synthetic demo stream and replay.
//! Every source feeds the same [`crate::pipeline`], so overlays cannot tell them apart except
//! by the `source` field.

pub mod demo;
pub mod replay;
