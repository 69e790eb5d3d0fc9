//! The macro that declares the event kinds: each kind is written once, as a variant with its
//! `type` name and whether a viewer sends it, and everything else that lists kinds is generated
//! from that one declaration: the serde attributes that give the JSON its `type`, the
//! [`EVENT_TYPES`](super::EVENT_TYPES) list (config validation, `/api/test`, the dashboard),
//! [`EventKind::type_name`](super::EventKind::type_name) and
//! [`EventKind::viewer_type`](super::EventKind::viewer_type). The JSON shape is serde's
//! derive of the variant's fields.

/// `event_kinds! { pub enum EventKind { Variant = "type_name", from viewer|room|relay { fields }, … } }`
macro_rules! event_kinds {
    (
        $(#[$enum_attr:meta])*
        pub enum $Enum:ident {
            $(
                $(#[$attr:meta])*
                $Variant:ident = $name:literal, from $by:ident $({ $($fields:tt)* })?,
            )*
        }
    ) => {
        $(#[$enum_attr])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        pub enum $Enum {
            $(
                $(#[$attr])*
                #[serde(rename = $name)]
                $Variant $({ $($fields)* })?,
            )*
        }

        /// Every event type name, in the order of the declaration (the event reference's).
        pub const EVENT_TYPES: &[&str] = &[$($name),*];

        impl $Enum {
            /// The `type` string of this kind.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $($Enum::$Variant { .. } => $name,)*
                }
            }

            /// Whether events of type `name` come from a viewer (and so carry a `user`); false
            /// for room and relay events and for unknown names.
            pub fn viewer_type(name: &str) -> bool {
                match name {
                    $($name => event_kinds!(@from $by),)*
                    _ => false,
                }
            }
        }
    };
    (@from viewer) => {
        true
    };
    (@from room) => {
        false
    };
    (@from relay) => {
        false
    };
}
