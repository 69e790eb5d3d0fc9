//! Theme fields: the settings a theme declares in `theme.json`, resolved per OBS source from
//! the page URL's query parameters. Every value is validated by its type; a bad value falls
//! back to the default and produces a warning, so a typo in a URL never breaks a page.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// text, number, bool, color, select, font, sound, image
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub default: Value,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    /// Allowed values of a `select`.
    #[serde(default)]
    pub options: Vec<String>,
    /// Pages that use this field (the dashboard's URL builder shows it only there); empty
    /// means every page of the theme.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pages: Vec<String>,
}

/// The field types a theme may declare.
pub const FIELD_TYPES: &[&str] = &[
    "text", "number", "bool", "color", "select", "font", "sound", "image",
];

/// Checks a declaration from `theme.json`: a known type, and a default its own type accepts.
pub fn validate_spec(spec: &FieldSpec) -> Result<(), String> {
    if !FIELD_TYPES.contains(&spec.kind.as_str()) {
        return Err(format!(
            "unknown type {:?}; use one of {}",
            spec.kind,
            FIELD_TYPES.join(", ")
        ));
    }
    if spec.kind == "select" && spec.options.is_empty() {
        return Err("a select needs \"options\"".into());
    }
    if let (Some(min), Some(max)) = (spec.min, spec.max)
        && min > max
    {
        return Err(format!("min {min} is above max {max}"));
    }
    let raw = match &spec.default {
        Value::Null => return Ok(()),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => return Err(format!("default {other} is not a plain value")),
    };
    // An empty text/sound/image default is fine: "none".
    if raw.is_empty() && matches!(spec.kind.as_str(), "text" | "sound" | "image") {
        return Ok(());
    }
    parse(spec, &raw)
        .map(|_| ())
        .map_err(|why| format!("default {raw:?} is not valid ({why})"))
}

/// Longest accepted text value.
const MAX_TEXT: usize = 500;

/// Field values for a page: defaults, overridden by valid query parameters. Returns the values
/// and a warning per rejected parameter.
pub fn resolve_fields(
    specs: &BTreeMap<String, FieldSpec>,
    query: &HashMap<String, String>,
) -> (Value, Vec<String>) {
    let mut values = serde_json::Map::new();
    let mut warnings = Vec::new();
    for (name, spec) in specs {
        let value = match query.get(name) {
            None => spec.default.clone(),
            Some(raw) => match parse(spec, raw) {
                Ok(v) => v,
                Err(why) => {
                    warnings.push(format!(
                        "field {name}: {raw:?} is not valid ({why}); using the default"
                    ));
                    spec.default.clone()
                }
            },
        };
        values.insert(name.clone(), value);
    }
    (Value::Object(values), warnings)
}

fn parse(spec: &FieldSpec, raw: &str) -> Result<Value, String> {
    match spec.kind.as_str() {
        "number" => {
            let n: f64 = raw.trim().parse().map_err(|_| "not a number".to_string())?;
            if !n.is_finite() {
                return Err("not a finite number".into());
            }
            if spec.min.is_some_and(|min| n < min) || spec.max.is_some_and(|max| n > max) {
                return Err(format!(
                    "outside {}..{}",
                    spec.min.map_or("".into(), |v| v.to_string()),
                    spec.max.map_or("".into(), |v| v.to_string())
                ));
            }
            Ok(json!(n))
        }
        "bool" => match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(json!(true)),
            "0" | "false" | "no" | "off" => Ok(json!(false)),
            _ => Err("expected true or false".into()),
        },
        "color" => {
            let ok = if let Some(hex) = raw.strip_prefix('#') {
                matches!(hex.len(), 3 | 4 | 6 | 8) && hex.chars().all(|c| c.is_ascii_hexdigit())
            } else {
                !raw.is_empty() && raw.len() <= 30 && raw.chars().all(|c| c.is_ascii_alphabetic())
            };
            if ok {
                Ok(json!(raw))
            } else {
                Err("expected #rrggbb or a color name".into())
            }
        }
        "select" => {
            if spec.options.iter().any(|o| o == raw) {
                Ok(json!(raw))
            } else {
                Err(format!("expected one of {}", spec.options.join(", ")))
            }
        }
        "font" => {
            let ok = !raw.is_empty()
                && raw.len() <= 60
                && raw
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == ' ' || c == '-');
            if ok {
                Ok(json!(raw))
            } else {
                Err("a font name has letters, digits, spaces and hyphens".into())
            }
        }
        "sound" | "image" => {
            if raw.is_empty() || super::safe_relative_path(raw).is_some() {
                Ok(json!(raw))
            } else {
                Err("expected a file path inside the theme".into())
            }
        }
        _ => {
            if raw.chars().count() > MAX_TEXT {
                Err(format!("longer than {MAX_TEXT} characters"))
            } else {
                Ok(json!(raw))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: &str, default: Value) -> FieldSpec {
        FieldSpec {
            kind: kind.into(),
            default,
            label: String::new(),
            min: Some(0.0),
            max: Some(10.0),
            options: vec!["left".into(), "right".into()],
            pages: vec![],
        }
    }

    #[test]
    fn query_values_are_validated_by_type() {
        let specs: BTreeMap<String, FieldSpec> = [
            ("n".to_string(), spec("number", json!(5))),
            ("c".to_string(), spec("color", json!("#fff"))),
            ("s".to_string(), spec("select", json!("left"))),
            ("b".to_string(), spec("bool", json!(true))),
        ]
        .into();
        let q: HashMap<String, String> = [
            ("n".to_string(), "11".to_string()),
            ("c".to_string(), "#00ff00".to_string()),
            ("s".to_string(), "up".to_string()),
            ("b".to_string(), "off".to_string()),
        ]
        .into();
        let (values, warnings) = resolve_fields(&specs, &q);
        assert_eq!(values["n"], json!(5));
        assert_eq!(values["c"], json!("#00ff00"));
        assert_eq!(values["s"], json!("left"));
        assert_eq!(values["b"], json!(false));
        assert_eq!(warnings.len(), 2);
    }

    #[test]
    fn declarations_are_checked() {
        assert!(validate_spec(&spec("number", json!(5))).is_ok());
        assert!(
            validate_spec(&spec("number", json!(50))).is_err(),
            "above max"
        );
        assert!(validate_spec(&spec("select", json!("up"))).is_err());
        assert!(validate_spec(&spec("colour", json!("red"))).is_err());
        assert!(validate_spec(&spec("sound", json!(""))).is_ok());
        assert!(validate_spec(&spec("sound", json!("../x.wav"))).is_err());
    }

    #[test]
    fn color_cannot_inject_css() {
        let specs: BTreeMap<String, FieldSpec> =
            [("c".to_string(), spec("color", json!("red")))].into();
        let q: HashMap<String, String> =
            [("c".to_string(), "red;}body{display:none".to_string())].into();
        let (values, warnings) = resolve_fields(&specs, &q);
        assert_eq!(values["c"], json!("red"));
        assert_eq!(warnings.len(), 1);
    }
}
