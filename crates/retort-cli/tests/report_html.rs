//! `report.html` rendered by a real browser (headless Chromium): the charts are in the
//! rendered DOM, the page logs no console error, and it paints (a screenshot is taken).
//!
//! Needs `chromium` (Debian package; `.ci/run` installs it). Where it is missing the test
//! fails with the install command, unless `RETORT_SKIP_CHROMIUM=1` says to skip it locally.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::compare_tiny;

const CHARTS: [&str; 5] = [
    "chart-score-latency",
    "chart-size",
    "chart-loss-0",
    "chart-schedule-0",
    "chart-dev-score",
];

/// The Chromium binary: `$CHROMIUM`, else `chromium` or `chromium-browser` on PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| [d.join("chromium"), d.join("chromium-browser")])
        .find(|p| p.is_file())
}

/// Runs headless Chromium on `page` with `mode` (`--dump-dom` or `--screenshot=...`), in a
/// fresh profile, with console messages logged to stderr. Killed after 90 s.
fn run_chromium(bin: &Path, page: &Path, mode: &str) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1400,2000",
            "--enable-logging=stderr",
            "--v=0",
            &format!("--user-data-dir={}", profile.path().display()),
            mode,
            &format!("file://{}", page.canonicalize().unwrap().display()),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start chromium");
    let id = child.id();
    let deadline = Instant::now() + Duration::from_secs(90);
    let watchdog = std::thread::spawn(move || {
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            // Stop polling once the process is gone (kill -0 fails).
            let alive = Command::new("kill").args(["-0", &id.to_string()]).status();
            if !alive.is_ok_and(|s| s.success()) {
                return;
            }
        }
        let _ = Command::new("kill").args(["-9", &id.to_string()]).status();
    });
    let out = child.wait_with_output().unwrap();
    watchdog.join().unwrap();
    assert!(
        out.status.success(),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Console messages (errors, uncaught exceptions) Chromium logged for the page.
fn console_messages(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect()
}

#[test]
fn report_renders_in_chromium_with_charts_and_no_errors() {
    let Some(bin) = chromium() else {
        if std::env::var_os("RETORT_SKIP_CHROMIUM").is_some() {
            eprintln!("skipped: chromium not found and RETORT_SKIP_CHROMIUM is set");
            return;
        }
        panic!("chromium not found: install it (apt-get install -y chromium; .ci/run does) or set RETORT_SKIP_CHROMIUM=1 to skip this test locally");
    };
    let dir = tempfile::tempdir().unwrap();
    let (run, out) = compare_tiny(dir.path(), &["--latency-samples", "2"]);
    assert!(run.ok, "{}", run.stderr);
    let page = out.join("report.html");

    // The check below must be able to fail: a page with a script error is caught.
    let bad = dir.path().join("bad.html");
    std::fs::write(&bad, "<p>x</p><script>throw new Error('boom')</script>").unwrap();
    let caught = console_messages(&run_chromium(&bin, &bad, "--dump-dom"));
    assert!(
        caught.iter().any(|l| l.contains("boom")),
        "console errors not captured"
    );

    let rendered = run_chromium(&bin, &page, "--dump-dom");
    assert_eq!(console_messages(&rendered), Vec::<String>::new());
    let dom = String::from_utf8_lossy(&rendered.stdout);
    for id in CHARTS {
        let start = dom
            .find(&format!("<svg id=\"{id}\""))
            .unwrap_or_else(|| panic!("chart {id} is not in the rendered page"));
        let svg = &dom[start..start + dom[start..].find("</svg>").unwrap()];
        let marks = ["<circle", "<path", "<rect", "<polyline"]
            .iter()
            .map(|m| svg.matches(m).count())
            .sum::<usize>();
        assert!(marks > 0, "chart {id} draws nothing");
        assert!(svg.contains("<text"), "chart {id} has no labels");
    }
    assert!(dom.contains("<table>") && dom.contains("tiny-bert"));

    let png = dir.path().join("report.png");
    let shot = run_chromium(&bin, &page, &format!("--screenshot={}", png.display()));
    assert_eq!(console_messages(&shot), Vec::<String>::new());
    let bytes = std::fs::read(&png).expect("no screenshot written");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "blank screenshot?"
    );
}
