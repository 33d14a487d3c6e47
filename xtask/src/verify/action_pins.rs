//! Every `uses:` of a workflow names its action by a full 40-hex commit SHA
//! with the release in a comment (`owner/repo@<sha> # v1.2.3`): a tag can be
//! moved to other code (trivy-action's were, in March 2026), a commit cannot,
//! and the comment tells a reviewer (and Dependabot) which release it is.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::Outcome;

pub fn check(files: &[PathBuf]) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    for file in files {
        let text = fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        for (n, line) in text.lines().enumerate() {
            if let Some(problem) = problem(line) {
                outcome.failures.push(format!("{}:{}: {problem}: {}", file.display(), n + 1, line.trim()));
            }
        }
        outcome.checked += 1;
    }
    Ok(outcome)
}

/// What is wrong with one line, if it is a `uses:` line.
fn problem(line: &str) -> Option<&'static str> {
    let rest = line.trim_start().trim_start_matches("- ").trim_start();
    let value = rest.strip_prefix("uses:")?.trim();
    let (reference, comment) = match value.split_once('#') {
        Some((r, c)) => (r.trim(), Some(c.trim())),
        None => (value, None),
    };
    let reference = reference.trim_matches(['"', '\'']);
    // Local actions live in this repository, at this commit.
    if reference.starts_with("./") {
        return None;
    }
    if reference.starts_with("docker://") {
        return (!reference.contains("@sha256:")).then_some("a container action must be pinned by @sha256 digest");
    }
    let Some((_, sha)) = reference.rsplit_once('@') else {
        return Some("no @<commit>");
    };
    if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Some("not pinned by a full 40-hex commit SHA");
    }
    match comment {
        Some(c) if is_version(c) => None,
        _ => Some("the SHA needs its release as a comment, e.g. `# v1.2.3`"),
    }
}

fn is_version(comment: &str) -> bool {
    let v = comment.strip_prefix('v').unwrap_or(comment);
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::problem;

    #[test]
    fn accepts_a_sha_with_a_version_and_local_actions() {
        assert_eq!(problem("      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0"), None);
        assert_eq!(problem("        uses: a/b/sub@0123456789abcdef0123456789abcdef01234567 # 0.35.0"), None);
        assert_eq!(problem("      - uses: ./.github/actions/setup"), None);
        assert_eq!(problem("      - run: echo uses: x@v1"), None);
    }

    #[test]
    fn refuses_tags_branches_short_shas_and_missing_versions() {
        assert!(problem("      - uses: actions/checkout@v5").is_some());
        assert!(problem("      - uses: aquasecurity/trivy-action@master").is_some());
        assert!(problem("      - uses: actions/checkout@08c6903 # v5.0.0").is_some());
        assert!(problem("      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8").is_some());
        assert!(problem("      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # latest").is_some());
        assert!(problem("      - uses: docker://alpine:3").is_some());
    }
}
