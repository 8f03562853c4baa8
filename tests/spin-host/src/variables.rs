//! Application variables: `{{ name }}` templates, providers and resolution,
//! following Spin's `crates/expressions` and `crates/factor-variables`.
//!
//! Providers are, in order: values passed to the host explicitly
//! ([`crate::AppOptions::variables`]), then `SPIN_VARIABLE_<NAME>` environment
//! variables (Spin's default env provider), then the manifest `default`. A
//! required variable no provider sets fails startup, like `spin up`'s
//! `VariableSorterExecutorHooks` check.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Result};

use crate::manifest::{AppManifest, VariableDecl};

/// Validates a variable / config key as Spin does (`spin_expressions::Key`):
/// lowercase ASCII letters, digits and single underscores, starting with a
/// letter and ending with a letter or digit.
pub fn validate_key(key: &str) -> Result<()> {
    let reason = if key.is_empty() {
        "must not be empty".to_owned()
    } else if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        format!("invalid character {c:?}. Variable names may contain only lower-case letters, numbers, and underscores.")
    } else if !key.as_bytes()[0].is_ascii_lowercase() {
        "must start with a lowercase ASCII letter".to_owned()
    } else if !key.as_bytes()[key.len() - 1].is_ascii_alphanumeric() {
        "must end with a lowercase ASCII letter or digit".to_owned()
    } else if key.contains("__") {
        "must not contain multiple consecutive underscores".to_owned()
    } else {
        return Ok(());
    };
    bail!("{key:?}: {reason}")
}

/// A parsed `"literal {{ var }} literal"` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Part>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Expr(String),
}

impl Template {
    /// Parses a template; every `{{ expr }}` must be a valid variable name.
    pub fn parse(s: &str) -> Result<Self> {
        let mut parts = vec![];
        let mut rest = s;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Lit(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                bail!("unterminated template expression in {s:?}");
            };
            let name = after[..end].trim();
            validate_key(name)?;
            parts.push(Part::Expr(name.to_owned()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_owned()));
        }
        Ok(Template(parts))
    }

    /// True when the template has no `{{ }}` expression.
    pub fn is_literal(&self) -> bool {
        self.0.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    /// The variable names the template references.
    pub fn referenced(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Part::Expr(e) => Some(e.as_str()),
            Part::Lit(_) => None,
        })
    }

    /// Substitutes resolved application variables.
    pub fn render(&self, values: &HashMap<String, String>) -> Result<String> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Part::Lit(l) => out.push_str(l),
                Part::Expr(e) => match values.get(e) {
                    Some(v) => out.push_str(v),
                    None => bail!("invalid variable name: {e:?}"),
                },
            }
        }
        Ok(out)
    }
}

/// Written back as Spin's `Template` displays it: `{{ name }}` with single spaces.
impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in &self.0 {
            match p {
                Part::Lit(l) => f.write_str(l)?,
                Part::Expr(e) => write!(f, "{{{{ {e} }}}}")?,
            }
        }
        Ok(())
    }
}

/// Error variants of `fermyon:spin/variables@2.0.0`, with Spin's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariableError {
    /// The name is not a valid key.
    InvalidName(String),
    /// The component declares no such variable.
    Undefined(String),
    /// A provider failed.
    Provider(String),
    /// Anything else.
    Other(String),
}

/// All application variables resolved once at startup (our providers are
/// static), plus each component's config templates.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    values: HashMap<String, String>,
    components: HashMap<String, BTreeMap<String, Template>>,
}

impl Resolver {
    /// Resolves every application variable from `explicit` values, then
    /// `SPIN_VARIABLE_<NAME>` from `env`, then defaults.
    ///
    /// Fails when a required variable has no value or an explicit value names
    /// no declared variable (a typo in a test would otherwise pass silently).
    pub fn new(
        manifest: &AppManifest,
        explicit: &[(String, String)],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        for (name, _) in explicit {
            if !manifest.variables.contains_key(name) {
                bail!("variable {name:?} is not declared in the manifest [variables]");
            }
        }
        let mut values = HashMap::new();
        for (name, VariableDecl { default, .. }) in &manifest.variables {
            let explicit_value = explicit
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone());
            let env_name = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
            match explicit_value.or_else(|| env(&env_name)).or_else(|| default.clone()) {
                Some(v) => {
                    values.insert(name.clone(), v);
                }
                None => bail!(
                    "Variable '{name}' is required but not set. Set it with the {env_name} environment variable"
                ),
            }
        }
        let components = manifest
            .components
            .iter()
            .map(|(id, c)| (id.clone(), c.variables.clone()))
            .collect();
        Ok(Resolver { values, components })
    }

    /// Resolves an arbitrary template against the application variables
    /// (used for templated `allowed_outbound_hosts`).
    pub fn render(&self, template: &Template) -> Result<String> {
        template.render(&self.values)
    }

    /// `variables.get(name)` for a component, with Spin's error variants and
    /// messages (`crates/expressions/src/lib.rs`, `Resolver::get_template`).
    pub fn get(&self, component: &str, name: &str) -> Result<String, VariableError> {
        validate_key(name).map_err(|e| VariableError::InvalidName(e.to_string()))?;
        let configs = self.components.get(component).ok_or_else(|| {
            VariableError::Undefined(format!("no variable for component {component:?}"))
        })?;
        let template = configs.get(name).ok_or_else(|| {
            VariableError::Undefined(format!("no variable for {component:?}.{name:?}"))
        })?;
        template
            .render(&self.values)
            .map_err(|e| VariableError::Other(e.to_string()))
    }

    /// All of a component's config values (`wasi:config/store.get-all`).
    pub fn get_all(&self, component: &str) -> Result<Vec<(String, String)>, VariableError> {
        let Some(configs) = self.components.get(component) else {
            return Ok(vec![]);
        };
        configs
            .iter()
            .map(|(k, t)| {
                t.render(&self.values)
                    .map(|v| (k.clone(), v))
                    .map_err(|e| VariableError::Other(e.to_string()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_spin_rules() {
        for good in ["a", "abc", "a1b2c3", "a_1", "a_1_b_3"] {
            validate_key(good).unwrap();
        }
        for bad in ["", "aX", "1bc", "_x", "x.y", "x_", "a__b", "x-y"] {
            validate_key(bad).unwrap_err();
        }
    }

    #[test]
    fn templates_render() {
        let t = Template::parse("pre-{{ a }}-{{b}}").unwrap();
        let values = HashMap::from([
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ]);
        assert_eq!(t.render(&values).unwrap(), "pre-1-2");
        assert!(!t.is_literal());
        assert!(Template::parse("plain").unwrap().is_literal());
        Template::parse("{{ Bad }}").unwrap_err();
        Template::parse("{{ open").unwrap_err();
    }
}
