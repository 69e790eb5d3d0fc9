//! The config file's raw form, exactly as serde reads it from TOML: every table and key the file
//! may hold, with toml's spans kept on the values validation may reject, so its errors can name a
//! line and column. Unknown keys are refused here (`deny_unknown_fields`), so a typo never
//! silently disables a trigger; whether the values make sense is [`super::validate`]'s business.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::Goals;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) queues: BTreeMap<String, Spanned<RawQueue>>,
    #[serde(default, rename = "trigger")]
    pub(super) triggers: Vec<Spanned<RawTrigger>>,
    pub(super) rcon: Option<Spanned<RawRcon>>,
    pub(super) webhooks: Option<RawWebhooks>,
    #[serde(default)]
    pub(super) goals: Goals,
    pub(super) streamerbot: Option<crate::triggers::streamerbot::RawSettings>,
    pub(super) compat: Option<RawCompat>,
    pub(super) obs: Option<crate::obs::config::RawObs>,
    pub(super) live: Option<RawLive>,
}

/// `[live]`: settings of the TikTok LIVE client kept in the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLive {
    pub(super) sign_api_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCompat {
    /// TikFinity's own is 21213; 0 picks a free one.
    pub(super) port: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQueue {
    pub(super) default_duration_ms: Option<Spanned<u64>>,
    pub(super) max_pending: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrigger {
    pub(super) name: Option<String>,
    pub(super) on: Spanned<String>,
    pub(super) stream: Option<Spanned<String>>,
    pub(super) gift: Option<Spanned<toml::Value>>,
    pub(super) min_diamonds: Option<u64>,
    pub(super) min_count: Option<u64>,
    pub(super) pattern: Option<Spanned<String>>,
    pub(super) every_likes: Option<Spanned<u64>>,
    pub(super) cooldown_ms: Option<u64>,
    pub(super) user_cooldown_ms: Option<u64>,
    pub(super) repeat: Option<Spanned<String>>,
    pub(super) max_repeat: Option<Spanned<u32>>,
    pub(super) follow_once_per: Option<Spanned<toml::Value>>,
    pub(super) alert: Option<Spanned<RawAlert>>,
    pub(super) rcon: Option<Vec<Spanned<String>>>,
    pub(super) webhook: Option<RawWebhook>,
    pub(super) streamerbot: Option<Spanned<crate::triggers::streamerbot::RawAction>>,
    pub(super) obs: Option<Spanned<crate::obs::config::RawObsAction>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlert {
    pub(super) queue: Option<Spanned<String>>,
    pub(super) duration_ms: Option<Spanned<u64>>,
    pub(super) title: Option<Spanned<String>>,
    pub(super) subtitle: Option<Spanned<String>>,
    pub(super) sound: Option<Spanned<String>>,
    pub(super) image: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    pub(super) url: Spanned<String>,
    pub(super) body: Option<Spanned<String>>,
    pub(super) content_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRcon {
    pub(super) addr: Spanned<String>,
    pub(super) password: Option<String>,
    pub(super) min_interval_ms: Option<u64>,
    pub(super) queue_capacity: Option<usize>,
    pub(super) timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhooks {
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) retry_backoff_ms: Option<u64>,
    pub(crate) queue_capacity: Option<usize>,
    pub(crate) min_interval_ms: Option<u64>,
}
