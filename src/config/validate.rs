//! Validation: turns the raw tables ([`super::raw`]) into the validated types of [`super`],
//! checking every value and compiling what can be compiled up front (regexes, and the trigger
//! texts into the config's two handlebars registries), so nothing fails later in the middle of a
//! stream. Each error names the file, line and column of the value at fault (through [`Ctx`]) and
//! says what to write instead. [`Config::parse`] runs the steps here in a fixed order, so the
//! first mistake in a file is the one reported; a trigger is checked as its event type, its match
//! conditions (both in [`super::conditions`]), its alert, then its other actions.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::conditions::{conditions, event_type};
use super::raw::{RawAlert, RawQueue, RawRcon, RawTrigger, RawWebhook, RawWebhooks};
use super::{
    AlertAction, Config, ConfigError, Ctx, MAIN_QUEUE, QueueConfig, RCON_PASSWORD_ENV,
    RconSettings, StreamerbotAction, Trigger, WebhookAction, WebhookSettings,
};

const DURATION_RANGE: Range<u64> = 100..600_001;

/// ` (template line L, column C)` when the position is known.
fn template_at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (template line {l}, column {c})"),
        (Some(l), None) => format!(" (template line {l})"),
        _ => String::new(),
    }
}

/// A `queue_capacity` within 1 and [`crate::triggers::MAX_ACTION_BACKLOG`]; a value outside is
/// logged and brought in.
fn backlog(section: &str, wanted: usize) -> usize {
    let max = crate::triggers::MAX_ACTION_BACKLOG;
    let capacity = wanted.clamp(1, max);
    if capacity != wanted {
        tracing::warn!(
            "[{section}] queue_capacity = {wanted} is outside 1 to {max}; using {capacity}"
        );
    }
    capacity
}

/// The `[queues.NAME]` tables, with `main` always among them.
pub(super) fn queues(
    cx: &Ctx,
    raw: BTreeMap<String, Spanned<RawQueue>>,
) -> Result<BTreeMap<String, QueueConfig>, ConfigError> {
    let mut queues = BTreeMap::new();
    queues.insert(MAIN_QUEUE.to_string(), QueueConfig::default());
    for (name, q) in raw {
        if !valid_name(&name) {
            return Err(cx.err(
                q.span(),
                format!(
                    "queue name {name:?} must be 1-64 letters, digits, '-' or '_' (it goes in URLs: /ws?queue=NAME)"
                ),
            ));
        }
        let q = q.into_inner();
        let mut settings = QueueConfig::default();
        if let Some(d) = q.default_duration_ms {
            settings.default_duration_ms = duration_ms(cx, &d)?;
        }
        if let Some(m) = q.max_pending {
            if *m.get_ref() == 0 || *m.get_ref() > crate::alerts::MAX_PENDING {
                return Err(cx.err(
                    m.span(),
                    format!(
                        "max_pending must be between 1 and {}",
                        crate::alerts::MAX_PENDING
                    ),
                ));
            }
            settings.max_pending = m.into_inner();
        }
        queues.insert(name, settings);
    }
    Ok(queues)
}

/// The `[rcon]` table; the password from the environment wins over the file's.
pub(super) fn rcon(cx: &Ctx, r: Spanned<RawRcon>) -> Result<RconSettings, ConfigError> {
    let span = r.span();
    let r = r.into_inner();
    let password = std::env::var(RCON_PASSWORD_ENV)
        .ok()
        .filter(|p| !p.is_empty())
        .or(r.password)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            cx.err(
                span.clone(),
                format!(
                    "[rcon] needs a password: set password = \"…\" (rcon.password in server.properties) or the environment variable {RCON_PASSWORD_ENV}"
                ),
            )
        })?;
    let addr = r.addr.get_ref().trim().to_string();
    if addr
        .rsplit_once(':')
        .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
    {
        return Err(cx.err(
            r.addr.span(),
            format!("rcon addr {addr:?} must be host:port, e.g. \"127.0.0.1:25575\""),
        ));
    }
    Ok(RconSettings {
        addr,
        password,
        min_interval: Duration::from_millis(r.min_interval_ms.unwrap_or(50)),
        queue_capacity: backlog("rcon", r.queue_capacity.unwrap_or(1000)),
        timeout: Duration::from_millis(r.timeout_ms.unwrap_or(5000).max(100)),
    })
}

