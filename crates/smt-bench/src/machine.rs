//! What machine and code a run measured.

use std::path::Path;
use std::process::Command;

use crate::record::MachineInfo;

/// Whether the process runs with effective uid 0.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

fn output(program: &str, args: &[&str], dir: Option<&Path>) -> Option<String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let out = cmd.output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The field `name` of `lscpu` output.
pub fn lscpu_field(lscpu: &str, name: &str) -> Option<String> {
    lscpu.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim().to_owned())
    })
}

pub fn now_utc() -> String {
    output("date", &["-u", "+%Y-%m-%d %H:%M UTC"], None).unwrap_or_else(|| "unknown".into())
}

pub fn collect(workspace: &Path) -> MachineInfo {
    let lscpu = output("lscpu", &[], None).unwrap_or_default();
    let model = lscpu_field(&lscpu, "Model name").unwrap_or_else(|| "unknown".into());
    let family = lscpu_field(&lscpu, "CPU family");
    let cpu_model = match (family, lscpu_field(&lscpu, "Model")) {
        (Some(f), Some(m)) => format!("{model} (family {f}, model {m})"),
        _ => model,
    };
    let hypervisor = lscpu_field(&lscpu, "Hypervisor vendor");
    let dirty: Vec<String> = output("git", &["status", "--porcelain"], Some(workspace))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.get(3..).map(str::to_owned))
        .collect();
    MachineInfo {
        cpu_model,
        // lscpu, not available_parallelism: the harness pins itself to one CPU.
        cores: lscpu_field(&lscpu, "CPU(s)").and_then(|n| n.parse().ok()).unwrap_or(0),
        kernel: output("uname", &["-r"], None).unwrap_or_default(),
        date_utc: now_utc(),
        commit: output("git", &["rev-parse", "HEAD"], Some(workspace)).unwrap_or_default(),
        worktree_dirty: !dirty.is_empty(),
        dirty_paths: dirty,
        rustc: output("rustc", &["-V"], None).unwrap_or_default(),
        command: String::new(),
        mode: String::new(),
        duration_s: 0.0,
        links: String::new(),
        note: hypervisor.map(|h| format!("{h} guest")).unwrap_or_else(|| "virtual machine".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lscpu() {
        let text = "Architecture:   x86_64\nModel name:    AMD EPYC\nCPU family:  26\n";
        assert_eq!(lscpu_field(text, "Model name").as_deref(), Some("AMD EPYC"));
        assert_eq!(lscpu_field(text, "CPU family").as_deref(), Some("26"));
        assert_eq!(lscpu_field(text, "Model"), None);
    }
}
