//! The functions demo-app runs, for its code layout (crates/demo-app/build.rs
//! links them first, side by side). `cargo xtask bench --hot-code` runs every
//! demo-app case of the benchmark under callgrind from its start, under the
//! case's own load generator, and lists every function that ran in `LIST`,
//! grouped by the cases that ran it (see `in_layout_order`). Full benchmark
//! runs check that the list still names this build's functions: a
//! dependency, the compiler or the release profile renames them all.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::scenarios::Scenario;
use super::servers::{self, Binaries, Endpoints, Kind, Server, Telemetry};
use super::{Loaders, Options, Turn, callgrind, closed_loop, wrk};
use crate::project::Project;
use crate::stack::process;

pub const LIST: &str = "crates/demo-app/hot-functions.txt";

/// Below this share of its names found in the build, the list is stale.
const MATCHING: f64 = 0.9;

const HEADER: &str = "\
# The functions that demo-app's start-up and requests run, linked first and
# side by side in release builds (crates/demo-app/build.rs). Written by
# `cargo xtask bench --hot-code` from callgrind runs of every demo-app case
# of the benchmark, grouped by the cases that ran them; not edited by hand.
";

/// Long enough after start for the first metric export, which the
/// benchmark's servers live through: demo-app pushes metrics every 10 s
/// (`METRIC_INTERVAL`), the first after 20 s (the SDK's reader skips its
/// first tick).
const METRICS_EXPORTED: Duration = Duration::from_secs(22);

/// Runs the demo-app cases of `selected` under callgrind and writes `LIST`.
pub fn write(
    project: &Project,
    selected: &[(&Server, Scenario)],
    bins: &Binaries,
    endpoints: &Endpoints,
    loaders: &Loaders,
    options: &Options,
    out: &Path,
) -> Result<()> {
    let binary = bins.demo_app.as_deref().context("--hot-code needs the demo-app servers")?;
    // Each function with the cases that ran it.
    let mut executed: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    let cases: Vec<_> = selected.iter().filter(|(server, _)| server.kind == Kind::DemoApp).collect();
    for (n, (server, scenario)) in cases.iter().enumerate() {
        process::check_interrupted()?;
        let dir = out.join(format!("{}-{}", server.id, scenario.id()));
        fs::create_dir_all(&dir)?;
        let before = executed.len();
        let ran = run_case(server, *scenario, bins, endpoints, loaders, options, &dir)
            .with_context(|| format!("{} {} under callgrind", server.id, scenario.title()))?;
        for name in ran {
            executed.entry(name).or_insert_with(|| vec![false; cases.len()])[n] = true;
        }
        println!(
            "  [{}/{}] {} {}: {} functions, {} new",
            n + 1,
            cases.len(),
            server.id,
            scenario.id(),
            executed.len(),
            executed.len() - before
        );
    }
    let symbols = text_symbols(binary)?;
    let hot = in_layout_order(&symbols, &executed);
    if hot.is_empty() {
        bail!("callgrind named none of {}'s functions: was it built without symbols?", binary.display());
    }
    let path = project.root.join(LIST);
    let previous: BTreeSet<String> =
        fs::read_to_string(&path).map(|text| names(&text).map(String::from).collect()).unwrap_or_default();
    let size: u64 = symbols.iter().filter(|s| executed.contains_key(&s.name)).map(|s| s.size).sum();
    let mut text = HEADER.to_string();
    for name in &hot {
        text.push_str(name);
        text.push('\n');
    }
    fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    let kept = hot.iter().filter(|name| previous.contains(**name)).count();
    println!(
        "{LIST}: {} functions ({} KiB of code) of {} in the build; {kept} were listed, {} are new, {} no longer run or exist",
        hot.len(),
        size / 1024,
        symbols.len(),
        hot.len() - kept,
        previous.len() - kept
    );
    Ok(())
}

/// One case from its start: the load for `options.duration`, the exports
/// that follow it, then every process's counters dumped; the functions run.
fn run_case(
    server: &Server,
    scenario: Scenario,
    bins: &Binaries,
    endpoints: &Endpoints,
    loaders: &Loaders,
    options: &Options,
    dir: &Path,
) -> Result<BTreeSet<String>> {
    let started = Instant::now();
    // Mangled names: the linker orders symbols by those.
    let out_file = format!("--callgrind-out-file={}", dir.join("hot.%p").display());
    let wrap = |command: Command| callgrind::under_valgrind(command, &["--demangle=no", &out_file]);
    let running = servers::start_wrapped(server, scenario, bins, endpoints, dir, &wrap)?;
    let turn = Turn {
        server,
        dir: dir.to_path_buf(),
        url: format!("http://127.0.0.1:{}{}", running.port, scenario.path()),
        script: wrk::write_script(dir, scenario)?,
        running,
    };
    // Errors and timeouts do not matter here (valgrind is slow), but a load
    // that never ran, or was never answered, would list start-up alone.
    let load = closed_loop(&turn, scenario, loaders, options, options.duration)?;
    if load.requests == 0 {
        bail!(
            "no request was answered under callgrind in {} s (see the logs in {})",
            options.duration.as_secs(),
            dir.display()
        );
    }
    if server.telemetry != Telemetry::Off {
        std::thread::sleep(callgrind::BATCH_EXPORTED);
        std::thread::sleep(METRICS_EXPORTED.saturating_sub(started.elapsed()));
    }
    let mut running = turn.running;
    running.pids.iter().try_for_each(|pid| callgrind::control("-d", *pid))?;
    running.supervisor.stop_all();
    let (mut executed, mut dumps) = (BTreeSet::new(), 0);
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("hot.")) {
            let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            executed.extend(functions_in_dump(&text).map(String::from));
            dumps += 1;
        }
    }
    if dumps == 0 {
        bail!("callgrind wrote no dump in {}", dir.display());
    }
    Ok(executed)
}

