//! podinfo's --stress-cpu and --stress-memory: load a pod on purpose, to try
//! autoscalers and memory limits with the workload itself.

/// Keeps `cores` threads busy and `mib` MiB of memory filled for the
/// process's life.
pub fn start(cores: u16, mib: u32) {
    for n in 0..cores {
        let spawned = std::thread::Builder::new().name(format!("stress-cpu-{n}")).spawn(|| {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
            }
        });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start a --stress-cpu thread");
        }
    }
    if mib > 0 {
        // Written, not just reserved: the pages count against the limit.
        let filled = vec![0x5au8; usize::try_from(mib).unwrap_or(usize::MAX).saturating_mul(1024 * 1024)];
        std::hint::black_box(filled.leak());
    }
    if cores > 0 || mib > 0 {
        tracing::warn!(
            cores,
            mib,
            "stress test on: {cores} busy cores, {mib} MiB held (--stress-cpu, --stress-memory)"
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_stress_is_resident() {
        let resident = || {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap().to_string();
            line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap()
        };
        let before = resident();
        super::start(0, 32);
        assert!(resident() >= before + 30 * 1024, "32 MiB were not made resident");
    }
}
