//! Atomic file writes: every file ncood writes goes through `write`. The bytes go to a temporary
//! file beside the target (same folder, so the rename is atomic), which is fsynced and renamed over
//! the target, then the folder is fsynced. A crash or kill leaves the old file or the new one, never
//! a torn one; a failed write removes its temporary file, and `remove_stale_temps` clears those a
//! killed process left (resume calls it).
//!
//! Fault injection for tests: with `NCOOD_FAULT=write:K` in the environment the process aborts
//! half-way through writing the temporary file of its K-th atomic write (1-based), as a kill at
//! that moment would; `NCOOD_FAULT=step:K` is read by the training loop. Crash tests use it to
//! kill at exact, named moments instead of racing a timer.
use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Temporary files are named `.NAME.PID.tmp`.
const TEMP_SUFFIX: &str = ".tmp";

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}{TEMP_SUFFIX}", std::process::id()))
}

/// The fault point `kind` (write or step) set in `NCOOD_FAULT`, if any.
pub fn fault_point(kind: &str) -> Option<usize> {
    let v = std::env::var("NCOOD_FAULT").ok()?;
    let (k, n) = v.split_once(':')?;
    (k == kind).then(|| n.parse().ok()).flatten()
}

static WRITES: AtomicUsize = AtomicUsize::new(0);

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let result = write_temp(&tmp, path, bytes).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all(); // best effort: some file systems refuse fsync on folders
        }
        Ok(())
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_temp(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |e| Error::io(path, e);
    let mut f = std::fs::File::create(tmp).map_err(io)?;
    let n = WRITES.fetch_add(1, Ordering::SeqCst) + 1;
    if fault_point("write") == Some(n) {
        let _ = f.write_all(&bytes[..bytes.len() / 2]);
        let _ = f.sync_all();
        std::process::abort();
    }
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Removes temporary files that killed writers left in `dir` (not recursive). Call only while
/// holding the lock of whatever owns `dir`: another live writer's temporary file looks the same.
pub fn remove_stale_temps(dir: &Path) -> Result<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for e in entries {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(TEMP_SUFFIX) {
            std::fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Serialises `value` as pretty JSON (with a final newline) and writes it atomically.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("plain data serialises");
    write(path, (text + "\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_and_stale_temps_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write(&p, b"one").unwrap();
        write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        std::fs::write(dir.path().join(".a.json.999.tmp"), b"torn").unwrap();
        std::fs::write(dir.path().join("keep.tmp"), b"not ours").unwrap();
        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 1);
        assert!(dir.path().join("keep.tmp").exists());
        // A write into a missing folder fails, naming the target, and leaves nothing behind.
        let e = write(&dir.path().join("no/such.json"), b"x").unwrap_err();
        assert!(e.to_string().contains("no/such.json"), "{e}");
    }
}
