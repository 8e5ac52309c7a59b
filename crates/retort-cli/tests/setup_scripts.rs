//! The README's test command does its own set-up: `scripts/test.sh` runs `scripts/setup.sh`
//! (test model, Chromium) before `cargo test`, and `.ci/run` runs exactly `scripts/test.sh`
//! after fmt and clippy. The scripts run here in a copy of the repository's layout, with
//! stand-ins for `apt-get`, `sudo`, `cargo`, `python3` and `scripts/fetch-models.sh` that
//! only record their calls, and a PATH without any browser.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An executable shell script at `path`.
fn script(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/usr/bin/env bash\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A scratch repository: the real scripts under test, stand-ins for everything else, and
/// a `bin/` (first on PATH) of recording stand-ins plus the few real tools the scripts use.
struct Sandbox {
    root: tempfile::TempDir,
}

impl Sandbox {
    fn new(real: &[&str]) -> Self {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for file in real {
            let to = r.join(file);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(repo().join(file), &to).unwrap();
        }
        let log = r.join("calls.log");
        let record = |name: &str| format!("echo \"{name} $*\" >> {}", log.display());
        script(&r.join("scripts/fetch-models.sh"), &record("fetch-models"));
        if !real.contains(&"scripts/setup.sh") {
            script(&r.join("scripts/setup.sh"), &record("setup"));
        }
        if !real.contains(&"scripts/test.sh") {
            script(&r.join("scripts/test.sh"), &record("test.sh"));
        }
        let bin = r.join("bin");
        script(&bin.join("cargo"), &record("cargo"));
        script(&bin.join("python3"), "true");
        script(&bin.join("sudo"), "\"$@\"");
        // Installing Chromium puts a `chromium` on PATH, as apt-get would.
        script(
            &bin.join("apt-get"),
            &format!(
                "{}\nif [ \"$1\" = install ]; then printf '#!/bin/sh\\n' > {bin}/chromium; chmod +x {bin}/chromium; fi",
                record("apt-get"),
                bin = bin.display()
            ),
        );
        for tool in ["bash", "dirname", "id", "chmod"] {
            let found = Command::new("bash")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .unwrap();
            let path = String::from_utf8(found.stdout).unwrap();
            std::os::unix::fs::symlink(path.trim(), bin.join(tool)).unwrap();
        }
        Self { root }
    }

    /// Runs `script` with PATH = the sandbox's `bin/` only; returns whether it succeeded.
    fn run(&self, script: &str, env: &[(&str, &str)]) -> bool {
        let out = Command::new(self.root.path().join(script))
            .env_clear()
            .env("PATH", self.root.path().join("bin"))
            .envs(env.iter().copied())
            .output()
            .unwrap();
        if !out.status.success() {
            eprintln!("{script}: {}", String::from_utf8_lossy(&out.stderr));
        }
        out.status.success()
    }

    /// The recorded calls, one per line, and forgets them.
    fn calls(&self) -> Vec<String> {
        let log = self.root.path().join("calls.log");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        text.lines().map(str::to_string).collect()
    }
}

#[test]
fn setup_fetches_the_model_and_installs_chromium_once() {
    let sandbox = Sandbox::new(&["scripts/setup.sh"]);
    assert!(sandbox.run("scripts/setup.sh", &[]));
    let calls = sandbox.calls();
    assert_eq!(calls[0], "fetch-models ");
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("apt-get install") && c.contains("chromium")),
        "{calls:?}"
    );
    // Idempotent: with Chromium present, nothing is installed again.
    assert!(sandbox.run("scripts/setup.sh", &[]));
    assert_eq!(sandbox.calls(), ["fetch-models "]);
}

#[test]
fn setup_can_skip_chromium() {
    let sandbox = Sandbox::new(&["scripts/setup.sh"]);
    assert!(sandbox.run("scripts/setup.sh", &[("RETORT_SKIP_CHROMIUM", "1")]));
    assert_eq!(sandbox.calls(), ["fetch-models "]);
}

#[test]
fn the_readme_test_command_sets_up_before_it_tests() {
    let sandbox = Sandbox::new(&["scripts/test.sh", "scripts/setup.sh"]);
    assert!(sandbox.run("scripts/test.sh", &[]));
    let calls = sandbox.calls();
    let at = |prefix: &str| {
        calls
            .iter()
            .position(|c| c.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {calls:?}"))
    };
    assert!(at("fetch-models") < at("cargo test"), "{calls:?}");
    assert!(at("apt-get install") < at("cargo test"), "{calls:?}");
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(readme.contains("scripts/test.sh    # all tests"));
}

#[test]
fn ci_runs_fmt_clippy_then_exactly_the_readme_test_command() {
    let sandbox = Sandbox::new(&[".ci/run"]);
    assert!(sandbox.run(".ci/run", &[]));
    let calls = sandbox.calls();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(calls[0].starts_with("cargo fmt"), "{calls:?}");
    assert!(calls[1].starts_with("cargo clippy"), "{calls:?}");
    assert_eq!(calls[2], "test.sh ");
    // The set-up is test.sh's: CI installs nothing of its own.
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(
        !ci.contains("apt-get") && !ci.contains("fetch-models"),
        "{ci}"
    );
}
