//! No two modules import each other, in xtask or demo-app: one owner per
//! concept, types live with their producer. A pair that does fails here with
//! both names.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Module path (`verify::kyverno`) -> source file text before its tests.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for entry in walkdir::WalkDir::new(src).into_iter().filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path.strip_prefix(src).unwrap().with_extension("");
        let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
            parts.pop();
        }
        let text = fs::read_to_string(path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default().to_string();
        found.insert(parts.join("::"), code);
    }
    found
}

/// The paths named after `crate::` or `super::` (groups `{a, b::c}` split).
fn referenced_paths(code: &str, module: &str) -> Vec<Vec<String>> {
    let parent: Vec<String> = module.split("::").filter(|s| !s.is_empty()).map(str::to_string).collect();
    let parent = &parent[..parent.len().saturating_sub(1)];
    let mut paths = Vec::new();
    for (anchor, base) in [("crate::", &[][..]), ("super::", parent)] {
        for (at, _) in code.match_indices(anchor) {
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = &code[at + anchor.len()..];
            let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                group[..group.find('}').unwrap_or(0)].split(',').collect()
            } else {
                let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
                vec![&rest[..end]]
            };
            for name in names {
                let segments = name.trim().split("::").filter(|s| !s.is_empty() && *s != "self");
                paths.push(base.iter().cloned().chain(segments.map(str::to_string)).collect());
            }
        }
    }
    paths
}

fn mutual_imports(src: &Path) -> Vec<String> {
    let modules = modules(src);
    let mut imports: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (module, code) in &modules {
        for path in referenced_paths(code, module) {
            // The longest prefix that is a module of this crate, other than itself.
            let target = (1..=path.len()).rev().map(|n| path[..n].join("::")).find(|m| modules.contains_key(m));
            if let Some(target) = target.filter(|t| t != module) {
                imports.entry(module).or_default().insert(target);
            }
        }
    }
    let mut pairs = Vec::new();
    for (module, targets) in &imports {
        for target in targets.iter().filter(|t| t.as_str() > *module) {
            if imports.get(target.as_str()).is_some_and(|back| back.contains(*module)) {
                pairs.push(format!("{module} <-> {target}"));
            }
        }
    }
    pairs
}

#[test]
fn no_two_modules_import_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for src in ["xtask/src", "crates/demo-app/src"] {
        let pairs = mutual_imports(&root.join(src));
        assert!(pairs.is_empty(), "{src}: modules that import each other: {pairs:?}");
    }
}

#[test]
fn a_mutual_import_is_found() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("a")).unwrap();
    fs::write(dir.path().join("main.rs"), "mod a;\nmod b;\n").unwrap();
    fs::write(dir.path().join("a/mod.rs"), "mod x;\nuse crate::b::Thing;\n").unwrap();
    fs::write(dir.path().join("a/x.rs"), "use super::{y, super::b};\n").unwrap();
    fs::write(
        dir.path().join("b.rs"),
        "pub struct Thing;\nfn f() { crate::a::g(); }\n#[cfg(test)]\nuse crate::a::x;\n",
    )
    .unwrap();
    assert_eq!(mutual_imports(dir.path()), ["a <-> b"]);
}
