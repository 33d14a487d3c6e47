//! GET /configs: the files of --config-path (a mounted ConfigMap), name to
//! content, as podinfo lists them. Read on each request: a ConfigMap update
//! (the kubelet swaps its `..data` link) shows at once, with no watcher.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse as _, Response};
use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::memory_budget;
use crate::routes::body_budget;
use crate::state::AppState;

/// Bounds (a folder is not a dump): a ConfigMap holds at most 1 MiB in all.
/// The total counts the answer's JSON, where escaping can make a byte six.
const MAX_FILES: usize = 256;
const MAX_ENTRIES_LOOKED_AT: usize = 4096;
const MAX_JSON_BYTES: usize = 2 * 1024 * 1024;

#[utoipa::path(get, path = "/configs", operation_id = "getConfigs", tag = "podinfo",
    responses((status = 200, description = "file name to content; empty without --config-path"),
        (status = 503, description = "the memory budget is spent (--max-buffered-bytes)")))]
pub async fn handler(State(state): State<AppState>) -> Response {
    let Some(dir) = state.config.config_path.clone() else {
        return Json(BTreeMap::<String, String>::new()).into_response();
    };
    // The files read and their JSON are counted until the answer is sent:
    // a hundred clients that never read it must not hold 2 MiB each
    // outside the budget.
    let Some(building) = state.memory.try_reserve(2 * MAX_JSON_BYTES) else {
        return memory_budget::exhausted("listing --config-path");
    };
    // Disk reads off the async workers.
    let json = tokio::task::spawn_blocking(move || serde_json::to_vec(&files(&dir)).unwrap_or_default())
        .await
        .unwrap_or_default();
    drop(building);
    let Some(answer) = state.memory.try_reserve(json.len()) else {
        return memory_budget::exhausted("listing --config-path");
    };
    let response = ([(axum::http::header::CONTENT_TYPE, "application/json")], json).into_response();
    body_budget::hold(response, answer)
}

/// The regular files of `dir`, without the kubelet's `..data` entries.
/// Links are followed (ConfigMap keys are relative links through `..data`)
/// only where they stay inside `dir`, which the kernel enforces while it
/// opens the file (RESOLVE_BENEATH): a check made before opening could be
/// raced by swapping a file for a link to /proc/self/environ.
pub fn files(dir: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let directory = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let (Ok(root), Ok(entries)) = (rustix::fs::open(dir, directory, Mode::empty()), std::fs::read_dir(dir)) else {
        return found;
    };
    let mut budget = MAX_JSON_BYTES.saturating_sub(2);
    for entry in entries.flatten().take(MAX_ENTRIES_LOOKED_AT) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains("..") {
            continue;
        }
        let Some(content) = read_beneath(&root, &name, budget) else { continue };
        let content = String::from_utf8_lossy(&content).into_owned();
        let cost = json_len(&name) + 1 + json_len(&content) + 1;
        if cost > budget {
            continue;
        }
        budget -= cost;
        found.insert(name, content);
        if found.len() == MAX_FILES {
            break;
        }
    }
    found
}

/// The content of `name` in `root` if it resolves inside `root` to a
/// regular file of at most `limit` bytes. Non-blocking, so that a FIFO
/// put there cannot hold the reading thread.
fn read_beneath(root: &rustix::fd::OwnedFd, name: &str, limit: usize) -> Option<Vec<u8>> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let file = std::fs::File::from(rustix::fs::openat2(root, name, flags, Mode::empty(), resolve).ok()?);
    // Judged on the opened file itself, not on its name.
    let metadata = file.metadata().ok()?;
    if !metadata.is_file() || metadata.len() > limit as u64 {
        return None;
    }
    let mut content = Vec::new();
    file.take(limit as u64 + 1).read_to_end(&mut content).ok()?;
    (content.len() <= limit).then_some(content)
}

