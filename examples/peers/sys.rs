//! What the harness reads from the machine: /proc (CPU time, memory, processes), the
//! machine's facts, and the physical floor of the disk (unlink and fsync rates).

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Clock ticks per second of /proc's CPU times.
pub fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

pub struct Stat {
    pub ppid: u32,
    /// utime + stime, in clock ticks.
    pub cpu: u64,
}

fn parse_stat(text: &str) -> Option<Stat> {
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    Some(Stat {
        ppid: fields.get(1)?.parse().ok()?,
        cpu: fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?,
    })
}

pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// This process's CPU time (user + system, all threads), in ticks: what
/// `getrusage(RUSAGE_SELF)` reports.
pub fn self_cpu() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| parse_stat(&t))
        .map_or(0, |s| s.cpu)
}

/// CPU ticks of this process's threads whose name starts with one of `prefixes`, by id.
pub fn thread_cpu(prefixes: &[&str]) -> HashMap<u32, u64> {
    let mut out = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in entries.flatten() {
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if !prefixes.iter().any(|p| comm.trim().starts_with(p)) {
            continue;
        }
        if let Some(s) = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|t| parse_stat(&t))
        {
            out.insert(tid, s.cpu);
        }
    }
    out
}

/// Ticks spent between two [`thread_cpu`] snapshots (threads born in between count whole).
pub fn thread_cpu_delta(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> u64 {
    after
        .iter()
        .map(|(tid, t)| t.saturating_sub(*before.get(tid).unwrap_or(&0)))
        .sum()
}

/// A `Vm*` line of /proc/<pid>/status, in kB.
pub fn vm_kb(pid: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Proportional set size in kB (shared pages divided among their users), or VmRSS.
pub fn pss_kb(pid: u32) -> Option<u64> {
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
        if let Some(v) = text
            .lines()
            .find(|l| l.starts_with("Pss:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
        {
            return Some(v);
        }
    }
    vm_kb(&pid.to_string(), "VmRSS")
}

/// Bytes this process has caused to be read from storage (`read_bytes` of
/// /proc/self/io): what the page cache did not hold.
#[allow(dead_code)] // list_bench reads it
pub fn storage_read_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/io").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("read_bytes: "))?
        .trim()
        .parse()
        .ok()
}

/// Resets this process's peak RSS (VmHWM) to its current RSS; false if the kernel refused.
pub fn reset_peak_rss() -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/clear_refs")
        .and_then(|mut f| f.write_all(b"5"))
        .is_ok()
}

pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

/// Every process whose parent is `ppid`.
pub fn children(ppid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            if let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() {
                if stat(pid).is_some_and(|s| s.ppid == ppid) {
                    out.push(pid);
                }
            }
        }
    }
    out
}

#[derive(Clone, Copy)]
pub enum Memory {
    /// VmRSS of each process (a single-process server).
    Rss,
    /// Pss of each process, so shared memory (PostgreSQL's shared buffers) counts once.
    Pss,
}

/// Samples a set of processes every 100 ms: CPU ticks each spent since the watch began
/// (a process born meanwhile counts whole) and the peak of their summed memory.
pub struct Watch {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(u64, u64)>,
}

pub struct Watched {
    pub cpu_ticks: u64,
    pub peak_kb: u64,
}

