//! `imagegate config`: the effective configuration as TOML (secrets redacted), each value
//! commented with the layer that set it. The layers are applied one at a time, as
//! [`Config::load`] does, and a value is credited to the last layer that changed it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;

use super::{Config, ConfigError, ConfigFlags, EnvLookup};

/// Which layer a value came from, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    Default,
    File,
    Environment,
    Flag,
}

impl Config {
    /// The configuration `load` would build, printed as TOML with one comment per value.
    pub fn explain(flags: &ConfigFlags, env: EnvLookup<'_>) -> Result<String, ConfigError> {
        let file = flags
            .config
            .clone()
            .or_else(|| env("IMAGEGATE_CONFIG").map(PathBuf::from));
        let defaults = Self::default();
        let from_file = match &file {
            Some(path) => Self::from_toml_file(path)?,
            None => defaults.clone(),
        };
        let mut from_env = from_file.clone();
        from_env.apply_env(env)?;
        let mut effective = from_env.clone();
        effective.apply_flags(flags);
        effective.validate()?;

        let stages = [
            (Layer::Default, leaves(&defaults)?),
            (Layer::File, leaves(&from_file)?),
            (Layer::Environment, leaves(&from_env)?),
            (Layer::Flag, leaves(&effective)?),
        ];
        let source = |path: &str| {
            let mut layer = Layer::Default;
            for pair in stages.windows(2) {
                if pair[0].1.get(path) != pair[1].1.get(path) {
                    layer = pair[1].0;
                }
            }
            match layer {
                Layer::Default => "default".to_owned(),
                Layer::File => match &file {
                    Some(path) => format!("config file {}", path.display()),
                    None => "config file".to_owned(),
                },
                Layer::Environment => "environment".to_owned(),
                Layer::Flag => "command line".to_owned(),
            }
        };
        let mut out = format!(
            "# imagegate's effective configuration; secrets are shown as [redacted].\n\
             # Each value says which layer set it (default < file < environment < command line).\n\
             # Effective provider: {:?}\n\n",
            effective.effective_provider()
        );
        let tree = serde_json::to_value(&effective).map_err(invalid)?;
        render_table(&mut out, "", &tree, &source);
        Ok(out)
    }
}

fn invalid(e: serde_json::Error) -> ConfigError {
    ConfigError::Invalid(format!("cannot print the configuration: {e}"))
}

/// Every leaf of the configuration by dotted path (arrays count as one leaf).
fn leaves(config: &Config) -> Result<BTreeMap<String, Value>, ConfigError> {
    fn walk(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    walk(&join(prefix, key), value, out);
                }
            }
            other => {
                out.insert(prefix.to_owned(), other.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(
        "",
        &serde_json::to_value(config).map_err(invalid)?,
        &mut out,
    );
    Ok(out)
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// A TOML key: bare when it can be, quoted otherwise.
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        Value::String(key.to_owned()).to_string()
    }
}

/// Scalars and arrays of scalars as TOML values (JSON's string escapes are TOML's).
fn toml_value(value: &Value) -> String {
    match value {
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml_value).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let pairs: Vec<String> = map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("{} = {}", toml_key(k), toml_value(v)))
                .collect();
            format!("{{ {} }}", pairs.join(", "))
        }
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or_default();
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{f:.1}")
            } else {
                f.to_string()
            }
        }
        other => other.to_string(),
    }
}

fn render_table(out: &mut String, path: &str, table: &Value, source: &dyn Fn(&str) -> String) {
    let Value::Object(map) = table else {
        return;
    };
    let is_table_array = |v: &Value| matches!(v, Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object));
    for (key, value) in map {
        let full = join(path, key);
        if value.is_object() || is_table_array(value) {
            continue;
        }
        if value.is_null() {
            let _ = writeln!(out, "# {} is unset ({})", toml_key(key), source(&full));
        } else {
            let _ = writeln!(
                out,
                "{} = {}  # {}",
                toml_key(key),
                toml_value(value),
                source(&full)
            );
        }
    }
    for (key, value) in map {
        let full = join(path, key);
        let header: Vec<String> = full.split('.').map(toml_key).collect();
        if value.is_object() {
            let _ = writeln!(out, "\n[{}]", header.join("."));
            render_table(out, &full, value, source);
        } else if is_table_array(value) {
            let _ = writeln!(out, "\n# {} ({})", header.join("."), source(&full));
            for item in value.as_array().into_iter().flatten() {
                let _ = writeln!(out, "[[{}]]", header.join("."));
                if let Value::Object(fields) = item {
                    for (k, v) in fields.iter().filter(|(_, v)| !v.is_null()) {
                        let _ = writeln!(out, "{} = {}", toml_key(k), toml_value(v));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_configuration_is_toml_that_names_each_layer_and_hides_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("imagegate.toml");
        std::fs::write(&file, "port = 9001\n[gemini]\ndeadline_secs = 5.0\n").unwrap();
        let env = |name: &str| {
            match name {
                "GOOGLE_API_KEY" => Some("AIza-very-secret"),
                "IMAGEGATE_WEBHOOKS_ALLOW_PRIVATE" => Some("yes"),
                "IMAGEGATE_DATABASE_URL" => Some("postgres://app:hunter2@db:5432/img"),
                _ => None,
            }
            .map(str::to_owned)
        };
        let flags = ConfigFlags {
            config: Some(file.clone()),
            host: Some("127.0.0.1".into()),
            ..Default::default()
        };

        let printed = Config::explain(&flags, &env).unwrap();

        assert!(!printed.contains("AIza-very-secret"), "{printed}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("port = 9001  # config file"), "{printed}");
        assert!(
            printed.contains("host = \"127.0.0.1\"  # command line"),
            "{printed}"
        );
        assert!(printed.contains("google_api_key = \"[redacted]\"  # environment"));
        assert!(
            printed.contains("allow_private = true  # environment"),
            "{printed}"
        );
        assert!(printed.contains("max_turns = 30  # default"), "{printed}");
        assert!(printed.contains("[jobs.webhooks]"), "{printed}");
        // What is printed is a configuration file imagegate itself reads back.
        let uncommented: String = printed
            .lines()
            .map(|l| l.split("  # ").next().unwrap_or(l))
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        let reread: Config = toml::from_str(&uncommented).unwrap();
        assert_eq!(reread.port, 9001);
        assert_eq!(reread.gemini.deadline_secs, 5.0);
    }
}
