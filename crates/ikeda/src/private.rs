//! Directories and files that hold secrets (key export) or state whose
//! loss or forgery would break a promise (the sequence numbers reserved
//! for manually keyed SAs). Whoever can write such a directory can plant
//! a symlink where we are about to write a key, or replace a state file, so:
//!
//! - the directory must be ours: a real directory (not a link), owned by
//!   our effective uid, with no permission bit for group or others (0700);
//!   we create it so when it is missing and refuse it otherwise;
//! - files are created new (`O_CREAT|O_EXCL`, which also refuses a link
//!   at the path) with `O_NOFOLLOW`, mode 0600; a file that is rewritten
//!   is written to a new temporary file in the same directory and renamed
//!   over the old one, so a reader never sees half of it;
//! - files are opened for reading or appending with `O_NOFOLLOW`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Create `dir` (0700, with its missing parents) or check that the one
/// there is ours and private. `what` names it in the error ("key export
/// directory").
pub fn ensure_dir(dir: &Path, what: &str) -> Result<(), String> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(|e| format!("{what} {}: {e}", parent.display()))?;
            }
            fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("{what} {}: {e}", dir.display()))?;
        }
        Err(e) => return Err(format!("{what} {}: {e}", dir.display())),
        Ok(_) => {}
    }
    check_dir(dir, what)
}

/// Refuse `dir` unless it is a directory (not a link to one) owned by us
/// with mode 0700 or tighter.
pub fn check_dir(dir: &Path, what: &str) -> Result<(), String> {
    let m = fs::symlink_metadata(dir).map_err(|e| format!("{what} {}: {e}", dir.display()))?;
    let refuse = |why: String| {
        Err(format!(
            "{what} {}: refused: {why}; it must be a directory owned by uid {} with mode 0700",
            dir.display(),
            euid()
        ))
    };
    if m.file_type().is_symlink() {
        return refuse("it is a symbolic link".into());
    }
    if !m.is_dir() {
        return refuse("it is not a directory".into());
    }
    if m.uid() != euid() {
        return refuse(format!("it is owned by uid {}", m.uid()));
    }
    let mode = m.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return refuse(format!("its mode is {mode:04o}, open to group or others"));
    }
    Ok(())
}

fn euid() -> u32 {
    // SAFETY: geteuid(2) cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// Create a new file 0600; fails if anything (a file, a link) is at `path`.
pub fn create_new(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Open `path` for appending, creating it 0600; a link there is refused,
/// and an existing file must be a regular file of ours (its mode is then
/// tightened to 0600).
pub fn open_append(path: &Path) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let m = f.metadata()?;
    if !m.is_file() || m.uid() != euid() {
        return Err(std::io::Error::other("not a regular file of ours"));
    }
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

/// The text of `path`, not following a link there; `None` if it is missing.
pub fn read(path: &Path) -> std::io::Result<Option<String>> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    match f {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
        Ok(mut f) => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut f, &mut s)?;
            Ok(Some(s))
        }
    }
}

/// Replace `dir/name` with `data`: a new temporary file in `dir`, then
/// rename. With `durable`, the data and the rename reach the disk (fsync of
/// the file and of the directory) before this returns.
pub fn replace(dir: &Path, name: &str, data: &[u8], durable: bool) -> std::io::Result<()> {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    ));
    let r = (|| {
        let mut f = create_new(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, dir.join(name))?;
        if durable {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ikeda-private-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_missing_dir_is_created_0700_and_an_open_one_refused() {
        let d = tmpdir("mode");
        ensure_dir(&d, "test directory").unwrap();
        assert_eq!(fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700);
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
        let e = ensure_dir(&d, "test directory").unwrap_err();
        assert!(e.contains("mode is 0777") && e.contains("0700"), "{e}");
        fs::set_permissions(&d, fs::Permissions::from_mode(0o750)).unwrap();
        assert!(ensure_dir(&d, "test directory").is_err());
        let _ = fs::remove_dir_all(&d);
    }

    /// A directory (and a file to append to) owned by another user is
    /// refused, even with mode 0700: its owner could plant links in it.
    /// As root (CI) the test hands its own directory to uid 65534; as
    /// another user it takes one that root owns.
    #[test]
    fn a_dir_or_file_of_another_user_is_refused() {
        let (d, other) = if euid() == 0 {
            let d = tmpdir("owner");
            ensure_dir(&d, "test directory").unwrap();
            std::os::unix::fs::chown(&d, Some(65534), Some(65534)).unwrap();
            (d, 65534)
        } else {
            (std::path::PathBuf::from("/"), 0)
        };
        let e = check_dir(&d, "test directory").unwrap_err();
        assert!(e.contains(&format!("it is owned by uid {other}")), "{e}");
        assert!(ensure_dir(&d, "test directory").is_err());
        if euid() == 0 {
            std::os::unix::fs::chown(&d, Some(0), Some(0)).unwrap();
            let f = d.join("log");
            drop(open_append(&f).unwrap());
            std::os::unix::fs::chown(&f, Some(65534), Some(65534)).unwrap();
            let e = open_append(&f).unwrap_err();
            assert!(e.to_string().contains("not a regular file of ours"), "{e}");
            let _ = fs::remove_dir_all(&d);
        }
    }

    #[test]
    fn a_linked_dir_is_refused() {
        let d = tmpdir("dirlink");
        fs::create_dir_all(d.join("real")).unwrap();
        fs::set_permissions(d.join("real"), fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("link")).unwrap();
        let e = ensure_dir(&d.join("link"), "test directory").unwrap_err();
        assert!(e.contains("symbolic link"), "{e}");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn links_are_neither_followed_nor_replaced_in_place() {
        let d = tmpdir("filelink");
        ensure_dir(&d, "test directory").unwrap();
        let victim = d.join("victim");
        fs::write(&victim, "untouched").unwrap();
        std::os::unix::fs::symlink(&victim, d.join("f")).unwrap();
        assert!(create_new(&d.join("f")).is_err());
        assert!(open_append(&d.join("f")).is_err());
        assert!(read(&d.join("f")).is_err());
        // Replacing renames over the link itself, never writes through it.
        replace(&d, "f", b"new", true).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(read(&d.join("f")).unwrap().unwrap(), "new");
        let m = fs::symlink_metadata(d.join("f")).unwrap();
        assert!(m.is_file());
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        let _ = fs::remove_dir_all(&d);
    }
}
