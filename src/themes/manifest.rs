//! What a theme declares and what goes wrong with it: `theme.json` ([`Manifest`], [`PageInfo`]
//! and their default sizes), the page listing the dashboard shows, and the errors and problems
//! the registry reports ([`ThemeError`], [`TemplateProblem`], [`FieldWarning`]). Plain data: the
//! registry in the parent module fills and serves it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::FieldSpec;

#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("no theme named {0:?}")]
    NoTheme(String),
    #[error("theme {theme:?} has no page {page:?}")]
    NoPage { theme: String, page: String },
    #[error("{0}")]
    Render(String),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A template or manifest that does not load: where and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TemplateProblem {
    pub theme: String,
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    /// The previous version of this file still serves while this one does not load.
    #[serde(default)]
    pub serving_last_good: bool,
}

impl std::fmt::Display for TemplateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.theme, self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if self.serving_last_good {
            write!(f, " (the last good version keeps serving)")?;
        }
        Ok(())
    }
}

/// A rejected query value of an overlay URL, for the dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct FieldWarning {
    pub theme: String,
    pub page: String,
    pub message: String,
}

/// `theme.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub fields: BTreeMap<String, FieldSpec>,
    #[serde(default)]
    pub pages: BTreeMap<String, PageInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageInfo {
    #[serde(default = "default_width")]
    pub width: u32,
    #[serde(default = "default_height")]
    pub height: u32,
    #[serde(default)]
    pub description: String,
}

pub(super) fn default_width() -> u32 {
    1920
}
pub(super) fn default_height() -> u32 {
    1080
}

/// A page as the dashboard lists it.
#[derive(Debug, Clone, Serialize)]
pub struct PageListing {
    pub theme: String,
    pub page: String,
    pub path: String,
    pub width: u32,
    pub height: u32,
    pub description: String,
}
