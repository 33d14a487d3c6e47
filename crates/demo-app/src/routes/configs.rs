//! GET /configs: the files of --config-path (a mounted ConfigMap), name to
//! content, as podinfo lists them. Read on each request: a ConfigMap update
//! (the kubelet swaps its `..data` link) shows at once, with no watcher.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use axum::Json;
use axum::extract::State;

use crate::state::AppState;

/// Bounds (a folder is not a dump): a ConfigMap holds at most 1 MiB in all,
/// and JSON escaping can make a byte six.
const MAX_FILES: usize = 256;
const MAX_ENTRIES_LOOKED_AT: usize = 4096;
const MAX_TOTAL_BYTES: u64 = 2 * 1024 * 1024;

#[utoipa::path(get, path = "/configs", operation_id = "getConfigs", tag = "podinfo",
    responses((status = 200, description = "file name to content; empty without --config-path")))]
pub async fn handler(State(state): State<AppState>) -> Json<BTreeMap<String, String>> {
    let Some(dir) = state.config.config_path.clone() else { return Json(BTreeMap::new()) };
    // Disk reads off the async workers.
    Json(tokio::task::spawn_blocking(move || files(&dir)).await.unwrap_or_default())
}

/// The regular files of `dir`, without the kubelet's `..data` entries.
/// Links are followed (ConfigMap keys are links through `..data`) only
/// where they stay inside `dir`: a link to /etc/shadow or /proc/self/environ
/// in a writable folder must not publish it.
pub fn files(dir: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let (Ok(root), Ok(entries)) = (dir.canonicalize(), std::fs::read_dir(dir)) else { return found };
    let mut budget = MAX_TOTAL_BYTES;
    for entry in entries.flatten().take(MAX_ENTRIES_LOOKED_AT) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(target) = entry.path().canonicalize() else { continue };
        let is_file = std::fs::metadata(&target).is_ok_and(|m| m.is_file() && m.len() <= budget);
        if name.contains("..") || !target.starts_with(&root) || !is_file {
            continue;
        }
        let mut content = Vec::new();
        let read = std::fs::File::open(&target).and_then(|file| file.take(budget + 1).read_to_end(&mut content));
        if read.is_err() || content.len() as u64 > budget {
            continue;
        }
        budget -= content.len() as u64;
        found.insert(name, String::from_utf8_lossy(&content).into_owned());
        if found.len() == MAX_FILES {
            break;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_configmap_folder_lists_its_keys_and_follows_updates() {
        let dir = tempfile::tempdir().unwrap();
        // The kubelet's layout: ..data links to a timestamped folder, each
        // key links through ..data.
        let version = |n: u32, content: &str| {
            let folder = dir.path().join(format!("..2026_12_05_{n}"));
            std::fs::create_dir(&folder).unwrap();
            std::fs::write(folder.join("app.yaml"), content).unwrap();
            let _ = std::fs::remove_file(dir.path().join("..data"));
            std::os::unix::fs::symlink(&folder, dir.path().join("..data")).unwrap();
        };
        version(1, "color: blue");
        std::os::unix::fs::symlink(dir.path().join("..data/app.yaml"), dir.path().join("app.yaml")).unwrap();
        std::fs::create_dir(dir.path().join("nested")).unwrap();
        assert_eq!(
            super::files(dir.path()).into_iter().collect::<Vec<_>>(),
            [("app.yaml".into(), "color: blue".into())]
        );
        version(2, "color: green");
        assert_eq!(super::files(dir.path())["app.yaml"], "color: green");
        assert!(super::files(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn links_out_of_the_folder_and_files_past_the_total_are_left_out() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "password").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("leak")).unwrap();
        std::fs::write(dir.path().join("a-large"), vec![b'a'; 3 * 1024 * 1024 / 2]).unwrap();
        std::fs::write(dir.path().join("b-large"), vec![b'b'; 3 * 1024 * 1024 / 2]).unwrap();
        std::fs::write(dir.path().join("small"), "ok").unwrap();
        let files = super::files(dir.path());
        assert!(!files.contains_key("leak"), "a link out of the folder was followed");
        assert_eq!(files["small"], "ok");
        let total: usize = files.values().map(String::len).sum();
        assert!(total as u64 <= super::MAX_TOTAL_BYTES, "{total} bytes listed");
        assert_eq!(files.len(), 2, "one of the two large files fits: {:?}", files.keys().collect::<Vec<_>>());
    }
}
