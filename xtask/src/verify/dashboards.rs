//! Grafana dashboards as code (deploy/observability/dashboards/*.json): each
//! must be a dashboard Grafana can load (JSON, a unique uid, panels), and
//! every PromQL expression in it must parse. Grafana's own variables are
//! replaced first (`$__rate_interval` by a duration, the dashboard's
//! variables by `.*`, the value of "All"); the expressions are then handed to
//! `promtool check rules` as recording rules, so the parser is Prometheus'
//! own. A variable the dashboard does not define is an error.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{Outcome, Validators};
use crate::cmd;

pub const DASHBOARDS_DIR: &str = "deploy/observability/dashboards";

/// Grafana's built-in interval variables, replaced by a duration.
const INTERVAL_VARIABLES: &[&str] = &["__rate_interval", "__interval", "__range"];

/// One PromQL expression of a dashboard, with Grafana's variables replaced.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// `panel 3 "Request rate by route" target A`, for messages.
    pub place: String,
    pub expr: String,
}

/// The dashboards of the repository, sorted.
pub fn files(root: &Path) -> Result<Vec<PathBuf>> {
    let dir = root.join(DASHBOARDS_DIR);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|f| f.extension().is_some_and(|e| e == "json"));
    files.sort();
    Ok(files)
}

/// `scratch` is a folder for the generated rule files (emptied first).
pub fn check(v: &Validators, root: &Path, scratch: &Path) -> Result<Outcome> {
    let files = files(root)?;
    if files.is_empty() {
        bail!("no dashboard in {DASHBOARDS_DIR}");
    }
    let mut outcome = check_files(v, &files, scratch)?;
    // Grafana keys dashboards by uid: two files with one uid overwrite each other.
    let mut seen = BTreeSet::new();
    for file in &files {
        if let Ok(dashboard) = load(file)
            && let Some(uid) = dashboard["uid"].as_str()
            && !seen.insert(uid.to_string())
        {
            outcome.failures.push(format!("{}: uid {uid:?} is used by another dashboard", file.display()));
        }
    }
    Ok(outcome)
}

/// Each file: loadable, and every expression parses.
pub fn check_files(v: &Validators, files: &[PathBuf], scratch: &Path) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    let _ = fs::remove_dir_all(scratch);
    fs::create_dir_all(scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
    for file in files {
        outcome.checked += 1;
        let queries = load(file).and_then(|dashboard| queries(&dashboard, "5m"));
        match queries {
            Ok(queries) => outcome.failures.extend(parse(v, file, &queries, scratch)?),
            Err(err) => outcome.failures.push(format!("{}: {err:#}", file.display())),
        }
    }
    Ok(outcome)
}

pub fn load(file: &Path) -> Result<Value> {
    let text = fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let dashboard: Value = serde_json::from_str(&text).context("not JSON")?;
    for key in ["title", "uid"] {
        if dashboard[key].as_str().is_none_or(str::is_empty) {
            bail!("no {key}: Grafana needs one to provision the dashboard");
        }
    }
    if dashboard["panels"].as_array().is_none_or(Vec::is_empty) {
        bail!("no panels");
    }
    Ok(dashboard)
}

/// Every PromQL expression of a dashboard: panel targets (rows included)
/// and the metric selectors of `label_values(...)` variables, with
/// `interval` for Grafana's interval variables.
pub fn queries(dashboard: &Value, interval: &str) -> Result<Vec<Query>> {
    let variables: BTreeSet<String> = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect();
    let mut raw = Vec::new();
    for panel in panels(dashboard) {
        if !is_prometheus(&panel["datasource"]) {
            continue;
        }
        let title = panel["title"].as_str().unwrap_or("");
        for target in panel["targets"].as_array().into_iter().flatten() {
            if !target["datasource"].is_null() && !is_prometheus(&target["datasource"]) {
                continue;
            }
            let reference = target["refId"].as_str().unwrap_or("?");
            let place = format!("panel {} {title:?} target {reference}", panel["id"]);
            match target["expr"].as_str() {
                Some(expr) if !expr.trim().is_empty() => raw.push((place, expr.to_string())),
                _ => bail!("{place}: no expr"),
            }
        }
    }
    for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if variable["type"] != "query" {
            continue;
        }
        let query = variable["query"]["query"].as_str().or(variable["query"].as_str()).unwrap_or_default();
        let name = variable["name"].as_str().unwrap_or("?");
        if let Some(selector) = label_values_selector(query) {
            raw.push((format!("variable {name} (label_values)"), selector.to_string()));
        }
    }
    raw.into_iter()
        .map(|(place, expr)| {
            let expr = substitute(&expr, &variables, interval).with_context(|| place.clone())?;
            Ok(Query { place, expr })
        })
        .collect()
}

/// Panels, with those nested in collapsed rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(panel);
        out.extend(panel["panels"].as_array().into_iter().flatten());
    }
    out
}

/// Prometheus, or the dashboard's data source variable (which this
/// project's dashboards bind to Prometheus); a panel without one inherits
/// the dashboard's default, Prometheus.
fn is_prometheus(datasource: &Value) -> bool {
    match datasource {
        Value::Null => true,
        Value::String(s) => s.starts_with('$') || s.eq_ignore_ascii_case("prometheus"),
        Value::Object(o) => o.get("type").and_then(Value::as_str).is_none_or(|t| t == "prometheus"),
        _ => false,
    }
}

/// `label_values(up{job="x"}, instance)` → `up{job="x"}`; `label_values(job)` has no selector.
fn label_values_selector(query: &str) -> Option<&str> {
    let inner = query.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    let (selector, _label) = inner.rsplit_once(',')?;
    Some(selector.trim())
}