/// The length of `text` as a JSON string (serde_json's escapes).
fn json_len(text: &str) -> usize {
    let escaped = |b: u8| match b {
        b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
        0..=0x1f => 6,
        _ => 1,
    };
    2 + text.bytes().map(escaped).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    #[test]
    fn a_configmap_folder_lists_its_keys_and_follows_updates() {
        let dir = tempfile::tempdir().unwrap();
        // The kubelet's layout: ..data links to a timestamped folder, each
        // key links through ..data, all links relative.
        let version = |n: u32, content: &str| {
            let folder = format!("..2026_12_05_{n}");
            std::fs::create_dir(dir.path().join(&folder)).unwrap();
            std::fs::write(dir.path().join(&folder).join("app.yaml"), content).unwrap();
            let _ = std::fs::remove_file(dir.path().join("..data"));
            symlink(&folder, dir.path().join("..data")).unwrap();
        };
        version(1, "color: blue");
        symlink("..data/app.yaml", dir.path().join("app.yaml")).unwrap();
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
    fn links_out_of_the_folder_fifos_and_files_past_the_total_are_left_out() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "password").unwrap();
        let dir = tempfile::tempdir().unwrap();
        symlink(outside.path().join("secret"), dir.path().join("absolute")).unwrap();
        let relative = format!("../{}/secret", outside.path().file_name().unwrap().to_str().unwrap());
        symlink(relative, dir.path().join("relative")).unwrap();
        symlink("/proc/self/environ", dir.path().join("environ")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.path().join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .unwrap();
        std::fs::write(dir.path().join("a-large"), vec![b'a'; 3 * 1024 * 1024 / 2]).unwrap();
        std::fs::write(dir.path().join("b-large"), vec![b'b'; 3 * 1024 * 1024 / 2]).unwrap();
        // 1 MiB that JSON makes 6 MiB.
        std::fs::write(dir.path().join("control"), vec![1u8; 1024 * 1024]).unwrap();
        std::fs::write(dir.path().join("small"), "ok").unwrap();
        let files = super::files(dir.path());
        for left_out in ["absolute", "relative", "environ", "fifo", "control"] {
            assert!(!files.contains_key(left_out), "{left_out} was listed");
        }
        assert_eq!(files["small"], "ok");
        let json = serde_json::to_vec(&files).unwrap();
        assert!(json.len() <= super::MAX_JSON_BYTES, "{} bytes of JSON", json.len());
        assert_eq!(files.len(), 2, "one of the two large files fits: {:?}", files.keys().collect::<Vec<_>>());
    }

    /// The race a review won 347 times in 23,459: a file swapped for a link
    /// to the process environment between a check and the open.
    #[test]
    fn a_file_swapped_for_a_link_out_of_the_folder_is_never_read() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
        let dir = tempfile::tempdir().unwrap();
        let (plain, link, swapped) = (dir.path().join(".plain"), dir.path().join(".link"), dir.path().join("swapped"));
        let (stop, swaps) = (std::sync::Arc::new(AtomicBool::new(false)), std::sync::Arc::new(AtomicUsize::new(0)));
        let swapper = {
            let (stop, swaps) = (stop.clone(), swaps.clone());
            std::thread::spawn(move || {
                while !stop.load(Relaxed) {
                    std::fs::write(&plain, "harmless").unwrap();
                    std::fs::rename(&plain, &swapped).unwrap();
                    symlink("/proc/self/environ", &link).unwrap();
                    std::fs::rename(&link, &swapped).unwrap();
                    swaps.fetch_add(1, Relaxed);
                }
            })
        };
        // Until both sides have had their turns many times (a loaded
        // machine may starve either), within a bound.
        let (started, mut listed) = (std::time::Instant::now(), 0);
        while (listed < 300 || swaps.load(Relaxed) < 3000) && started.elapsed().as_secs() < 20 {
            if let Some(content) = super::files(dir.path()).get("swapped") {
                assert_eq!(content, "harmless", "the link's target was read");
                listed += 1;
            }
        }
        stop.store(true, Relaxed);
        swapper.join().expect("the swapping thread failed");
        assert!(listed >= 300 && swaps.load(Relaxed) >= 3000, "the race was not run: {listed} reads, {swaps:?} swaps");
    }

    #[test]
    fn json_lengths_are_serde_jsons() {
        for text in
            ["", "plain", "quote \" backslash \\ tab \t nul \0 bell \x07 del \x7f", "é ☃ \u{1F600}", "\r\n\x08\x0c"]
        {
            assert_eq!(super::json_len(text), serde_json::to_string(text).unwrap().len(), "{text:?}");
        }
    }
}