impl Watch {
    pub fn start(select: impl Fn() -> Vec<u32> + Send + 'static, memory: Memory) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("peers-watch".into())
            .spawn(move || {
                let mut base: HashMap<u32, u64> = HashMap::new();
                let mut last: HashMap<u32, u64> = HashMap::new();
                let mut peak = 0u64;
                let mut first = true;
                loop {
                    let done = flag.load(Ordering::Relaxed);
                    let mut total = 0u64;
                    for pid in select() {
                        if let Some(s) = stat(pid) {
                            base.entry(pid).or_insert(if first { s.cpu } else { 0 });
                            last.insert(pid, s.cpu);
                        }
                        total += match memory {
                            Memory::Rss => vm_kb(&pid.to_string(), "VmRSS").unwrap_or(0),
                            Memory::Pss => pss_kb(pid).unwrap_or(0),
                        };
                    }
                    peak = peak.max(total);
                    first = false;
                    if done {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                let cpu = last
                    .iter()
                    .map(|(pid, t)| t.saturating_sub(base[pid]))
                    .sum();
                (cpu, peak)
            })
            .expect("watch thread");
        Watch { stop, handle }
    }

    pub fn finish(self) -> Watched {
        self.stop.store(true, Ordering::Relaxed);
        let (cpu_ticks, peak_kb) = self.handle.join().unwrap_or((0, 0));
        Watched { cpu_ticks, peak_kb }
    }
}

pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub ram_gib: f64,
    pub kernel: String,
    pub disk: String,
    pub load: String,
}

pub fn machine(data_dir: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".into(), |(_, v)| v.trim().to_owned());
    let ram_gib = vm_meminfo("MemTotal").unwrap_or(0) as f64 / (1024.0 * 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let load = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ram_gib,
        kernel,
        disk: mount_of(data_dir),
        load,
    }
}

fn vm_meminfo(field: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// "device (fstype, options) at mountpoint" of the mount holding `path`.
fn mount_of(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        if path.starts_with(f[1]) && best.as_ref().is_none_or(|(len, _)| f[1].len() > *len) {
            let options: Vec<&str> = f[3].split(',').filter(|o| !o.starts_with("res")).collect();
            best = Some((
                f[1].len(),
                format!("{} ({}, {}) at {}", f[0], f[2], options.join(","), f[1]),
            ));
        }
    }
    best.map_or("unknown".into(), |(_, s)| s)
}

#[derive(Clone, Copy, Default, Debug)]
pub struct Floor {
    /// write(4 KiB) + fsync on one file, per second.
    pub fsync: f64,
    /// unlink of a small (synced) file, no fsync, per second.
    pub unlink: f64,
    /// unlink of a small file + fsync of its directory (one directory per file), per second.
    pub unlink_dirsync: f64,
}

/// Measures the floor in a fresh directory under `dir`.
pub fn floor(dir: &Path, files: usize, fsyncs: usize) -> Result<Floor> {
    let root = tempfile::tempdir_in(dir).context("floor: temp dir")?;
    let page = vec![0x5au8; 4096];

    let path = root.path().join("fsync.bin");
    let mut file = std::fs::File::create(&path)?;
    let began = Instant::now();
    for _ in 0..fsyncs {
        file.write_all(&page)?;
        file.sync_all()?;
    }
    let fsync = fsyncs as f64 / began.elapsed().as_secs_f64();
    drop(file);

    let flat = root.path().join("flat");
    std::fs::create_dir(&flat)?;
    let names: Vec<PathBuf> = (0..files).map(|i| flat.join(format!("f{i}"))).collect();
    for name in &names {
        std::fs::write(name, &page[..256])?;
    }
    sync_all_filesystems();
    let began = Instant::now();
    for name in &names {
        std::fs::remove_file(name)?;
    }
    let unlink = files as f64 / began.elapsed().as_secs_f64();

    let nested = root.path().join("nested");
    std::fs::create_dir(&nested)?;
    let n = fsyncs.max(1);
    let mut paths = Vec::with_capacity(n);
    for i in 0..n {
        let d = nested.join(format!("d{i}"));
        std::fs::create_dir(&d)?;
        let f = d.join("f");
        std::fs::write(&f, &page[..256])?;
        paths.push((d, f));
    }
    sync_all_filesystems();
    let began = Instant::now();
    for (d, f) in &paths {
        std::fs::remove_file(f)?;
        std::fs::File::open(d)?.sync_all()?;
    }
    let unlink_dirsync = n as f64 / began.elapsed().as_secs_f64();
    Ok(Floor {
        fsync,
        unlink,
        unlink_dirsync,
    })
}

/// `sync(1)`: writes every dirty page back, so what follows starts from a clean disk.
pub fn sync_all_filesystems() {
    let _ = std::process::Command::new("sync").status();
}