/// Replaces `$name`, `${name}`, `${name:format}` and `[[name]]`.
pub fn substitute(expr: &str, variables: &BTreeSet<String>, interval: &str) -> Result<String> {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(start) = rest.find(['$', '[']) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let (name, used) = if let Some(braced) = tail.strip_prefix("${") {
            let end = braced.find('}').context("unclosed ${")?;
            (braced[..end].split(':').next().unwrap_or_default(), end + 3)
        } else if let Some(bracketed) = tail.strip_prefix("[[") {
            let end = bracketed.find("]]").context("unclosed [[")?;
            (&bracketed[..end], end + 4)
        } else if let Some(plain) = tail.strip_prefix('$') {
            let end = plain.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(plain.len());
            (&plain[..end], end + 1)
        } else {
            // A `[` that opens a range, not a variable.
            out.push('[');
            rest = &tail[1..];
            continue;
        };
        if name.is_empty() {
            bail!("a lone `$` in {expr:?}");
        }
        if INTERVAL_VARIABLES.contains(&name) {
            out.push_str(interval);
        } else if variables.contains(name) {
            out.push_str(".*");
        } else {
            bail!("uses ${name}, which the dashboard does not define (templating.list)");
        }
        rest = &tail[used..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `promtool check rules` over one recording rule per expression.
fn parse(v: &Validators, file: &Path, queries: &[Query], scratch: &Path) -> Result<Vec<String>> {
    if queries.is_empty() {
        return Ok(vec![format!("{}: no PromQL expression found", file.display())]);
    }
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| serde_json::json!({ "record": format!("dashboard_query_{i}"), "expr": q.expr }))
        .collect();
    let document = serde_json::json!({ "groups": [{ "name": "dashboard", "rules": rules }] });
    let stem = file.file_stem().unwrap_or_default().to_string_lossy();
    let rule_file = scratch.join(format!("{stem}.rules.yaml"));
    fs::write(&rule_file, serde_norway::to_string(&document)?)?;
    let output = cmd::capture(Command::new(&v.promtool).args(["check", "rules"]).arg(&rule_file))?;
    if output.status.success() {
        return Ok(Vec::new());
    }
    // promtool names each broken rule `"dashboard_query_<i>"`: say which panel it is.
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let mut failures: Vec<String> = text
        .lines()
        .filter_map(|line| {
            let at = line.find("\"dashboard_query_")?;
            let digits: String = line[at + 17..].chars().take_while(char::is_ascii_digit).collect();
            let query = &queries[digits.parse::<usize>().ok()?];
            let why = line.split_once("could not parse expression: ").map_or(line, |(_, why)| why);
            Some(format!("{}: {}: {why} in `{}`", file.display(), query.place, query.expr))
        })
        .collect();
    if failures.is_empty() {
        failures.push(format!("{}: promtool: {}", file.display(), cmd::tail(&output.stderr, &output.stdout, 10)));
    }
    Ok(failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn grafana_variables_are_replaced() {
        let v = vars(&["namespace", "datasource"]);
        assert_eq!(
            substitute(r#"sum(rate(x{namespace=~"$namespace"}[$__rate_interval]))"#, &v, "5m").unwrap(),
            r#"sum(rate(x{namespace=~".*"}[5m]))"#
        );
        assert_eq!(substitute(r#"x{a=~"${namespace:regex}"}[${__range}]"#, &v, "1m").unwrap(), r#"x{a=~".*"}[1m]"#);
        assert_eq!(substitute(r#"x{a=~"[[namespace]]"}[5m:1m]"#, &v, "1m").unwrap(), r#"x{a=~".*"}[5m:1m]"#);
        let err = substitute(r#"x{a="$missing"}"#, &v, "5m").unwrap_err().to_string();
        assert!(err.contains("$missing, which the dashboard does not define"), "{err}");
    }

    #[test]
    fn queries_come_from_targets_rows_and_variables_but_not_other_datasources() {
        let dashboard = serde_json::json!({
            "title": "t", "uid": "u",
            "templating": {"list": [
                {"name": "datasource", "type": "datasource"},
                {"name": "ns", "type": "query", "query": {"query": "label_values(up{job=\"a\"}, namespace)"}}
            ]},
            "panels": [
                {"id": 1, "title": "a", "targets": [{"refId": "A", "expr": "up{namespace=~\"$ns\"}"}]},
                {"id": 2, "type": "row", "panels": [
                    {"id": 3, "title": "b", "datasource": {"type": "prometheus", "uid": "${datasource}"},
                     "targets": [{"refId": "B", "expr": "rate(x[$__rate_interval])"}]}
                ]},
                {"id": 4, "title": "logs", "datasource": {"type": "loki", "uid": "loki"},
                 "targets": [{"refId": "A", "expr": "{app=\"x\"} |= \"$\""}]}
            ]
        });
        let exprs: Vec<String> = queries(&dashboard, "1m").unwrap().into_iter().map(|q| q.expr).collect();
        assert_eq!(exprs, [r#"up{namespace=~".*"}"#, "rate(x[1m])", r#"up{job="a"}"#]);
    }

    #[test]
    fn the_repository_dashboards_load_and_name_their_queries() {
        let root = crate::project::Project::discover().unwrap().root;
        for file in files(&root).unwrap() {
            let dashboard = load(&file).unwrap_or_else(|e| panic!("{}: {e:#}", file.display()));
            let found = queries(&dashboard, "5m").unwrap_or_else(|e| panic!("{}: {e:#}", file.display()));
            assert!(!found.is_empty(), "{}", file.display());
        }
    }
}