/// How a worker delivers HTTP requests, from the `[webhooks]` table or another section with
/// the same keys (`[streamerbot]`): values out of range are brought in, never refused.
pub(crate) fn delivery(section: &str, w: RawWebhooks) -> WebhookSettings {
    let d = WebhookSettings::default();
    WebhookSettings {
        timeout: w
            .timeout_ms
            .map_or(d.timeout, |ms| Duration::from_millis(ms.max(100))),
        max_attempts: w.max_attempts.unwrap_or(d.max_attempts).clamp(1, 20),
        retry_backoff: w
            .retry_backoff_ms
            .map_or(d.retry_backoff, Duration::from_millis),
        queue_capacity: backlog(section, w.queue_capacity.unwrap_or(d.queue_capacity)),
        min_interval: w
            .min_interval_ms
            .map_or(d.min_interval, Duration::from_millis),
    }
}

/// Trigger texts may define inline partials and include each other by name, so the partial
/// limits are checked once every trigger is compiled; the error points at the text at fault.
pub(super) fn partials(cx: &Ctx, config: &Config) -> Result<(), ConfigError> {
    for registry in [&config.text_templates, &config.json_templates] {
        if let Some(p) = crate::themes::limits::check_partials(registry)
            .into_iter()
            .next()
        {
            let span = cx.spans.borrow().get(&p.template).cloned().unwrap_or(0..0);
            return Err(cx.err(
                span,
                format!(
                    "template refused{}: {}",
                    template_at(p.line, p.column),
                    p.message
                ),
            ));
        }
    }
    Ok(())
}

impl Config {
    fn template(
        &mut self,
        cx: &Ctx,
        name: String,
        source: &Spanned<String>,
        json: bool,
    ) -> Result<String, ConfigError> {
        let registry = if json {
            &mut self.json_templates
        } else {
            &mut self.text_templates
        };
        // The same limits as theme templates (nesting, partial depth): a trigger text that
        // would overflow the stack when an event arrives is refused here instead.
        let template = crate::themes::compile_checked(&name, source.get_ref()).map_err(|e| {
            cx.err(
                source.span(),
                format!(
                    "template does not compile{}: {}",
                    template_at(e.line, e.column),
                    e.message
                ),
            )
        })?;
        registry.register_template(&name, template);
        cx.spans.borrow_mut().insert(name.clone(), source.span());
        Ok(name)
    }

