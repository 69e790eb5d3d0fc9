//! The `[obs]` table and a trigger's `obs = { … }` action as the config file writes them, and
//! their validation. [`crate::config`] reads these raw forms with the rest of the file and turns
//! an [`Invalid`] into its usual `file:line:column: message` error.

use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{DEFAULT_HOST, DEFAULT_PORT, ObsAction, ObsSettings, PASSWORD_ENV};

/// `[obs]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObs {
    host: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    password: Option<String>,
    timeout_ms: Option<u64>,
    queue_capacity: Option<usize>,
}

/// `obs = { … }` in a trigger.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObsAction {
    scene: Option<Spanned<String>>,
    for_ms: Option<Spanned<u64>>,
    source: Option<Spanned<String>>,
    show_ms: Option<Spanned<u64>>,
    text_source: Option<Spanned<String>>,
    text: Option<Spanned<String>>,
}

/// A mistake at `span` of the config text.
#[derive(Debug)]
pub struct Invalid {
    pub span: Range<usize>,
    pub message: String,
}

fn invalid(span: Range<usize>, message: impl Into<String>) -> Invalid {
    Invalid {
        span,
        message: message.into(),
    }
}

/// Refuses a key that does not belong to this kind of action.
fn misplaced<T>(field: &Option<Spanned<T>>, key: &str, fits: &str) -> Result<(), Invalid> {
    match field {
        Some(f) => Err(invalid(f.span(), format!("`{key}` only applies to {fits}"))),
        None => Ok(()),
    }
}

/// The connection settings; without an `[obs]` table, the defaults (OBS's own: 127.0.0.1:4455)
/// with the password from the environment.
pub fn settings(raw: Option<RawObs>) -> Result<ObsSettings, Invalid> {
    let raw = raw.unwrap_or_default();
    let d = ObsSettings::default();
    let host = match &raw.host {
        None => DEFAULT_HOST.to_string(),
        Some(h) => {
            let host = h.get_ref().trim();
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let port_inside = bare.contains(':') && bare.parse::<std::net::Ipv6Addr>().is_err();
            if host.is_empty() || host.contains(['/', ' ']) || port_inside {
                return Err(invalid(
                    h.span(),
                    format!(
                        "obs host {host:?} must be a host name or IP address, e.g. \"127.0.0.1\" (the port goes in `port`)"
                    ),
                ));
            }
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        }
    };
    let port = match &raw.port {
        None => DEFAULT_PORT,
        Some(p) => u16::try_from(*p.get_ref())
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                invalid(
                    p.span(),
                    "obs port must be between 1 and 65535 (OBS's default is 4455)",
                )
            })?,
    };
    let password = std::env::var(PASSWORD_ENV)
        .ok()
        .filter(|p| !p.is_empty())
        .or(raw.password)
        .filter(|p| !p.is_empty());
    Ok(ObsSettings {
        host,
        port,
        password,
        timeout: raw
            .timeout_ms
            .map_or(d.timeout, |ms| Duration::from_millis(ms.max(100))),
        queue_capacity: raw
            .queue_capacity
            .unwrap_or(d.queue_capacity)
            .clamp(1, 100_000),
    })
}

