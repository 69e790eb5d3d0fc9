//! Triggers and the actions they drive. For now: the Minecraft RCON client and its worker.

pub mod rcon;
