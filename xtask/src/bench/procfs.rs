//! What a server costs, read from /proc: CPU time (user + system, all
//! threads), the peak resident set (`VmHWM`, the high-water mark the
//! kernel keeps for the process's lifetime), and how busy a core was.

use std::fs;

use anyhow::{Context, Result};

/// User + system CPU seconds of the processes so far.
pub fn cpu_seconds(pids: &[u32]) -> Result<f64> {
    let ticks_per_second = rustix::param::clock_ticks_per_second() as f64;
    let mut ticks = 0u64;
    for pid in pids {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("cannot read /proc/{pid}/stat (did the server exit?)"))?;
        ticks += cpu_ticks(&stat).with_context(|| format!("unexpected /proc/{pid}/stat: {stat}"))?;
    }
    Ok(ticks as f64 / ticks_per_second)
}

/// utime + stime: fields 14 and 15 of stat(5), counted after the command
/// name, which is in parentheses and may itself hold spaces.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field N is at index N - 3.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// Busy and total ticks of one core so far, from /proc/stat. Steal time (a
/// hypervisor running someone else) counts as neither: a noisy neighbour
/// must not make a core look busy with our work.
pub fn core_ticks(core: &str) -> Result<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    core_line_ticks(&stat, core).with_context(|| format!("no line for cpu{core} in /proc/stat"))
}

fn core_line_ticks(stat: &str, core: &str) -> Option<(u64, u64)> {
    let label = format!("cpu{core}");
    let line = stat.lines().find(|l| l.split_whitespace().next() == Some(label.as_str()))?;
    // user nice system idle iowait irq softirq (guest time is inside user).
    let ticks: Vec<u64> = line.split_whitespace().skip(1).take(7).map(|t| t.parse().ok()).collect::<Option<_>>()?;
    let [user, nice, system, idle, iowait, irq, softirq] = ticks[..] else { return None };
    let busy = user + nice + system + irq + softirq;
    Some((busy, busy + idle + iowait))
}

/// The share of `core` that was busy between two `core_ticks` readings.
pub fn busy_share(before: (u64, u64), after: (u64, u64)) -> f64 {
    let total = after.1.saturating_sub(before.1);
    if total == 0 { 0.0 } else { after.0.saturating_sub(before.0) as f64 / total as f64 }
}

/// Sum of the processes' peak resident set sizes, in KiB.
pub fn peak_rss_kib(pids: &[u32]) -> Result<u64> {
    let mut total = 0;
    for pid in pids {
        let status = fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("cannot read /proc/{pid}/status (did the server exit?)"))?;
        total += vm_hwm_kib(&status).with_context(|| format!("no VmHWM in /proc/{pid}/status"))?;
    }
    Ok(total)
}

fn vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_survive_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 17 0 0 20 0 3 0 99 1000 50";
        assert_eq!(cpu_ticks(stat), Some(267));
    }

    #[test]
    fn a_core_is_busy_for_all_but_its_idle_and_iowait_ticks() {
        let stat =
            "cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 100 0 50 800 50 0 0 0 0 0\ncpu1 300 10 90 550 40 5 5 0 0 0\nintr 1\n";
        assert_eq!(core_line_ticks(stat, "1"), Some((410, 1000)));
        assert_eq!(core_line_ticks(stat, "0"), Some((150, 1000)));
        assert_eq!(core_line_ticks(stat, "2"), None);
        assert_eq!(busy_share((150, 1000), (600, 1500)), 0.9);
        assert!(core_ticks("0").unwrap().1 > 0);
    }

    #[test]
    fn vm_hwm_is_read_in_kib() {
        let status = "Name:\tdemo-app\nVmPeak:\t  900000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t   12000 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(12345));
    }

    #[test]
    fn this_process_has_cpu_time_and_a_peak_rss() {
        let me = std::process::id();
        assert!(peak_rss_kib(&[me]).unwrap() > 0);
        assert!(cpu_seconds(&[me]).unwrap() >= 0.0);
        assert!(cpu_seconds(&[u32::MAX]).is_err());
    }
}
