//! `examples/stagegate.toml` documents every configuration key; its
//! uncommented values are, by the file's own note, the defaults (the
//! `[[bundles]]` and `[[tokens]]` entries are examples, not defaults). These
//! tests hold the file to the code, so the documentation cannot drift from
//! `Config::default()` (and, through it, `policy::Limits::default()`).

use super::Config;

const EXAMPLE: &str = include_str!("../../../examples/stagegate.toml");

/// Deserialises `doc` as a configuration, without the cross-field checks,
/// so that one key can be judged on its own.
fn config_of(doc: &toml::Table) -> Result<Config, String> {
    let text = toml::to_string(doc).map_err(|e| e.to_string())?;
    toml::from_str::<Config>(&text).map_err(|e| e.to_string())
}

/// Every `key = value` the file sets outside `[[…]]` example entries, as
/// (`section.key`, the value, a document setting only that key).
fn documented_defaults() -> Vec<(String, toml::Value, toml::Table)> {
    let file: toml::Table = toml::from_str(EXAMPLE).expect("examples/stagegate.toml is TOML");
    let mut out = Vec::new();
    for (name, value) in file {
        match value {
            toml::Value::Table(section) => {
                for (key, v) in section {
                    let mut inner = toml::Table::new();
                    inner.insert(key.clone(), v.clone());
                    let mut doc = toml::Table::new();
                    doc.insert(name.clone(), toml::Value::Table(inner));
                    out.push((format!("{name}.{key}"), v, doc));
                }
            }
            // `[[bundles]]`, `[[tokens]]`: examples of entries.
            toml::Value::Array(_) => {}
            v => {
                let mut doc = toml::Table::new();
                doc.insert(name.clone(), v.clone());
                out.push((name, v, doc));
            }
        }
    }
    out
}

/// The commented-out settings (`# key = value`, including whole commented
/// `# [[bundles]]` entries), each as a document in its section.
fn commented_settings() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut section = String::new();
    let mut array_entry: Option<usize> = None;
    // Inside a real `[[…]]` entry a commented key would need the whole
    // entry to be judged; the file keeps its examples in commented entries.
    let mut in_real_entry = false;
    for line in EXAMPLE.lines() {
        let line = line.trim();
        let (commented, body) = match line.strip_prefix('#') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        if body.starts_with('[') && body.ends_with(']') {
            section = body.trim_matches(|c| c == '[' || c == ']').to_string();
            array_entry = None;
            in_real_entry = !commented && body.starts_with("[[");
            if commented && body.starts_with("[[") {
                out.push((section.clone(), format!("{body}\n")));
                array_entry = Some(out.len() - 1);
            }
            continue;
        }
        let is_setting = body.split_once('=').is_some_and(|(k, _)| {
            !k.trim().is_empty()
                && k.trim()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        });
        if !commented || !is_setting || in_real_entry {
            continue;
        }
        match array_entry {
            Some(i) => {
                out[i].1.push_str(body);
                out[i].1.push('\n');
            }
            None => {
                let key = body
                    .split_once('=')
                    .map(|(k, _)| k.trim())
                    .unwrap_or_default();
                let name = if section.is_empty() {
                    key.to_string()
                } else {
                    format!("{section}.{key}")
                };
                let doc = if section.is_empty() {
                    format!("{body}\n")
                } else {
                    format!("[{section}]\n{body}\n")
                };
                out.push((name, doc));
            }
        }
    }
    out
}

#[test]
fn the_example_configuration_is_valid() {
    Config::parse(EXAMPLE).expect("examples/stagegate.toml must load");
}

#[test]
fn every_default_documented_in_the_example_is_the_code_default() {
    let defaults = format!("{:?}", Config::default());
    let documented = documented_defaults();
    assert!(
        documented.len() >= 20,
        "expected the example to document the defaults, found {}",
        documented.len()
    );
    let mut wrong = Vec::new();
    for (key, value, doc) in &documented {
        match config_of(doc) {
            Err(e) => wrong.push(format!("{key}: refused by the configuration: {e}")),
            Ok(c) if format!("{c:?}") != defaults => wrong.push(format!(
                "{key} = {value}: documented as the default, but the code's default differs"
            )),
            Ok(_) => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "examples/stagegate.toml disagrees with Config::default():\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_commented_setting_in_the_example_is_a_known_key() {
    let commented = commented_settings();
    assert!(
        commented.iter().any(|(s, _)| s == "records.database"),
        "the commented `database` example was not found: {commented:?}"
    );
    let unknown: Vec<String> = commented
        .iter()
        .filter_map(|(name, doc)| {
            toml::from_str::<Config>(doc)
                .err()
                .map(|e| format!("{name}: {e}"))
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "examples/stagegate.toml shows settings the configuration refuses:\n{}",
        unknown.join("\n")
    );
}
