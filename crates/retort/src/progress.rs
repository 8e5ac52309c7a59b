//! How far a long phase has got (training steps, the teacher's logits, translations).
//!
//! On a terminal it is an indicatif bar. When stderr goes to a file (a run started with
//! `nohup ... 2> run.log`), a bar would draw nothing, and indicatif drops the notes printed
//! above a hidden bar too (the dev scores of a training run): there it writes a plain line
//! instead, every [`LINE_EVERY`], and each note as a line of its own, so a log shows how far
//! a run got.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain progress line is written when there is no bar.
pub const LINE_EVERY: Duration = Duration::from_secs(30);

/// Progress over `total` items of one phase.
pub struct Progress {
    bar: ProgressBar,
    /// Set when there is no bar: what the plain lines need.
    lines: Option<Mutex<Lines>>,
}

/// The state behind the plain lines.
struct Lines {
    /// What the items are ("steps", "teacher logits").
    unit: String,
    total: u64,
    position: u64,
    message: String,
    started: Instant,
    /// When the last line was written (or the phase started).
    last: Instant,
    /// Where the phase started (a resumed run), for the rate.
    first_position: u64,
}

impl Progress {
    /// Progress over `total` items when `show` is true, nothing at all otherwise (a quiet
    /// caller, or a phase inside another that shows its own): a bar drawn with `template`
    /// (indicatif syntax) when stderr is a terminal, plain lines that count `unit` when not.
    pub fn new(total: usize, show: bool, template: &str, unit: &str) -> Self {
        match (show, std::io::stderr().is_terminal()) {
            (false, _) => Self {
                bar: ProgressBar::hidden(),
                lines: None,
            },
            (true, true) => Self::bar(total, template),
            (true, false) => Self::lines(total, unit),
        }
    }

    fn bar(total: usize, template: &str) -> Self {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
        Self { bar, lines: None }
    }

    fn lines(total: usize, unit: &str) -> Self {
        let now = Instant::now();
        let lines = Lines {
            unit: unit.to_string(),
            total: total as u64,
            position: 0,
            message: String::new(),
            started: now,
            last: now,
            first_position: 0,
        };
        Self {
            bar: ProgressBar::hidden(),
            lines: Some(Mutex::new(lines)),
        }
    }

    /// `n` more items done.
    pub fn inc(&self, n: usize) {
        self.bar.inc(n as u64);
        self.with_lines(|l| l.position += n as u64);
    }

    /// `position` items done.
    pub fn set_position(&self, position: usize) {
        self.bar.set_position(position as u64);
        self.with_lines(|l| l.position = position as u64);
    }

    /// Where the phase starts (a resumed run): the rate counts from here.
    pub fn resume_at(&self, position: usize) {
        self.bar.set_position(position as u64);
        if let Some(lines) = &self.lines {
            let mut l = lines.lock().unwrap_or_else(|e| e.into_inner());
            l.position = position as u64;
            l.first_position = position as u64;
        }
    }

    /// A short status shown beside the count (loss, speed).
    pub fn set_message(&self, message: String) {
        if let Some(lines) = &self.lines {
            lines.lock().unwrap_or_else(|e| e.into_inner()).message = message;
        } else {
            self.bar.set_message(message);
        }
    }

    /// A note that stays in the output (above the bar, or as a line of its own).
    pub fn println(&self, note: impl AsRef<str>) {
        match &self.lines {
            Some(_) => eprintln!("{}", note.as_ref()),
            None => self.bar.println(note),
        }
    }

    /// The phase is over: the bar goes away (a summary line follows from the caller).
    pub fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
    }

    /// The phase stopped early (an error, an interruption): the bar stays as it was.
    pub fn abandon(&self) {
        self.bar.abandon();
    }

    /// Updates the plain-line state with `f`, then writes a line if one is due.
    fn with_lines(&self, f: impl FnOnce(&mut Lines)) {
        let Some(lines) = &self.lines else {
            return;
        };
        let mut l = lines.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut l);
        if l.last.elapsed() >= LINE_EVERY {
            l.last = Instant::now();
            eprintln!("{}", l.line());
        }
    }
}

impl Lines {
    /// "steps 1200/4210 (28%) · loss 0.31 · 5m 12s elapsed · ETA 13m 20s".
    fn line(&self) -> String {
        let elapsed = self.started.elapsed();
        let percent = 100 * self.position / self.total.max(1);
        let mut line = format!(
            "{} {}/{} ({percent}%)",
            self.unit, self.position, self.total
        );
        if !self.message.is_empty() {
            line += &format!(" · {}", self.message);
        }
        line += &format!(" · {} elapsed", duration(elapsed));
        if let Some(eta) = self.eta(elapsed) {
            line += &format!(" · ETA {}", duration(eta));
        }
        line
    }

    /// The time left at the rate since the phase started, once anything is done.
    fn eta(&self, elapsed: Duration) -> Option<Duration> {
        let done = self.position.checked_sub(self.first_position)?;
        if done == 0 || self.position > self.total {
            return None;
        }
        let left = (self.total - self.position) as f64;
        Some(elapsed.mul_f64(left / done as f64))
    }
}

/// `1h 02m 03s`, `4m 05s`, `6s`.
fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s:02}s"),
        (h, m, s) => format!("{h}h {m:02}m {s:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_at(position: u64, first: u64, total: u64, elapsed: Duration) -> Lines {
        let now = Instant::now();
        Lines {
            unit: "steps".into(),
            total,
            position,
            message: "loss 0.5000".into(),
            started: now - elapsed,
            last: now,
            first_position: first,
        }
    }

    #[test]
    fn a_line_gives_count_percentage_message_and_time_left() {
        let line = lines_at(250, 0, 1000, Duration::from_secs(60)).line();
        assert!(
            line.starts_with("steps 250/1000 (25%) · loss 0.5000 · 1m 00s elapsed · ETA 3m 0"),
            "{line}"
        );
    }

    #[test]
    fn a_resumed_phase_counts_its_rate_from_where_it_resumed() {
        // 100 steps in 10 s since the resume at 800: 100 left take 10 s more.
        let l = lines_at(900, 800, 1000, Duration::from_secs(10));
        let eta = l.eta(Duration::from_secs(10)).unwrap();
        assert!((eta.as_secs_f64() - 10.0).abs() < 0.01, "{eta:?}");
        assert_eq!(
            lines_at(800, 800, 1000, Duration::from_secs(1)).eta(Duration::ZERO),
            None
        );
    }

    #[test]
    fn durations_read_as_hours_minutes_seconds() {
        assert_eq!(duration(Duration::from_secs(6)), "6s");
        assert_eq!(duration(Duration::from_secs(245)), "4m 05s");
        assert_eq!(duration(Duration::from_secs(3723)), "1h 02m 03s");
    }

    #[test]
    fn without_a_bar_the_count_is_kept_for_the_lines() {
        let p = Progress::lines(10, "items");
        p.resume_at(2);
        p.inc(3);
        p.set_message("fast".into());
        let l = p.lines.as_ref().unwrap().lock().unwrap();
        assert_eq!(
            (l.position, l.first_position, l.message.as_str()),
            (5, 2, "fast")
        );
        drop(l);
        p.set_position(7);
        assert_eq!(p.lines.as_ref().unwrap().lock().unwrap().position, 7);
    }

    #[test]
    fn a_quiet_phase_keeps_no_lines() {
        assert!(Progress::new(10, false, "{pos}", "items").lines.is_none());
    }
}
