//! Make a running coordinator's SQLite database fail, as a wedged or locked disk would:
//! [`DbLock`] holds the WAL locks of `segwire.db-shm` from the test process, so every
//! transaction of the coordinator waits out its busy timeout and fails ("locking
//! protocol"), until the guard is dropped. No file is changed.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// First byte of the WAL locks in SQLite's unix `-shm` file (`UNIX_SHM_BASE`).
const SHM_LOCK_BASE: i64 = 120;
/// The write, checkpoint, recover and five read-mark locks.
const SHM_LOCKS: i64 = 8;

/// Holds every WAL lock of a database until dropped (closing the file releases them).
#[derive(Debug)]
pub struct DbLock {
    _shm: File,
}

impl DbLock {
    /// Locks `db` (the database file; its `-shm` must exist, i.e. it is open in WAL mode).
    pub fn hold(db: &Path) -> std::io::Result<DbLock> {
        let mut shm = db.as_os_str().to_owned();
        shm.push("-shm");
        let file = File::options().read(true).write(true).open(shm)?;
        // SAFETY: a zeroed `flock` is a valid value; every field used is set below.
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = libc::F_WRLCK as libc::c_short;
        lock.l_whence = libc::SEEK_SET as libc::c_short;
        lock.l_start = SHM_LOCK_BASE;
        lock.l_len = SHM_LOCKS;
        // SAFETY: the fd is open for the call and `lock` outlives it. F_SETLKW waits
        // while the coordinator holds one of the locks for a moment.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLKW, &lock) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(DbLock { _shm: file })
    }
}