    /// One `[[trigger]]`: its event type, its match conditions, then its actions, checked in
    /// that order; a trigger without any action is refused.
    pub(super) fn trigger(
        &mut self,
        cx: &Ctx,
        index: usize,
        raw: Spanned<RawTrigger>,
    ) -> Result<Trigger, ConfigError> {
        let span = raw.span();
        let t = raw.into_inner();
        let on = event_type(cx, &t.on)?;
        let name = t
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("{on}#{}", index + 1));
        // Template names of this trigger's texts start with it.
        let key = format!("t{index}");
        let mut trigger = conditions(cx, name, on, &t)?;
        if let Some(a) = t.alert {
            trigger.alert = Some(self.alert(cx, &key, a)?);
        }
        trigger.rcon = self.rcon_commands(cx, &key, t.rcon.iter().flatten())?;
        if let Some(w) = t.webhook {
            trigger.webhook = Some(self.webhook(cx, &key, w)?);
        }
        if let Some(raw) = t.streamerbot {
            trigger.streamerbot = Some(self.streamerbot_action(cx, &key, raw)?);
        }
        if let Some(raw) = t.obs {
            trigger.obs = Some(self.obs_action(cx, &key, raw)?);
        }
        if trigger.alert.is_none()
            && trigger.rcon.is_empty()
            && trigger.webhook.is_none()
            && trigger.streamerbot.is_none()
            && trigger.obs.is_none()
        {
            let name = &trigger.name;
            return Err(cx.err(
                span,
                format!(
                    "trigger {name:?} does nothing: give it an alert, rcon commands, a webhook, a streamerbot action or an obs action"
                ),
            ));
        }
        Ok(trigger)
    }

    /// A trigger's `alert = { queue?, duration_ms?, title?, subtitle?, sound?, image? }`.
    fn alert(
        &mut self,
        cx: &Ctx,
        key: &str,
        a: Spanned<RawAlert>,
    ) -> Result<AlertAction, ConfigError> {
        let a_span = a.span();
        let a = a.into_inner();
        let queue = match &a.queue {
            None => MAIN_QUEUE.to_string(),
            Some(q) => {
                if !self.queues.contains_key(q.get_ref()) {
                    return Err(cx.err(
                        q.span(),
                        format!(
                            "alert queue {:?} is not defined; add a [queues.{}] table or use one of: {}",
                            q.get_ref(),
                            q.get_ref(),
                            self.queues.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
                q.get_ref().clone()
            }
        };
        let duration_ms = match &a.duration_ms {
            None => None,
            Some(d) => Some(duration_ms(cx, d)?),
        };
        let mut vars = Vec::new();
        for (var, src) in [
            ("title", &a.title),
            ("subtitle", &a.subtitle),
            ("sound", &a.sound),
            ("image", &a.image),
        ] {
            if let Some(src) = src {
                let name = self.template(cx, format!("{key}.alert.{var}"), src, false)?;
                vars.push((var, name));
                if matches!(var, "sound" | "image") && !src.get_ref().contains("{{") {
                    let (line, column) = super::line_col(cx.text, src.span().start);
                    self.alert_files.push(super::AlertFile {
                        trigger: self.triggers.len(),
                        var,
                        path: src.get_ref().clone(),
                        line,
                        column,
                    });
                }
            }
        }
        if vars.is_empty() {
            return Err(cx.err(
                a_span,
                "the alert has no text: give at least a title, e.g. title = \"{{name}} followed!\"",
            ));
        }
        Ok(AlertAction {
            queue,
            duration_ms,
            vars,
        })
    }

    /// A trigger's `rcon = [...]`, compiled in order; they need the `[rcon]` table.
    fn rcon_commands<'c>(
        &mut self,
        cx: &Ctx,
        key: &str,
        commands: impl Iterator<Item = &'c Spanned<String>>,
    ) -> Result<Vec<String>, ConfigError> {
        let mut rcon = Vec::new();
        for (i, cmd) in commands.enumerate() {
            if self.rcon.is_none() {
                return Err(cx.err(
                    cmd.span(),
                    "this trigger runs RCON commands but there is no [rcon] table; add [rcon] with addr and password",
                ));
            }
            if cmd.get_ref().trim().is_empty() {
                return Err(cx.err(cmd.span(), "empty RCON command"));
            }
            rcon.push(self.template(cx, format!("{key}.rcon.{i}"), cmd, false)?);
        }
        Ok(rcon)
    }

    /// A trigger's `webhook = { url, body?, content_type? }`; the body is a JSON template.
    fn webhook(
        &mut self,
        cx: &Ctx,
        key: &str,
        w: RawWebhook,
    ) -> Result<WebhookAction, ConfigError> {
        let url = w.url.get_ref().trim().to_string();
        match reqwest::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(cx.err(
                    w.url.span(),
                    format!("webhook url {url:?} must be an http:// or https:// URL"),
                ));
            }
        }
        let body = match &w.body {
            None => None,
            Some(b) => Some(self.template(cx, format!("{key}.webhook"), b, true)?),
        };
        Ok(WebhookAction {
            url,
            body,
            content_type: w
                .content_type
                .unwrap_or_else(|| "application/json".to_string()),
        })
    }

    /// A trigger's `streamerbot = { action, action_id?, args? }`; args are text templates
    /// (rendered over the made-safe context, as RCON commands are).
    fn streamerbot_action(
        &mut self,
        cx: &Ctx,
        key: &str,
        raw: Spanned<crate::triggers::streamerbot::RawAction>,
    ) -> Result<StreamerbotAction, ConfigError> {
        let span = raw.span();
        let raw = raw.into_inner();
        let text = |s: &Option<Spanned<String>>| {
            s.as_ref()
                .map(|s| s.get_ref().trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let name = text(&raw.action);
        let id = text(&raw.action_id);
        if name.is_none() && id.is_none() {
            return Err(cx.err(
                span,
                "streamerbot needs the action's name, e.g. streamerbot = { action = \"Boss fight\" } (or action_id = \"<guid>\")",
            ));
        }
        let mut args = Vec::new();
        for (arg, template) in &raw.args {
            if arg.trim().is_empty() {
                return Err(cx.err(template.span(), "streamerbot args need a name"));
            }
            let name = self.template(cx, format!("{key}.streamerbot.{arg}"), template, false)?;
            args.push((arg.clone(), name));
        }
        Ok(StreamerbotAction { name, id, args })
    }

    /// A trigger's `obs = { ... }` (checked by [`crate::obs::config::action`]); a text action's
    /// text is a text template.
    fn obs_action(
        &mut self,
        cx: &Ctx,
        key: &str,
        raw: Spanned<crate::obs::config::RawObsAction>,
    ) -> Result<crate::obs::ObsAction, ConfigError> {
        let (mut action, text) = crate::obs::config::action(raw, |d| {
            duration_ms(cx, d).map_err(|_| crate::obs::config::Invalid {
                span: d.span(),
                message: "durations are milliseconds between 100 and 600000 (10 minutes)".into(),
            })
        })
        .map_err(|e| cx.err(e.span, e.message))?;
        if let (crate::obs::ObsAction::Text { template, .. }, Some(text)) = (&mut action, &text) {
            *template = self.template(cx, format!("{key}.obs.text"), text, false)?;
        }
        Ok(action)
    }
}

fn duration_ms(cx: &Ctx, d: &Spanned<u64>) -> Result<u64, ConfigError> {
    if DURATION_RANGE.contains(d.get_ref()) {
        Ok(*d.get_ref())
    } else {
        Err(cx.err(
            d.span(),
            "durations are milliseconds between 100 and 600000 (10 minutes)",
        ))
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use crate::config::tests::invalid;

    #[test]
    fn templates_that_would_overflow_the_stack_are_refused_with_their_position() {
        let (l, c, m) = invalid(
            "[[trigger]]\non = \"follow\"\nalert = { title = '{{#*inline \"r\"}}{{> r}}{{/inline}}{{> r}}' }\n",
        );
        assert_eq!((l, c), (3, 19), "{m}");
        assert!(m.contains("includes itself"), "{m}");

        let deep = format!("{}x{}", "{{#if user}}".repeat(3000), "{{/if}}".repeat(3000));
        let (l, c, m) = invalid(&format!(
            "[[trigger]]\non = \"follow\"\nalert = {{ title = \"{deep}\" }}\n"
        ));
        assert_eq!((l, c), (3, 19), "{m}");
        assert!(m.contains("nest more than"), "{m}");

        // Two texts that include each other through inline partials of the same name.
        let (l, _, m) = invalid(
            "[[trigger]]\non = \"follow\"\nalert = { title = '{{#*inline \"a\"}}{{> b}}{{/inline}}x', subtitle = '{{#*inline \"b\"}}{{> a}}{{/inline}}y' }\n",
        );
        assert_eq!(l, 3, "{m}");
        assert!(m.contains("includes itself"), "{m}");
    }
}
