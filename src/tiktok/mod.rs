//! TikTok's webcast protocol: the wire format shared by every source, and (later) the live
//! client that resolves a room, signs, and holds the websocket.

pub mod frame;
