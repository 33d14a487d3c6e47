//! The OpenTelemetry crates must come from one release: two versions in
//! Cargo.lock means two global providers that do not see each other.

#[test]
fn exactly_one_version_of_each_opentelemetry_crate() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock")).unwrap();
    let mut versions: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_string());
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take())
            && (n.starts_with("opentelemetry") || n == "tracing-opentelemetry")
        {
            versions.entry(n).or_default().push(v.trim_matches('"').to_string());
        }
    }
    assert!(versions.contains_key("opentelemetry"), "opentelemetry is not in Cargo.lock");
    let duplicated: Vec<_> = versions.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(duplicated.is_empty(), "several versions: {duplicated:?}");
    let family: std::collections::BTreeSet<&str> = versions
        .iter()
        .filter(|(n, _)| n.starts_with("opentelemetry"))
        .map(|(_, v)| v[0].rsplit_once('.').map_or(v[0].as_str(), |(minor, _)| minor))
        .collect();
    assert_eq!(family.len(), 1, "one release family (0.33.x) expected: {versions:?}");
}