/// The function names of a callgrind dump: `fn=` and `cfn=` lines, whose
/// name follows a `(id)` the first time (later lines repeat only the id).
fn functions_in_dump(dump: &str) -> impl Iterator<Item = &str> {
    dump.lines().filter_map(|line| {
        let rest = line.strip_prefix("fn=").or_else(|| line.strip_prefix("cfn="))?;
        let name = match rest.strip_prefix('(') {
            Some(compressed) => compressed.split_once(") ")?.1,
            None => rest,
        };
        Some(name.trim()).filter(|n| !n.is_empty())
    })
}

/// The names of a list file: one a line, `#` comments (as lld reads it).
fn names(list: &str) -> impl Iterator<Item = &str> {
    list.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'))
}

struct Symbol {
    address: u64,
    size: u64,
    name: String,
}

/// The functions defined in `binary`'s symbol table (`nm`).
fn text_symbols(binary: &Path) -> Result<Vec<Symbol>> {
    let output = crate::cmd::capture(Command::new("nm").args(["--defined-only", "--print-size"]).arg(binary))
        .context("nm (binutils) is missing: `apt-get install -y binutils`")?;
    if !output.status.success() {
        bail!("nm {} failed: {}", binary.display(), String::from_utf8_lossy(&output.stderr));
    }
    let symbols = parse_nm(&String::from_utf8_lossy(&output.stdout));
    if symbols.is_empty() {
        bail!("{} has no function symbols: a stripped build cannot be listed or checked", binary.display());
    }
    Ok(symbols)
}

/// `nm --print-size` lines `ADDRESS SIZE TYPE NAME`, functions only (t, T, w, W).
fn parse_nm(text: &str) -> Vec<Symbol> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = u64::from_str_radix(fields.next()?, 16).ok()?;
            let size = u64::from_str_radix(fields.next()?, 16).ok()?;
            let kind = fields.next()?;
            let name = fields.next()?;
            ["t", "T", "w", "W"].contains(&kind).then(|| Symbol { address, size, name: name.to_string() })
        })
        .collect()
}

/// The executed functions of the build, each case's as close together as
/// the others allow: a process runs one case (a scenario of the benchmark
/// in one telemetry variant), and every 64 KiB of code it touches is
/// resident. Functions are sorted by the cases that ran them, the first
/// case first (those it ran, then those it did not), then the second, and
/// so on; then by address, so that a list made from a build already laid
/// out keeps its order. In address order alone, every case kept nearly all
/// of the 4.2 MiB the cases run together resident (4.3-5.4 MiB of text
/// after 4 s of `/healthz`, strays included); grouped, 2.1 MiB without
/// telemetry and 2.7-3.1 MiB with export.
fn in_layout_order<'a>(symbols: &'a [Symbol], executed: &BTreeMap<String, Vec<bool>>) -> Vec<&'a str> {
    let mut hot: Vec<(&Vec<bool>, &Symbol)> =
        symbols.iter().filter_map(|s| executed.get(&s.name).map(|cases| (cases, s))).collect();
    // `true` sorts after `false`: "ran in this case" is the `false` of `!ran`.
    hot.sort_by_key(|(cases, s)| (cases.iter().map(|ran| !ran).collect::<Vec<_>>(), s.address, &s.name));
    let mut seen = BTreeSet::new();
    hot.into_iter().map(|(_, s)| s.name.as_str()).filter(|name| seen.insert(*name)).collect()
}

