//! `process_*` metrics (the names every Prometheus client uses), read from
//! /proc on each scrape. Elsewhere than Linux the collector reports nothing.

use std::fs;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

#[derive(Debug, Default)]
pub struct ProcessCollector;

/// A snapshot of this process.
#[derive(Debug, PartialEq)]
pub struct Sample {
    pub cpu_seconds: f64,
    pub resident_bytes: i64,
    pub virtual_bytes: i64,
    pub start_time_seconds: f64,
    pub open_fds: i64,
    pub max_fds: i64,
}

impl Sample {
    pub fn read() -> Option<Self> {
        let stat = fs::read_to_string("/proc/self/stat").ok()?;
        let boot_time = fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse::<f64>()
            .ok()?;
        let limits = fs::read_to_string("/proc/self/limits").ok()?;
        let open_fds = fs::read_dir("/proc/self/fd").ok()?.count() as i64;
        parse(
            &stat,
            boot_time,
            &limits,
            open_fds,
            rustix::param::clock_ticks_per_second() as f64,
            rustix::param::page_size() as i64,
        )
    }
}

/// `/proc/self/stat` fields after the command name, which may hold spaces.
fn parse(stat: &str, boot_time: f64, limits: &str, open_fds: i64, ticks: f64, page: i64) -> Option<Sample> {
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Indexes are the man page's field numbers minus 3 (pid, comm are gone).
    let number = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    let max_fds = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1);
    Some(Sample {
        cpu_seconds: (number(14)? + number(15)?) / ticks,
        virtual_bytes: number(23)? as i64,
        resident_bytes: number(24)? as i64 * page,
        start_time_seconds: boot_time + number(22)? / ticks,
        open_fds,
        max_fds,
    })
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = Sample::read() else { return Ok(()) };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges: [(&str, &str, f64); 5] = [
            ("process_resident_memory_bytes", "Resident memory size in bytes", s.resident_bytes as f64),
            ("process_virtual_memory_bytes", "Virtual memory size in bytes", s.virtual_bytes as f64),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                s.start_time_seconds,
            ),
            ("process_open_fds", "Number of open file descriptors", s.open_fds as f64),
            ("process_max_fds", "Maximum number of open file descriptors", s.max_fds as f64),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_even_with_spaces_in_the_name() {
        // pid (comm) state ppid ... utime(14)=250 stime(15)=50 ... starttime(22)=1000 vsize(23) rss(24)
        let stat = "42 (demo app) S 1 42 42 0 -1 0 0 0 0 0 250 50 0 0 20 0 3 0 1000 1048576 256 18446744073709551615";
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 4096                 files\n";
        let sample = parse(stat, 1_700_000_000.0, limits, 7, 100.0, 4096).unwrap();
        assert_eq!(sample.cpu_seconds, 3.0);
        assert_eq!(sample.virtual_bytes, 1_048_576);
        assert_eq!(sample.resident_bytes, 256 * 4096);
        assert_eq!(sample.start_time_seconds, 1_700_000_010.0);
        assert_eq!((sample.open_fds, sample.max_fds), (7, 1024));
    }

    #[test]
    fn reads_this_process() {
        let sample = Sample::read().expect("/proc is readable on Linux");
        assert!(sample.resident_bytes > 0 && sample.open_fds > 0 && sample.max_fds > 0);
    }
}
