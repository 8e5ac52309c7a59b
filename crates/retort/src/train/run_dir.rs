//! The files of a run directory that must survive a crash: the metrics log and the
//! checkpoint directories (`best/`, `last/`).
//!
//! - **The log** (`metrics.jsonl`) gets each record as one whole line in one `write_all`, so
//!   a killed process leaves at most a torn last line. A resumed run first cuts the log back
//!   to its checkpoint's step (and drops a torn line): the steps after the checkpoint are
//!   trained, and logged, again, so the log of a resumed run equals an uninterrupted one's.
//! - **A checkpoint** is written into `NAME.partial`, marked complete by an empty
//!   [`COMPLETE_MARKER`] file written after every other file, and swapped in by two renames
//!   (`NAME` → `NAME.old`, then `NAME.partial` → `NAME`). At every instant a complete copy
//!   exists under one of the three names; [`recover_dir`] puts it back under `NAME` after a
//!   crash. Nothing here deletes a complete copy while `NAME` is not complete itself.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Written last into a checkpoint directory: every other file there is whole.
pub const COMPLETE_MARKER: &str = ".complete";
/// The resume state of `last/`, written after the weights (also by runs before the marker).
const STATE_FILE: &str = "state.json";
/// Files without which a directory is no checkpoint at all.
const WEIGHTS_FILE: &str = "model.safetensors";
/// The checkpoint directories of a run.
const CHECKPOINTS: [&str; 2] = ["last", "best"];

/// Opens the metrics log at `path` for appending.
///
/// `resume_step`: `None` for a new run, which starts an empty log (one left by a run that
/// saved no checkpoint is replaced); `Some(step)` for a run resumed at `step`, which keeps
/// the records up to that step and drops later ones and any torn or unreadable line.
pub fn open_log(path: &Path, resume_step: Option<usize>) -> Result<File> {
    let kept = match resume_step {
        None => String::new(),
        Some(step) => match std::fs::read(path) {
            Ok(bytes) => records_up_to(&String::from_utf8_lossy(&bytes), step),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(path, e, "metrics log")),
        },
    };
    // Written beside and renamed over the log: a crash now leaves the old log or the cut one.
    let tmp = path.with_extension("jsonl.partial");
    std::fs::write(&tmp, kept).map_err(|e| Error::create(&tmp, e, "metrics log"))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::create(path, e, "metrics log"))?;
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| Error::create(path, e, "metrics log"))
}

/// The lines of a log that a run resumed at `step` keeps: whole lines (ending in a newline)
/// holding a JSON record whose `step` is at most `step`.
fn records_up_to(text: &str, step: usize) -> String {
    text.split_inclusive('\n')
        .filter(|line| line.ends_with('\n'))
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|record| record.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| s <= step as u64)
        })
        .collect()
}

/// Appends `record` to the log as one line, written in one piece: a process killed meanwhile
/// leaves the line whole or torn at the end, never interleaved with another.
pub fn append_record(log: &mut File, record: serde_json::Value) -> Result<()> {
    let line = format!("{record}\n");
    log.write_all(line.as_bytes())
        .map_err(|e| Error::create("metrics.jsonl", e, "metrics log"))
}

/// Writes a checkpoint into `dir` through `write`, replacing `dir` whole; at no instant is
/// there no complete copy (see the module docs).
pub fn replace_dir(dir: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let (tmp, old) = (partial_of(dir), old_of(dir));
    recover_dir(dir)?;
    // Any copy left in `tmp` is older than `dir` (or incomplete): `dir` is the one to keep.
    remove_if_present(&tmp)?;
    std::fs::create_dir_all(&tmp).map_err(|e| Error::create(&tmp, e, "checkpoint directory"))?;
    write(&tmp)?;
    let marker = tmp.join(COMPLETE_MARKER);
    std::fs::write(&marker, b"").map_err(|e| Error::create(&marker, e, "checkpoint marker"))?;
    if dir.exists() {
        remove_if_present(&old)?;
        std::fs::rename(dir, &old).map_err(|e| Error::create(&old, e, "checkpoint directory"))?;
    }
    // Between the two renames, `tmp` and `old` are both complete: [`recover_dir`] takes `tmp`.
    std::fs::rename(&tmp, dir).map_err(|e| Error::create(dir, e, "checkpoint directory"))?;
    remove_if_present(&old)
}