/// A validated action; the text template (for `text_source`) is returned to be compiled by the
/// caller, with the action's `template` left empty until then.
pub fn action(
    raw: Spanned<RawObsAction>,
    duration: impl Fn(&Spanned<u64>) -> Result<u64, Invalid>,
) -> Result<(ObsAction, Option<Spanned<String>>), Invalid> {
    let span = raw.span();
    let a = raw.into_inner();
    let name = |s: &Spanned<String>, what: &str| -> Result<String, Invalid> {
        let n = s.get_ref().trim();
        if n.is_empty() {
            Err(invalid(
                s.span(),
                format!("the {what} name is empty; write it as OBS shows it"),
            ))
        } else {
            Ok(n.to_string())
        }
    };
    if let Some(input) = &a.text_source {
        for (f, key) in [(&a.scene, "scene"), (&a.source, "source")] {
            misplaced(
                f,
                key,
                "a scene switch or a source; this is a text action (text_source)",
            )?;
        }
        misplaced(
            &a.for_ms,
            "for_ms",
            "a scene switch: obs = { scene = \"…\", for_ms = 10000 }",
        )?;
        misplaced(
            &a.show_ms,
            "show_ms",
            "a source: obs = { source = \"…\", show_ms = 5000 }",
        )?;
        let Some(text) = a.text else {
            return Err(invalid(
                span,
                "a text action needs the text, e.g. obs = { text_source = \"Last follower\", text = \"{{user.nickname}}\" }",
            ));
        };
        return Ok((
            ObsAction::Text {
                input: name(input, "text source")?,
                template: String::new(),
            },
            Some(text),
        ));
    }
    misplaced(
        &a.text,
        "text",
        "a text source: obs = { text_source = \"…\", text = \"…\" }",
    )?;
    if let Some(source) = &a.source {
        misplaced(
            &a.for_ms,
            "for_ms",
            "a scene switch; a source shows for show_ms",
        )?;
        return Ok((
            ObsAction::Source {
                source: name(source, "source")?,
                scene: a.scene.as_ref().map(|s| name(s, "scene")).transpose()?,
                show_for: a
                    .show_ms
                    .as_ref()
                    .map(|d| duration(d).map(Duration::from_millis))
                    .transpose()?,
            },
            None,
        ));
    }
    misplaced(
        &a.show_ms,
        "show_ms",
        "a source: obs = { source = \"…\", show_ms = 5000 }",
    )?;
    let Some(scene) = &a.scene else {
        return Err(invalid(
            span,
            "the obs action does nothing: give a scene (obs = { scene = \"Boss fight\", for_ms = 10000 }), a source (obs = { source = \"Confetti\", scene = \"Main\", show_ms = 5000 }) or a text source (obs = { text_source = \"Last follower\", text = \"{{name}}\" })",
        ));
    };
    Ok((
        ObsAction::Scene {
            scene: name(scene, "scene")?,
            hold: a
                .for_ms
                .as_ref()
                .map(|d| duration(d).map(Duration::from_millis))
                .transpose()?,
        },
        None,
    ))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::config::tests::invalid;
    use crate::obs::ObsAction;
    use std::time::Duration;

    #[test]
    fn the_three_action_forms_and_the_obs_table_parse() {
        let c = Config::parse(
            r#"
[obs]
host = "192.168.1.20"
port = 4456
password = "secret-obs-pw"
[[trigger]]
on = "follow"
obs = { scene = "Boss fight", for_ms = 10000 }
[[trigger]]
on = "share"
obs = { source = "Confetti", scene = "Main", show_ms = 5000 }
[[trigger]]
on = "follow"
obs = { text_source = "Last follower", text = "{{user.nickname}}" }
[[trigger]]
on = "gift"
obs = { scene = "Ending" }
"#,
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.obs.addr(), "192.168.1.20:4456");
        assert!(!format!("{c:?}").contains("secret-obs-pw"));
        assert_eq!(
            c.triggers[0].obs,
            Some(ObsAction::Scene {
                scene: "Boss fight".into(),
                hold: Some(Duration::from_secs(10))
            })
        );
        assert_eq!(
            c.triggers[1].obs,
            Some(ObsAction::Source {
                source: "Confetti".into(),
                scene: Some("Main".into()),
                show_for: Some(Duration::from_secs(5))
            })
        );
        match &c.triggers[2].obs {
            Some(ObsAction::Text { input, template }) => {
                assert_eq!(input, "Last follower");
                assert!(c.text_templates.has_template(template), "{template}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            c.triggers[3].obs,
            Some(ObsAction::Scene {
                scene: "Ending".into(),
                hold: None
            })
        );
        let defaults = Config::parse("", "t.toml").unwrap();
        assert_eq!(defaults.obs.addr(), "127.0.0.1:4455");
    }

    #[test]
    fn mistakes_name_line_and_column() {
        let t = |action: &str| format!("[[trigger]]\non = \"follow\"\nobs = {action}\n");
        let (l, c, m) = invalid(&t(r#"{ scene = "X", show_ms = 5000 }"#));
        assert_eq!((l, c), (3, 32), "{m}");
        assert!(m.contains("show_ms") && m.contains("source"), "{m}");

        let (l, c, m) = invalid(&t(r#"{ scene = "X", for_ms = 50 }"#));
        assert_eq!((l, c), (3, 31), "{m}");
        assert!(m.contains("between 100 and 600000"), "{m}");

        let (l, _, m) = invalid(&t(r#"{ text_source = "T" }"#));
        assert_eq!(l, 3);
        assert!(m.contains("needs the text"), "{m}");

        let (l, _, m) = invalid(&t("{ }"));
        assert_eq!(l, 3);
        assert!(m.contains("does nothing"), "{m}");

        let (l, c, m) = invalid(&t(r#"{ scene = " " }"#));
        assert_eq!((l, c), (3, 17), "{m}");
        assert!(m.contains("empty"), "{m}");

        let (l, _, m) = invalid(&t(r#"{ scene = "X", for = 10 }"#));
        assert_eq!(l, 3);
        assert!(m.contains("for"), "{m}");

        let (l, c, m) = invalid(&t(r#"{ text_source = "T", text = "{{#if}}" }"#));
        assert_eq!((l, c), (3, 35), "{m}");
        assert!(m.contains("template"), "{m}");

        let (l, c, m) = invalid("[obs]\nport = 70000\n");
        assert_eq!((l, c), (2, 8), "{m}");
        assert!(m.contains("65535"), "{m}");

        let (l, c, m) = invalid("[obs]\nhost = \"127.0.0.1:4455\"\n");
        assert_eq!((l, c), (2, 8), "{m}");
        assert!(m.contains("port"), "{m}");
    }
}
