//! `POST /api/test`'s event: what a partial event is completed with. Which types exist and which
//! carry a viewer come from the kinds' one declaration ([`EventKind`]); the sample values are
//! per field name, so a new kind needs nothing here.

use serde_json::{Value, json};

use crate::events::{Event, EventKind, Source, local_id, now_ms};

/// Fills the fields a test event leaves out: id, ts, source, a user for the kinds a viewer
/// sends, and sample values for the fields below; the rest take their defaults. Which kinds
/// exist and which come from a viewer is the kinds' one declaration ([`EventKind`]); the fills
/// are per field name, so a new kind needs nothing here.
pub fn complete_test_event(partial: Value) -> Result<Event, String> {
    let Value::Object(mut obj) = partial else {
        return Err("send a JSON object with at least \"type\"".into());
    };
    let Some(type_name) = obj.get("type").and_then(Value::as_str).map(str::to_string) else {
        return Err("the event needs a \"type\", e.g. {\"type\":\"follow\"}".into());
    };
    let Some(sample) = EventKind::sample(&type_name) else {
        return Err(format!(
            "unknown event type {type_name:?}; known types: {}",
            crate::events::EVENT_TYPES.join(", ")
        ));
    };
    obj.insert("v".into(), json!(crate::events::FORMAT_VERSION));
    obj.insert("source".into(), json!(Source::Test));
    if !obj.get("id").is_some_and(Value::is_string) {
        obj.insert("id".into(), json!(local_id("test")));
    }
    if !obj.get("ts").is_some_and(Value::is_i64) {
        obj.insert("ts".into(), json!(now_ms()));
    }
    if EventKind::viewer_type(&type_name) && !obj.contains_key("user") {
        obj.insert(
            "user".into(),
            json!({"id": "1", "unique_id": "test_viewer", "nickname": "Test Viewer", "avatar_url": null}),
        );
    }
    if let Some(Value::Object(user)) = obj.get_mut("user") {
        for key in ["id", "unique_id", "nickname"] {
            user.entry(key).or_insert(json!(""));
        }
        user.entry("avatar_url").or_insert(Value::Null);
    }
    // Sample values for fields whose default would make a poor test: by field name, for
    // whichever kinds have the field.
    let fields = serde_json::to_value(&sample).unwrap_or_default();
    let fill = |field: &str| -> Option<Value> {
        Some(match field {
            "gift" => {
                json!({"id": 5655, "name": "Rose", "diamonds": 1, "image_url": "/overlays/default/images/gifts/rose.svg", "streakable": true})
            }
            "combo_id" => json!(local_id("combo")),
            "method" => json!("WebcastTestMessage"),
            _ => return None,
        })
    };
    if let Value::Object(fields) = fields {
        for field in fields.keys() {
            if !obj.contains_key(field)
                && let Some(value) = fill(field)
            {
                obj.insert(field.clone(), value);
            }
        }
    }
    let mut event: Event = serde_json::from_value(Value::Object(obj))
        .map_err(|e| format!("the event does not match the {type_name:?} format: {e}"))?;
    if let EventKind::Gift {
        gift,
        count,
        diamonds_total,
        ..
    } = &mut event.kind
        && *diamonds_total == 0
    {
        *diamonds_total = gift.diamonds.saturating_mul(*count);
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::complete_test_event;
    use crate::events::{EVENT_TYPES, EventKind};

    #[test]
    fn api_test_completes_every_declared_type_from_the_declaration() {
        for name in EVENT_TYPES {
            let event = complete_test_event(json!({ "type": name }))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(event.type_name(), *name);
            assert_eq!(
                event.user.is_some(),
                EventKind::viewer_type(name),
                "{name}: a test viewer exactly for the types a viewer sends"
            );
            let json: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap();
            if let Some(gift) = json.get("gift") {
                assert_eq!(gift["name"], "Rose", "{name}");
            }
            if let Some(combo) = json.get("combo_id") {
                assert!(!combo.as_str().unwrap().is_empty(), "{name}");
            }
        }
        assert!(complete_test_event(json!({"type": "nope"})).is_err());
    }
}
