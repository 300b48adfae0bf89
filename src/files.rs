//! Files the command line writes where a user points it (backups, exports): never through
//! a symbolic link, and either complete or absent.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Refuses a destination that is one of `protected` (a database, its `-wal` and `-shm`,
/// its key) under any spelling: the same device and inode, through `..`, a symbolic link
/// or a hard link. `postd backup data/postd.db` with the default `--db` renamed a copy
/// over the live database: the server went on writing to the file it had open, and
/// every write since was gone after a restart.
pub fn refuse_protected(dest: &Path, protected: &[PathBuf]) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(dest) else {
        // Nothing there (or a dangling link): it is none of the files we keep.
        return Ok(());
    };
    for file in protected {
        if let Ok(kept) = std::fs::metadata(file) {
            if (kept.dev(), kept.ino()) == (target.dev(), target.ino()) {
                return Err(format!(
                    "{} is {}: refusing to write over it",
                    dest.display(),
                    file.display()
                ));
            }
        }
    }
    Ok(())
}

/// A directory only we can enter, beside a destination, for a file in progress: nobody
/// else can plant a symbolic link where the file is written. Removed on drop (a process
/// killed by SIGKILL leaves it behind: a `.postd-partial-*` directory is safe to remove
/// when no postd command is running).
pub struct PrivateDir(PathBuf);

impl PrivateDir {
    pub fn beside(dest: &Path) -> Result<PrivateDir, String> {
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut last_error = None;
        for attempt in 0..8u64 {
            let dir = parent.join(format!(".postd-partial-{:016x}", unpredictable(attempt)));
            // mkdir never follows a link and fails if the name exists: whatever it creates
            // is ours, mode 0700.
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(PrivateDir(dir)),
                Err(err) => last_error = Some(err),
            }
        }
        Err(format!(
            "cannot make a private directory beside {}: {}",
            dest.display(),
            last_error.map(|e| e.to_string()).unwrap_or_default()
        ))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Creates `name` in the directory, mode 0600, failing rather than opening anything
    /// that is already there (a link included).
    pub fn create_file(&self, name: &str) -> std::io::Result<(PathBuf, std::fs::File)> {
        let path = self.0.join(name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        Ok((path, file))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A name nobody can guess ahead: std's per-process random hash keys, mixed with the time.
fn unpredictable(salt: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(salt);
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish()
}
