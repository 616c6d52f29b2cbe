//! Atomic file writes: every file ncood writes goes through `write`. The bytes go to a temporary
//! file beside the target (same folder, so the rename is atomic), which is fsynced and renamed over
//! the target, then the folder is fsynced. A crash or kill leaves the old file or the new one, never
//! a torn one; a failed write removes its temporary file, and `remove_stale_temps` clears those a
//! killed process left (whoever takes the folder's `lock` calls it).
//!
//! Locks (`lock`): one writer per run directory, study and report. An advisory lock on a file,
//! which the OS releases when its process dies, so a killed holder never leaves it taken; the file
//! names its holder for the message of whoever is refused.
//!
//! Fault injection for tests: with `NCOOD_FAULT=write:K` in the environment the process aborts
//! half-way through writing the temporary file of its K-th atomic write (1-based), as a kill at
//! that moment would; `NCOOD_FAULT=step:K` is read by the training loop. Crash tests use it to
//! kill at exact, named moments instead of racing a timer.
use crate::error::{Error, Result};
use std::fs::File;
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

/// An exclusive lock on a file, held until dropped (or until the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// This machine's name, as the kernel gives it (empty where it does not).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Takes the lock of `path` (created if missing) without waiting and writes this process's id and
/// host into it. `Ok(Err(holder))` while another process holds it, with what the holder wrote.
pub fn lock(path: &Path) -> Result<std::result::Result<Lock, String>> {
    let io = |e| Error::io(path, e);
    // Not truncated on opening: while another process holds the lock, the file says who it is.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(Err(holder_text(path))),
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    let holder = format!("pid {} on {}\n", std::process::id(), hostname());
    file.write_all(holder.as_bytes()).map_err(io)?;
    Ok(Ok(Lock { _file: file }))
}

/// Who holds the lock of `path`, found without creating or writing anything: None when the file
/// is absent or nobody holds it.
pub fn holder(path: &Path) -> Result<Option<String>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(None),
        Err(std::fs::TryLockError::WouldBlock) => Ok(Some(holder_text(path))),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
    }
}

/// What a held lock file says of its holder.
fn holder_text(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
        _ => "a process that has not said who it is".into(),
    }
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

    #[test]
    fn a_held_lock_names_its_holder_and_is_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        assert_eq!(holder(&p).unwrap(), None, "no file, no holder");
        assert!(!p.exists(), "looking creates nothing");
        let held = lock(&p).unwrap().unwrap();
        let me = format!("pid {} on {}", std::process::id(), hostname());
        // flock locks belong to the open file: a second open of it in this process is refused
        // as another process would be.
        assert_eq!(lock(&p).unwrap().unwrap_err(), me);
        assert_eq!(holder(&p).unwrap(), Some(me));
        drop(held);
        assert_eq!(holder(&p).unwrap(), None);
        assert!(lock(&p).unwrap().is_ok());
    }
}