/// Makes `dir` hold its newest complete copy again after a crash during [`replace_dir`]:
/// when `dir` is missing, a complete `dir.partial` (the newer) or else a complete `dir.old`
/// is renamed to `dir`. Returns the directory it came from, if any.
pub fn recover_dir(dir: &Path) -> Result<Option<PathBuf>> {
    if dir.exists() {
        return Ok(None);
    }
    for candidate in [partial_of(dir), old_of(dir)] {
        if is_complete(&candidate) {
            std::fs::rename(&candidate, dir)
                .map_err(|e| Error::create(dir, e, "checkpoint directory"))?;
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// Before a resumed run: puts the run's checkpoints back in place after an interrupted save
/// and says, for each recovered one, where it came from (for the user to read).
pub fn find_checkpoint(out: &Path) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    for name in CHECKPOINTS {
        let dir = out.join(name);
        if let Some(from) = recover_dir(&dir)? {
            notes.push(format!(
                "{} was missing (a save was interrupted): using the complete copy in {}",
                dir.display(),
                from.display()
            ));
        }
    }
    Ok(notes)
}

/// Refuses to start a new run in `out` when it holds a checkpoint (`best/`, `last/`, or a
/// complete copy left by an interrupted save), unless the run resumes it: a new run would
/// replace them. Commands call it before their slow set-up, so a refused run costs nothing.
pub fn check_output_dir(out: &Path, resume: bool) -> Result<()> {
    if resume {
        return Ok(());
    }
    let Some(found) = existing_checkpoint(out) else {
        return Ok(());
    };
    // Only a copy of `last/` can be resumed; a `best/` alone (a run killed between its first
    // two saves) can only be kept or moved away by the user.
    let resumable = found
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("last"));
    let what_to_do = match resumable {
        true => "pass --resume to continue it, or choose another output.dir",
        false => "it has no resumable state (last/): move it away, or choose another output.dir",
    };
    Err(Error::Invalid(format!(
        "{} already holds a run ({}): {what_to_do} (nothing was deleted)",
        out.display(),
        found.display()
    )))
}

/// The first checkpoint of a run in `out`: `best/` or `last/`, or a complete copy of one.
fn existing_checkpoint(out: &Path) -> Option<PathBuf> {
    CHECKPOINTS.iter().find_map(|name| {
        let dir = out.join(name);
        [partial_of(&dir), old_of(&dir)]
            .into_iter()
            .filter(|d| is_complete(d))
            .chain(dir.exists().then(|| dir.clone()))
            .next()
    })
}

/// Whether `dir` is a whole checkpoint: it has the marker, or (a `last/` copy written
/// before markers existed, when `state.json` was the last file written) a readable
/// `state.json` beside its weights.
pub fn is_complete(dir: &Path) -> bool {
    if dir.join(COMPLETE_MARKER).is_file() {
        return true;
    }
    let state = std::fs::read_to_string(dir.join(STATE_FILE));
    dir.join(WEIGHTS_FILE).is_file()
        && state.is_ok_and(|s| serde_json::from_str::<serde_json::Value>(&s).is_ok())
}

fn partial_of(dir: &Path) -> PathBuf {
    dir.with_extension("partial")
}

fn old_of(dir: &Path) -> PathBuf {
    dir.with_extension("old")
}

fn remove_if_present(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::create(
            dir,
            e,
            "stale checkpoint directory (removing it)",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A complete checkpoint directory holding `tag` (as `replace_dir` writes one).
    fn checkpoint(dir: &Path, tag: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("tag"), tag).unwrap();
        std::fs::write(dir.join(COMPLETE_MARKER), "").unwrap();
    }

    /// A `replace_dir` writer that saves `tag`.
    fn writes(tag: &str) -> impl FnOnce(&Path) -> Result<()> + '_ {
        move |dir| std::fs::write(dir.join("tag"), tag).map_err(|e| Error::create(dir, e, "tag"))
    }

    fn tag(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("tag")).unwrap()
    }

    #[test]
    fn a_resumed_log_keeps_whole_records_up_to_the_step() {
        let log = concat!(
            "{\"event\":\"train\",\"step\":2}\n",
            "{\"event\":\"eval\",\"step\":4}\n",
            "{\"event\":\"train\",\"step\":6}\n",
            "{\"event\":\"tra", // torn by a kill
        );
        assert_eq!(
            records_up_to(log, 4),
            "{\"event\":\"train\",\"step\":2}\n{\"event\":\"eval\",\"step\":4}\n"
        );
        assert_eq!(records_up_to(log, 6).lines().count(), 3);
        // A torn line that later appends completed is not a record either.
        let glued = "{\"step\":1}\n{\"event\":\"tr{\"step\":2}\n";
        assert_eq!(records_up_to(glued, 9), "{\"step\":1}\n");
    }

    #[test]
    fn open_log_cuts_on_resume_and_starts_afresh_otherwise() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("metrics.jsonl");
        std::fs::write(&path, "{\"step\":1}\n{\"step\":3}\n{\"st").unwrap();
        let mut log = open_log(&path, Some(2)).unwrap();
        append_record(&mut log, serde_json::json!({"step": 3})).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"step\":1}\n{\"step\":3}\n"
        );
        drop(log);
        open_log(&path, None).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }

    #[test]
    fn replace_dir_swaps_whole_and_a_failed_write_keeps_the_old_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("last");
        replace_dir(&dir, writes("1")).unwrap();
        replace_dir(&dir, writes("2")).unwrap();
        assert_eq!(tag(&dir), "2");
        assert!(is_complete(&dir));
        assert!(!partial_of(&dir).exists() && !old_of(&dir).exists());
        let failed = replace_dir(&dir, |_| Err(Error::Invalid("disk full".into())));
        assert!(failed.is_err());
        assert_eq!(tag(&dir), "2");
        // The incomplete copy it left is no checkpoint, and the next save clears it.
        assert!(!is_complete(&partial_of(&dir)));
        replace_dir(&dir, writes("3")).unwrap();
        assert_eq!(tag(&dir), "3");
        assert!(!partial_of(&dir).exists());
    }

    #[test]
    fn a_kill_between_the_renames_is_recovered_from_the_newer_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("last");
        // Killed after `last` → `last.old`, before `last.partial` → `last`.
        checkpoint(&old_of(&dir), "older");
        checkpoint(&partial_of(&dir), "newer");
        assert_eq!(recover_dir(&dir).unwrap(), Some(partial_of(&dir)));
        assert_eq!(tag(&dir), "newer");
        // Only the old copy complete (the new one was still being written).
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir_all(partial_of(&dir)).unwrap();
        assert_eq!(recover_dir(&dir).unwrap(), Some(old_of(&dir)));
        assert_eq!(tag(&dir), "older");
        // The next save starts from the recovered copy and never loses it.
        std::fs::remove_dir_all(&dir).unwrap();
        checkpoint(&old_of(&dir), "older");
        replace_dir(&dir, |d| {
            Err(Error::Invalid(format!("{} fails", d.display())))
        })
        .unwrap_err();
        assert_eq!(tag(&dir), "older");
    }

    #[test]
    fn find_checkpoint_says_what_it_recovered() {
        let tmp = tempfile::tempdir().unwrap();
        checkpoint(&tmp.path().join("last.old"), "x");
        let notes = find_checkpoint(tmp.path()).unwrap();
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("last.old"), "{notes:?}");
        assert_eq!(tag(&tmp.path().join("last")), "x");
        assert!(find_checkpoint(tmp.path()).unwrap().is_empty());
    }

    #[test]
    fn a_new_run_is_refused_where_any_complete_copy_is_left() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        check_output_dir(out, false).unwrap();
        // An incomplete leftover is no run.
        std::fs::create_dir_all(out.join("last.partial")).unwrap();
        check_output_dir(out, false).unwrap();
        for name in ["last.old", "best.partial", "best", "last"] {
            let tmp = tempfile::tempdir().unwrap();
            checkpoint(&tmp.path().join(name), "x");
            let err = check_output_dir(tmp.path(), false).unwrap_err().to_string();
            let advice = match name.starts_with("last") {
                true => "--resume",
                false => "no resumable state",
            };
            assert!(err.contains(name) && err.contains(advice), "{err}");
            check_output_dir(tmp.path(), true).unwrap();
        }
        // A `last/` written before markers existed counts by its state.json.
        let legacy = out.join("legacy");
        std::fs::create_dir_all(&legacy).unwrap();
        std::fs::write(legacy.join(WEIGHTS_FILE), "w").unwrap();
        std::fs::write(legacy.join(STATE_FILE), "{\"step\": 3}").unwrap();
        assert!(is_complete(&legacy));
        std::fs::write(legacy.join(STATE_FILE), "{\"st").unwrap();
        assert!(!is_complete(&legacy));
    }
}
