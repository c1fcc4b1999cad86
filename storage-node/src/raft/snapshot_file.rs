//! Where a snapshot's bytes are kept: one file per snapshot in a folder
//! next to the RocksDB files, named after the snapshot id.
//!
//! Why not a RocksDB value: a snapshot is the whole data set (tens of MB at
//! a few hundred thousand keys). Written as one synced value it went through
//! the WAL's single writer queue, so every client write and log append
//! waited behind it, and it filled the memtable (measured: a 2 s stall of
//! every client at each snapshot). A file is written beside the DB instead
//! and only its name goes into the state machine's meta.
//!
//! A file is complete before it is named anywhere: it is written under a
//! temporary name, fsynced, renamed and the folder fsynced. Files not named
//! by the current record (left over by a crash or an older snapshot) are
//! deleted once a newer record is durable.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Folder inside the node's data folder (RocksDB ignores it).
const FOLDER: &str = "raft-snapshots";
const SUFFIX: &str = ".snap";

#[derive(Debug, Clone)]
pub struct SnapshotFiles {
    dir: PathBuf,
}

impl SnapshotFiles {
    /// Files under `data_dir`; the folder is made on first write.
    pub fn new(data_dir: &Path) -> SnapshotFiles {
        SnapshotFiles {
            dir: data_dir.join(FOLDER),
        }
    }

    /// The file name for a snapshot id (ids are `term-index-seq`; anything
    /// else is replaced so a name can never leave the folder).
    pub fn name_for(snapshot_id: &str) -> String {
        let safe: String = snapshot_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{safe}{SUFFIX}")
    }

    /// Writes `data` durably as `name`.
    pub fn write(&self, name: &str, data: &[u8]) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!("{name}.tmp"));
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, self.dir.join(name))?;
        fs::File::open(&self.dir)?.sync_all()
    }

    pub fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        fs::read(self.dir.join(name))
    }

    /// Deletes every snapshot file but `keep` (temporary files included).
    pub fn remove_all_but(&self, keep: &str) -> io::Result<()> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_name() != keep {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_reads_and_keeps_only_the_current_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = SnapshotFiles::new(dir.path());
        let a = SnapshotFiles::name_for("1-100-0");
        let b = SnapshotFiles::name_for("1-200-1");
        files.write(&a, b"first").expect("write a");
        files.write(&b, b"second").expect("write b");
        assert_eq!(files.read(&a).expect("read a"), b"first");
        files.remove_all_but(&b).expect("cleanup");
        assert!(files.read(&a).is_err(), "older file deleted");
        assert_eq!(files.read(&b).expect("read b"), b"second");
    }

    #[test]
    fn names_cannot_leave_the_folder() {
        assert_eq!(SnapshotFiles::name_for("../x/y"), "___x_y.snap");
        assert_eq!(SnapshotFiles::name_for("empty-3"), "empty-3.snap");
    }
}
