//! Files only their owner may read: the database, keys. Created with the permission
//! in place, never tightened afterwards, so there is no moment they are world-readable.

use std::fs::File;
use std::path::Path;

/// Creates a new file (failing if it exists) readable and writable by its owner only.
pub fn create_new_private(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}
