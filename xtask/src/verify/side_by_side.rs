//! Independent checks run a few at a time: most of verify's time is spent
//! waiting on one external validator (checkov's Python, the Kyverno CLI,
//! kubeconform), and a second core sat idle while they ran one after another.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::Outcome;

/// One line of the report: its name, the unit it counts, and the work.
pub struct Check<'a> {
    pub name: &'static str,
    pub unit: &'static str,
    pub run: Box<dyn FnOnce() -> Result<Outcome> + Send + 'a>,
}

impl<'a> Check<'a> {
    pub fn new(name: &'static str, unit: &'static str, run: impl FnOnce() -> Result<Outcome> + Send + 'a) -> Self {
        Check { name, unit, run: Box::new(run) }
    }
}

/// A check's outcome and how long it took.
type Finished = (Result<Outcome>, Duration);

/// Runs `checks` with at most `width` at once, longest first as listed, and
/// gives each result to `report` in the order listed, as soon as it and those
/// before it are done (so the output reads the same on every run).
pub fn run(width: usize, checks: Vec<Check<'_>>, mut report: impl FnMut(&str, &str, Result<Outcome>, Duration)) {
    let count = checks.len();
    let labels: Vec<(&str, &str)> = checks.iter().map(|c| (c.name, c.unit)).collect();
    let queue: Mutex<VecDeque<(usize, Check<'_>)>> = Mutex::new(checks.into_iter().enumerate().collect());
    let done: Mutex<Vec<Option<Finished>>> = Mutex::new((0..count).map(|_| None).collect());
    let finished = Condvar::new();
    std::thread::scope(|scope| {
        for _ in 0..width.clamp(1, count.max(1)) {
            scope.spawn(|| {
                loop {
                    let Some((i, check)) = queue.lock().expect("queue lock").pop_front() else { break };
                    let began = Instant::now();
                    // A panicking check is a failed line, not a report that waits forever.
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check.run))
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("{} panicked", check.name)));
                    done.lock().expect("results lock")[i] = Some((outcome, began.elapsed()));
                    finished.notify_all();
                }
            });
        }
        for (i, (name, unit)) in labels.into_iter().enumerate() {
            let mut results = done.lock().expect("results lock");
            let (outcome, took) = loop {
                match results[i].take() {
                    Some(result) => break result,
                    None => results = finished.wait(results).expect("results lock"),
                }
            };
            drop(results);
            report(name, unit, outcome, took);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_the_order_listed_whatever_order_they_finish_in() {
        // "slow" cannot end before "fast" has run: no timing involved.
        let (fast_ran, wait_for_fast) = std::sync::mpsc::channel();
        let checks = vec![
            Check::new("slow", "files", move || {
                wait_for_fast.recv().expect("fast runs");
                Ok(Outcome { checked: 1, failures: Vec::new() })
            }),
            Check::new("fast", "files", move || {
                fast_ran.send(()).expect("slow waits");
                Ok(Outcome { checked: 2, failures: Vec::new() })
            }),
            Check::new("broken", "files", || anyhow::bail!("no tool")),
            Check::new("panicking", "files", || panic!("bug")),
        ];
        let mut seen = Vec::new();
        run(2, checks, |name, _, outcome, _| {
            seen.push((name.to_string(), outcome.map(|o| o.checked).map_err(|e| e.to_string())));
        });
        assert_eq!(
            seen,
            vec![
                ("slow".to_string(), Ok(1)),
                ("fast".to_string(), Ok(2)),
                ("broken".to_string(), Err("no tool".to_string())),
                ("panicking".to_string(), Err("panicking panicked".to_string())),
            ]
        );
    }
}
