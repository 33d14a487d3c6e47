//! What Flux reads, served over loopback HTTP the way it is served in
//! production: the repository through Git's smart HTTP protocol (`git
//! http-backend`, the CGI program Git ships), and every Helm repository the
//! clusters use as a folder with its `index.yaml` and chart archives.

use std::collections::HashMap;
use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;

use anyhow::{Context, Result};

pub struct Sources {
    pub port: u16,
}

impl Sources {
    pub fn git_url(&self, repository: &str) -> String {
        format!("http://127.0.0.1:{}/git/{repository}", self.port)
    }

    pub fn chart_url(&self, key: &str) -> String {
        format!("http://127.0.0.1:{}/charts/{key}/", self.port)
    }
}

/// `git_root`: a folder of bare repositories; `charts`: URL key → folder.
pub fn start(git: &Path, git_root: &Path, charts: HashMap<String, PathBuf>) -> Result<Sources> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("cannot listen for the Flux sources")?;
    let port = listener.local_addr()?.port();
    let shared = Arc::new((git.to_path_buf(), git_root.to_path_buf(), charts));
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let shared = shared.clone();
            thread::spawn(move || {
                let (git, root, charts) = &*shared;
                let _ = handle(stream, git, root, charts);
            });
        }
    });
    Ok(Sources { port })
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn read_request(stream: &TcpStream) -> io::Result<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (path, query) = (path.to_string(), query.to_string());
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    let mut request = Request { method, path, query, headers, body: Vec::new() };
    if let Some(length) = request.header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        request.body.resize(length, 0);
        reader.read_exact(&mut request.body)?;
    } else if request.header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            request.body.extend_from_slice(&chunk[..size]);
        }
    }
    Ok(request)
}

fn respond(mut stream: &TcpStream, status: &str, headers: &[(String, String)], body: &[u8]) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)
}

fn handle(stream: TcpStream, git: &Path, git_root: &Path, charts: &HashMap<String, PathBuf>) -> io::Result<()> {
    let request = read_request(&stream)?;
    if let Some(rest) = request.path.strip_prefix("/git/") {
        let path = rest.to_string();
        return git_backend(&stream, git, git_root, &path, request);
    }
    if let Some(rest) = request.path.strip_prefix("/charts/")
        && let Some((key, file)) = rest.split_once('/')
        && let Some(folder) = charts.get(key)
        && is_plain(file)
        && let Ok(bytes) = std::fs::read(folder.join(file))
    {
        let kind = if file.ends_with(".yaml") { "application/x-yaml" } else { "application/gzip" };
        return respond(&stream, "200 OK", &[("content-type".into(), kind.into())], &bytes);
    }
    respond(&stream, "404 Not Found", &[], format!("{} is not served here\n", request.path).as_bytes())
}

/// A file name without `..` or folders.
fn is_plain(file: &str) -> bool {
    let path = Path::new(file);
    path.components().count() == 1 && matches!(path.components().next(), Some(Component::Normal(_)))
}

/// One request through `git http-backend`, as a web server runs the CGI.
fn git_backend(stream: &TcpStream, git: &Path, root: &Path, path: &str, mut request: Request) -> io::Result<()> {
    let mut cgi = Command::new(git);
    cgi.arg("http-backend")
        .env_clear()
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &request.method)
        .env("PATH_INFO", format!("/{path}"))
        .env("QUERY_STRING", &request.query)
        .env("CONTENT_LENGTH", request.body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (header, variable) in [
        ("content-type", "CONTENT_TYPE"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ] {
        if let Some(value) = request.header(header) {
            cgi.env(variable, value);
        }
    }
    let mut child = cgi.spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let body = std::mem::take(&mut request.body);
    let writer = thread::spawn(move || stdin.write_all(&body));
    let out = child.wait_with_output()?;
    let _ = writer.join();
    let split = out.stdout.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    let split = split.or_else(|| out.stdout.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, gap)) = split else {
        return respond(stream, "502 Bad Gateway", &[], b"git http-backend printed no headers\n");
    };
    let mut status = "200 OK".to_string();
    let mut headers = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout[..end]).lines() {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("status") {
                status = value.trim().to_string();
            } else {
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
    }
    respond(stream, &status, &headers, &out.stdout[end + gap..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::repository::Repository;

    fn http_get(port: u16, path: &str) -> (u16, Vec<u8>) {
        let response = crate::stack::http::get(port, path).unwrap();
        (response.status, response.body)
    }

    /// Flux's Git client and `git clone` speak the same smart protocol: a
    /// clone through the server sees the published tree, then a new commit.
    #[test]
    fn git_clients_clone_the_published_tree_and_see_new_commits() {
        let tree = tempfile::tempdir().unwrap();
        fs_write(tree.path(), "deploy/app.yaml", "replicas: 1\n");
        fs_write(tree.path(), ".gitignore", "ignored/\n");
        fs_write(tree.path(), "ignored/secret", "no\n");
        let work = tempfile::tempdir().unwrap();
        let git = Path::new("git");
        let repository = Repository::publish(git, tree.path(), work.path()).unwrap();
        let sources = start(git, &repository.root, HashMap::new()).unwrap();

        let clone = work.path().join("clone");
        let url = sources.git_url("platform.git");
        crate::cmd::run(Command::new("git").args(["clone", "--quiet", &url]).arg(&clone)).unwrap();
        assert_eq!(std::fs::read_to_string(clone.join("deploy/app.yaml")).unwrap(), "replicas: 1\n");
        assert!(!clone.join("ignored").exists(), "ignored files must not be published");

        repository.commit_file("deploy/app.yaml", "replicas: 2\n", "scale").unwrap();
        repository.commit_file("deploy/new.yaml", "kind: New\n", "add a file").unwrap();
        crate::cmd::run(Command::new("git").current_dir(&clone).args(["pull", "--quiet"])).unwrap();
        assert_eq!(std::fs::read_to_string(clone.join("deploy/app.yaml")).unwrap(), "replicas: 2\n");
        assert_eq!(std::fs::read_to_string(clone.join("deploy/new.yaml")).unwrap(), "kind: New\n");
        assert_eq!(repository.head_subject().unwrap(), "add a file");
        repository.remove_file("deploy/app.yaml", "prune").unwrap();
        crate::cmd::run(Command::new("git").current_dir(&clone).args(["pull", "--quiet"])).unwrap();
        assert!(!clone.join("deploy/app.yaml").exists());
    }

    #[test]
    fn chart_folders_are_served_by_key_and_nothing_else() {
        let charts = tempfile::tempdir().unwrap();
        fs_write(charts.path(), "index.yaml", "apiVersion: v1\n");
        fs_write(charts.path(), "demo-1.0.0.tgz", "archive");
        let outside = tempfile::tempdir().unwrap();
        let folders = HashMap::from([("abc".to_string(), charts.path().to_path_buf())]);
        let sources = start(Path::new("git"), outside.path(), folders).unwrap();
        assert_eq!(http_get(sources.port, "/charts/abc/index.yaml"), (200, b"apiVersion: v1\n".to_vec()));
        assert_eq!(http_get(sources.port, "/charts/abc/demo-1.0.0.tgz").0, 200);
        assert_eq!(http_get(sources.port, "/charts/abc/missing.tgz").0, 404);
        assert_eq!(http_get(sources.port, "/charts/other/index.yaml").0, 404);
        assert_eq!(http_get(sources.port, "/charts/abc/../abc/index.yaml").0, 404);
        assert_eq!(http_get(sources.port, "/charts/abc/%2e%2e/index.yaml").0, 404);
    }

    fn fs_write(dir: &Path, file: &str, text: &str) {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}
