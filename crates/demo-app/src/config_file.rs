//! podinfo's settings file: `<--config-path>/<--config>` (config.yaml by
//! default), a YAML map from flag names to values, as podinfo reads it with
//! viper. Its values become the flags' defaults, so a flag or a variable
//! still wins over the file, and the file over the built-in default: the
//! precedence viper gives.

use std::path::{Path, PathBuf};

use clap::ArgMatches;
use clap::parser::ValueSource;

/// The file podinfo reads when --config is not given.
const DEFAULT_NAME: &str = "config.yaml";

/// `command` with the settings of the file named by `first` (the command
/// line and environment as parsed without the file) as defaults; and what
/// to tell the operator (applied keys, keys that are no flag, errors).
pub fn apply(mut command: clap::Command, first: &ArgMatches) -> (clap::Command, Vec<String>) {
    let Some(dir) = first.get_one::<PathBuf>("config_path") else { return (command, Vec::new()) };
    let named = first.get_one::<String>("config");
    let file = dir.join(named.map_or(DEFAULT_NAME, String::as_str));
    let settings = match read(&file) {
        Ok(Some(settings)) => settings,
        // podinfo's chart always passes --config-path: no file is the usual case.
        Ok(None) if named.is_none() => return (command, Vec::new()),
        Ok(None) => return (command, vec![format!("the settings file {} (--config) does not exist", file.display())]),
        Err(error) => return (command, vec![format!("the settings file {} is ignored: {error}", file.display())]),
    };
    let (mut applied, mut ignored) = (Vec::new(), Vec::new());
    for (key, value) in settings {
        let id = command.get_arguments().find(|a| a.get_long() == Some(key.as_str())).map(|a| a.get_id().clone());
        match id {
            Some(id) if id == "config_path" || id == "config" => ignored.push(format!("{key} (only as a flag)")),
            Some(id) => {
                if matches!(first.value_source(id.as_str()), None | Some(ValueSource::DefaultValue)) {
                    // Leaked: clap keeps defaults for the program's life (a few, once).
                    let value: &'static str = value.leak();
                    command = command.mut_arg(id, |arg| arg.default_value(value));
                }
                applied.push(key);
            }
            None => ignored.push(format!("{key} (no such flag)")),
        }
    }
    let mut notes = vec![format!("settings read from {}: {}", file.display(), applied.join(", "))];
    if !ignored.is_empty() {
        notes.push(format!("settings of {} ignored: {}", file.display(), ignored.join(", ")));
    }
    (command, notes)
}

/// The file's keys and values as flag values (lists joined by commas); None
/// when there is no file.
fn read(file: &Path) -> Result<Option<Vec<(String, String)>>, String> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.to_string()),
    };
    let map: serde_norway::Mapping = serde_norway::from_str(&text).map_err(|e| format!("not a YAML map: {e}"))?;
    let scalar = |value: &serde_norway::Value| match value {
        serde_norway::Value::String(s) => Some(s.clone()),
        serde_norway::Value::Bool(b) => Some(b.to_string()),
        serde_norway::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let mut settings = Vec::new();
    for (key, value) in &map {
        let key = scalar(key).ok_or("a key is not a string")?;
        let value = match value {
            serde_norway::Value::Sequence(items) => {
                items.iter().map(scalar).collect::<Option<Vec<_>>>().map(|v| v.join(","))
            }
            other => scalar(other),
        };
        settings.push((key.clone(), value.ok_or_else(|| format!("the value of {key} is not a scalar or a list"))?));
    }
    Ok(Some(settings))
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, FromArgMatches as _};

    use crate::config::Config;

    fn parse(args: &[&str]) -> (Config, Vec<String>) {
        let first = Config::command().get_matches_from(args);
        let (command, notes) = super::apply(Config::command(), &first);
        (Config::from_arg_matches(&command.get_matches_from(args)).unwrap(), notes)
    }

    #[test]
    fn the_file_sets_what_flags_leave_at_their_default() {
        let dir = tempfile::tempdir().unwrap();
        let settings = "ui-message: from the file\nlevel: debug\nrandom-error: true\nport: 1234\ncolour: blue\n";
        std::fs::write(dir.path().join("config.yaml"), settings).unwrap();
        let path = dir.path().to_str().unwrap();
        let (config, notes) = parse(&["demo-app", "--config-path", path, "--port", "9000"]);
        assert_eq!(config.ui_message, "from the file");
        assert_eq!(config.level, "debug");
        assert!(config.random_error);
        assert_eq!(config.port, 9000, "a flag wins over the file");
        assert!(notes[0].contains("ui-message, level, random-error, port"), "{notes:?}");
        assert!(notes[1].contains("colour (no such flag)"), "{notes:?}");
    }

    #[test]
    fn no_file_is_quiet_unless_one_was_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        assert!(parse(&["demo-app", "--config-path", path]).1.is_empty());
        let (_, notes) = parse(&["demo-app", "--config-path", path, "--config", "other.yaml"]);
        assert!(notes[0].contains("does not exist"), "{notes:?}");
        std::fs::write(dir.path().join("config.yaml"), "- a list").unwrap();
        assert!(parse(&["demo-app", "--config-path", path]).1[0].contains("not a YAML map"));
    }
}
