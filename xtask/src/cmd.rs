//! Running external programs with errors that say what to do next.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};

/// The command line as a reader would type it.
pub fn display(cmd: &Command) -> String {
    let mut line = String::new();
    if let Some(dir) = cmd.get_current_dir() {
        let _ = write!(line, "(cd {} && ", dir.display());
    }
    line.push_str(&shell_word(cmd.get_program()));
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&shell_word(arg));
    }
    if cmd.get_current_dir().is_some() {
        line.push(')');
    }
    line
}

fn shell_word(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%{}".contains(c)) {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Runs to completion and captures output; a non-zero exit is *not* an error.
pub fn capture(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null()).output().with_context(|| format!("cannot start `{}`", display(cmd)))
}

/// Runs to completion and fails, quoting the end of stderr, unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let output = capture(cmd)?;
    if !output.status.success() {
        bail!("`{}` failed ({}):\n{}", display(cmd), output.status, tail(&output.stderr, &output.stdout, 40));
    }
    Ok(output)
}

/// The last `lines` lines of stderr, or of stdout when stderr is empty.
pub fn tail(stderr: &[u8], stdout: &[u8], lines: usize) -> String {
    let text = if stderr.iter().all(u8::is_ascii_whitespace) { stdout } else { stderr };
    let text = String::from_utf8_lossy(text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// First line of stdout (or stderr), trimmed: handy for `--version` output.
pub fn first_line(output: &Output) -> String {
    let text = if output.stdout.is_empty() { &output.stderr } else { &output.stdout };
    String::from_utf8_lossy(text).lines().next().unwrap_or("").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_needs_it() {
        let mut cmd = Command::new("helm");
        cmd.args(["template", "--set", "a=b c", "it's"]);
        assert_eq!(display(&cmd), r"helm template --set 'a=b c' 'it'\''s'");
    }

    #[test]
    fn run_reports_the_failing_command_and_its_stderr() {
        let err = run(Command::new("sh").args(["-c", "echo boom >&2; exit 3"])).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("sh -c"), "{msg}");
        assert!(msg.contains("boom"), "{msg}");
    }
}
