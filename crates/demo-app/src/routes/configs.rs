//! GET /configs: the files of --config-path (a mounted ConfigMap), name to
//! content, as podinfo lists them. Read on each request: a ConfigMap update
//! (the kubelet swaps its `..data` link) shows at once, with no watcher.

use std::collections::BTreeMap;
use std::path::Path;

use axum::Json;
use axum::extract::State;

use crate::state::AppState;

/// Files past these bounds are left out (a folder is not a dump).
const MAX_FILES: usize = 256;
const MAX_FILE_BYTES: u64 = 1024 * 1024;

#[utoipa::path(get, path = "/configs", operation_id = "getConfigs", tag = "podinfo",
    responses((status = 200, description = "file name to content; empty without --config-path")))]
pub async fn handler(State(state): State<AppState>) -> Json<BTreeMap<String, String>> {
    let Some(dir) = state.config.config_path.clone() else { return Json(BTreeMap::new()) };
    // Disk reads off the async workers.
    Json(tokio::task::spawn_blocking(move || files(&dir)).await.unwrap_or_default())
}

/// The regular files of `dir` (links followed, as ConfigMap keys are links),
/// without the kubelet's `..data` entries.
pub fn files(dir: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries.flatten().take(MAX_FILES) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let is_file = std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() <= MAX_FILE_BYTES);
        if name.contains("..") || !is_file {
            continue;
        }
        if let Ok(content) = std::fs::read(&path) {
            found.insert(name, String::from_utf8_lossy(&content).into_owned());
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
}