/// Fails when `LIST` no longer names this build's functions, or names them
/// but the build did not lay them out in its order (build.rs skipped the
/// layout): the benchmark never measures the memory of a layout that
/// silently fell apart.
pub fn check(project: &Project, binary: &Path) -> Result<()> {
    let path = project.root.join(LIST);
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let listed: Vec<&str> = names(&text).collect();
    let layout = Layout::of(&listed, &text_symbols(binary)?);
    println!(
        "code layout: {} of the {} functions in {LIST} are in this build, {} of them in the list's order",
        layout.found,
        listed.len(),
        layout.in_order
    );
    if listed.is_empty() || (layout.found as f64) < MATCHING * listed.len() as f64 {
        bail!(
            "{LIST} no longer matches the build ({} of {} names found; a dependency, the compiler or the release profile changed): run `cargo xtask bench --hot-code` and commit the list",
            layout.found,
            listed.len()
        );
    }
    if (layout.in_order as f64) < MATCHING * layout.found as f64 {
        bail!(
            "the build did not lay out {LIST} ({} of {} names in its order): was it linked by lld, with crates/demo-app/build.rs's arguments?",
            layout.in_order,
            layout.found
        );
    }
    Ok(())
}

/// How a build holds the list: names found, and found names whose address
/// follows the previous found name's (the linker put them in list order).
#[derive(Debug, PartialEq)]
struct Layout {
    found: usize,
    in_order: usize,
}

impl Layout {
    fn of(listed: &[&str], symbols: &[Symbol]) -> Self {
        let mut addresses = std::collections::HashMap::new();
        for symbol in symbols {
            addresses.entry(symbol.name.as_str()).or_insert(symbol.address);
        }
        let found: Vec<u64> = listed.iter().filter_map(|name| addresses.get(name).copied()).collect();
        let in_order = found.windows(2).filter(|pair| pair[0] < pair[1]).count() + usize::from(!found.is_empty());
        Layout { found: found.len(), in_order }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_names_are_read_with_and_without_their_id() {
        let dump =
            "fn=(1) _ZN4main17h0E\ncalls=1 0\ncfn=(2) _RNvCs1_3std3now\ncfn=(2)\nfn=(3)\nfn=plain\nob=(1) /bin/x\n";
        let names: Vec<&str> = functions_in_dump(dump).collect();
        assert_eq!(names, ["_ZN4main17h0E", "_RNvCs1_3std3now", "plain"]);
    }

    #[test]
    fn nm_lines_keep_functions_only() {
        let nm = "0000000000001000 0000000000000020 T main\n\
                  0000000000002000 0000000000000010 t local.llvm.1\n\
                  0000000000003000 0000000000000008 D data\n\
                  0000000000004000 0000000000000004 W weak\n\
                  0000000000005000 r no_size\n";
        let symbols = parse_nm(nm);
        let names: Vec<(&str, u64)> = symbols.iter().map(|s| (s.name.as_str(), s.size)).collect();
        assert_eq!(names, [("main", 0x20), ("local.llvm.1", 0x10), ("weak", 4)]);
    }

    #[test]
    fn the_list_groups_functions_by_their_cases_then_follows_the_build_addresses_once_per_name() {
        let symbol = |address, name: &str| Symbol { address, size: 1, name: name.into() };
        let symbols =
            [symbol(30, "c"), symbol(10, "b"), symbol(20, "a"), symbol(40, "idle"), symbol(50, "a"), symbol(5, "d")];
        let ran = |name: &str, cases: [bool; 2]| (name.to_string(), cases.to_vec());
        let executed = BTreeMap::from([
            ran("a", [true, true]),
            ran("b", [true, true]),
            ran("c", [true, false]),
            ran("d", [false, true]),
            ran("libc_only", [true, true]),
        ]);
        // Both cases' functions, then the first's alone, then the second's:
        // each case's functions side by side.
        assert_eq!(in_layout_order(&symbols, &executed), ["b", "a", "c", "d"]);
    }

    #[test]
    fn a_build_holds_the_list_in_its_order_or_not() {
        let symbol = |address, name: &str| Symbol { address, size: 1, name: name.into() };
        let laid_out = [symbol(10, "a"), symbol(20, "b"), symbol(30, "c"), symbol(40, "d")];
        assert_eq!(Layout::of(&["a", "b", "gone", "c"], &laid_out), Layout { found: 3, in_order: 3 });
        let by_default = [symbol(40, "a"), symbol(10, "b"), symbol(30, "c"), symbol(20, "d")];
        assert_eq!(Layout::of(&["a", "b", "c", "d"], &by_default), Layout { found: 4, in_order: 2 });
        assert_eq!(Layout::of(&["x"], &laid_out), Layout { found: 0, in_order: 0 });
    }

    #[test]
    fn list_comments_and_blank_lines_are_not_names() {
        assert_eq!(names("# header\n\n_ZN1a\n  _ZN1b  \n").collect::<Vec<_>>(), ["_ZN1a", "_ZN1b"]);
    }

    #[test]
    fn the_committed_list_names_functions() {
        let project = Project::discover().unwrap();
        let text = fs::read_to_string(project.root.join(LIST)).unwrap();
        assert!(text.starts_with(HEADER), "{LIST} lost its header");
        let count = names(&text).count();
        assert!(count > 1000, "{LIST} names only {count} functions");
        assert!(names(&text).all(|n| !n.contains(char::is_whitespace)), "one name a line");
    }
}
