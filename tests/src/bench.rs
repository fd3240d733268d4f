//! What the bench binaries (`src/bin/bench_*.rs`) share: settings from the environment, a
//! reproducible generator, CPU time and load from `/proc`, `perf record` of processes, and
//! the words their generated pages are made of.

use std::{
    process::{Child, Stdio},
    time::Duration,
};

use anyhow::Context;

/// The number in the environment variable `name`, or `default` when it is unset or empty.
pub fn env_num<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| anyhow::anyhow!("{name}={v}: not a number")),
        _ => Ok(default),
    }
}

/// SplitMix64: reproducible, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo).max(1) as u64) as i64
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }

    /// `x` times a factor uniform in [1 - spread, 1 + spread).
    pub fn jitter(&mut self, x: f64, spread: f64) -> f64 {
        x * (1.0 - spread + 2.0 * spread * self.unit())
    }

    /// An index in `0..n`, rank `r` drawn with weight `1 / (r + 1)^s` (by rejection from a
    /// uniform rank: cheap enough for some thousands of draws).
    pub fn zipf(&mut self, n: usize, s: f64) -> usize {
        loop {
            let r = self.below(n as u64) as usize;
            if self.unit() < 1.0 / ((r + 1) as f64).powf(s) {
                return r;
            }
        }
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// Clock ticks per second (`getconf CLK_TCK`), the unit of `/proc/<pid>/stat`'s times.
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime of `pid` ("self" or a number), in seconds.
pub fn cpu_secs(pid: &str, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the line; the state (field 3) is the first after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// The load averages of the last 1, 5 and 15 minutes.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split(' ').take(3).collect::<Vec<_>>().join(" ")
}

/// `perf record` of running processes, into a file.
pub struct Perf(Child);

impl Perf {
    /// Starts recording `pids` into `out`: with call graphs from DWARF (release builds keep no
    /// frame pointers), or flat (`perf report --sort comm,dso,sym` then splits the samples by
    /// process and function).
    pub fn start(pids: &[u32], out: &str, call_graph: bool) -> anyhow::Result<Self> {
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        let mut cmd = std::process::Command::new("perf");
        cmd.args(["record", "-o", out]);
        if call_graph {
            cmd.args(["-F", "499", "--call-graph", "dwarf,16384"]);
        } else {
            cmd.args(["-F", "999"]);
        }
        let child = cmd
            .arg("-p")
            .arg(pids.join(","))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting perf (`make deps-bench` installs it)")?;
        // Let it attach before what it measures starts.
        std::thread::sleep(Duration::from_millis(500));
        Ok(Self(child))
    }

    pub fn stop(mut self) -> anyhow::Result<()> {
        std::process::Command::new("kill").args(["-INT", &self.0.id().to_string()]).status()?;
        self.0.wait()?;
        Ok(())
    }

    /// The functions with the most samples (1 % or more) of a flat recording, by process and
    /// library, at most `lines`.
    pub fn report(out: &str, lines: usize) -> String {
        let report = std::process::Command::new("perf")
            .args(["report", "-i", out, "--stdio", "--no-children", "--sort", "comm,dso,sym", "--percent-limit", "1"])
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        report.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).take(lines).collect::<Vec<_>>().join("\n")
    }
}

/// Words of generated page paths: blog topics, product categories, campaigns.
pub const TOPICS: &[&str] = &[
    "conversion-rate",
    "landing-pages",
    "ab-testing",
    "copywriting",
    "seo-basics",
    "email-capture",
    "pricing-psychology",
    "onboarding",
    "cohort-analysis",
    "page-speed",
    "social-proof",
    "checkout-flow",
];
pub const CATEGORIES: &[&str] = &["shoes", "bags", "jackets", "watches", "hats", "gloves", "scarves", "belts"];
pub const CAMPAIGNS: &[&str] = &["spring-sale", "black-friday", "webinar", "ebook", "free-trial", "partner", "podcast"];
