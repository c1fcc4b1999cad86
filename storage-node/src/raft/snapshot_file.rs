//! Where a snapshot's bytes are kept: one file per snapshot in a folder
//! next to the RocksDB files, named after the snapshot id, and the file
//! handle openraft reads from (to send chunks) and writes into (chunks
//! received): [`SnapshotFile`], the type config's `SnapshotData`.
//!
//! Why files and not a RocksDB value or memory: a snapshot is the whole
//! data set (gigabytes). As one synced value it went through the WAL's
//! single writer queue and stalled every client write (measured: 2 s per
//! snapshot); held in memory it bounds the data set by RAM.
//!
//! Names in the folder:
//! - `<id>.snap`: a complete snapshot, written under a temporary name,
//!   fsynced, renamed, folder fsynced, and only then named by a record;
//! - `<id>.snap.tmp`: a build in progress;
//! - `incoming-<n>.part`: a snapshot being received from the leader;
//! - `ingest/`: SST files staged while a snapshot is installed.
//!
//! `.snap` files not named by the current record are deleted once a newer
//! record is durable; `.tmp` and `.part` files are left by a crash and
//! deleted at start.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

/// Folder inside the node's data folder (RocksDB ignores it).
const FOLDER: &str = "raft-snapshots";
const SUFFIX: &str = ".snap";
const BUILDING: &str = ".tmp";
const RECEIVING: &str = ".part";
const INGEST: &str = "ingest";

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

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Where the snapshot `name` is written while it is built.
    pub fn building_path(&self, name: &str) -> io::Result<PathBuf> {
        fs::create_dir_all(&self.dir)?;
        Ok(self.dir.join(format!("{name}{BUILDING}")))
    }

    /// An empty folder for staging SST files (emptied if it was not).
    pub fn ingest_dir(&self) -> io::Result<PathBuf> {
        let dir = self.dir.join(INGEST);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Makes the complete, fsynced file at `from` (a build or a received
    /// snapshot in this folder) the snapshot file `name`, durably.
    pub fn publish(&self, from: &Path, name: &str) -> io::Result<()> {
        fs::rename(from, self.dir.join(name))?;
        fs::File::open(&self.dir)?.sync_all()
    }

    /// Writes `data` durably as `name` (a legacy snapshot moved to a file).
    pub fn write(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let tmp = self.building_path(name)?;
        {
            let mut f = fs::File::create(&tmp)?;
            io::Write::write_all(&mut f, data)?;
            f.sync_all()?;
        }
        self.publish(&tmp, name)
    }

    /// A new file to receive a snapshot into. openraft receives one
    /// snapshot at a time and drops the stream it abandons when it starts a
    /// new one, so earlier partial files are deleted.
    pub async fn receive(&self) -> io::Result<SnapshotFile> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let path = self.dir.join(format!(
            "incoming-{}{RECEIVING}",
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let files = self.clone();
        tokio::task::spawn_blocking(move || {
            fs::create_dir_all(&files.dir)?;
            files.remove_matching(|name| name.ends_with(RECEIVING))
        })
        .await
        .map_err(io::Error::other)??;
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        Ok(SnapshotFile { file, path })
    }

    /// Opens the snapshot file `name` for reading (to send it).
    pub async fn open(&self, name: &str) -> io::Result<SnapshotFile> {
        let path = self.dir.join(name);
        let file = tokio::fs::File::open(&path).await?;
        Ok(SnapshotFile { file, path })
    }

    /// Deletes every snapshot file but `keep`.
    pub fn remove_all_but(&self, keep: &str) -> io::Result<()> {
        self.remove_matching(|name| name.ends_with(SUFFIX) && name != keep)
    }

    /// Deletes what a crash left behind: unfinished builds and receptions
    /// and staged SST files (call at start, before any of them runs).
    pub fn remove_leftovers(&self) -> io::Result<()> {
        self.remove_matching(|name| name.ends_with(BUILDING) || name.ends_with(RECEIVING))?;
        match fs::remove_dir_all(self.dir.join(INGEST)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn remove_matching(&self, doomed: impl Fn(&str) -> bool) -> io::Result<()> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_file() && doomed(&entry.file_name().to_string_lossy()) {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }
}

/// A snapshot's bytes as openraft sees them: a file it seeks in, reads
/// chunks from (sending) or writes chunks into (receiving). Memory stays
/// at one chunk whatever the snapshot's size. Knows its path, so a
/// received snapshot can be installed from and kept as the current one.
#[derive(Debug)]
pub struct SnapshotFile {
    file: tokio::fs::File,
    path: PathBuf,
}

impl SnapshotFile {
    /// Wraps an open file.
    pub fn new(file: tokio::fs::File, path: PathBuf) -> SnapshotFile {
        SnapshotFile { file, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and fsyncs a received file, closes it; returns its path.
    pub async fn finish_writing(mut self) -> io::Result<PathBuf> {
        use tokio::io::AsyncWriteExt;
        self.file.flush().await?;
        self.file.sync_all().await?;
        Ok(self.path)
    }
}

impl AsyncRead for SnapshotFile {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_read(cx, buf)
    }
}

impl AsyncWrite for SnapshotFile {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.file).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_shutdown(cx)
    }
}

impl AsyncSeek for SnapshotFile {
    fn start_seek(mut self: Pin<&mut Self>, position: io::SeekFrom) -> io::Result<()> {
        Pin::new(&mut self.file).start_seek(position)
    }

    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Pin::new(&mut self.file).poll_complete(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir.join(FOLDER))
            .expect("folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn keeps_only_the_current_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = SnapshotFiles::new(dir.path());
        let a = SnapshotFiles::name_for("1-100-0");
        let b = SnapshotFiles::name_for("1-200-1");
        files.write(&a, b"first").expect("write a");
        files.write(&b, b"second").expect("write b");
        fs::write(files.building_path("x.snap").expect("path"), b"building").expect("tmp");
        files.remove_all_but(&b).expect("cleanup");
        assert_eq!(names(dir.path()), vec![b.clone(), "x.snap.tmp".to_string()]);
        files.remove_leftovers().expect("leftovers");
        assert_eq!(names(dir.path()), vec![b.clone()]);
        assert_eq!(fs::read(files.path(&b)).expect("read b"), b"second");
    }

    #[test]
    fn names_cannot_leave_the_folder() {
        assert_eq!(SnapshotFiles::name_for("../x/y"), "___x_y.snap");
        assert_eq!(SnapshotFiles::name_for("empty-3"), "empty-3.snap");
    }

    /// Chunks may be resent at an earlier offset (a retried RPC): the file
    /// is written where the chunk says; a new reception drops older ones.
    #[tokio::test]
    async fn a_received_file_is_written_at_chunk_offsets() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = SnapshotFiles::new(dir.path());
        let mut abandoned = files.receive().await.expect("receive");
        abandoned.write_all(b"old").await.expect("write");
        let mut f = files.receive().await.expect("receive");
        assert!(!abandoned.path().exists(), "abandoned reception deleted");
        f.write_all(b"hello wor").await.expect("write");
        f.seek(io::SeekFrom::Start(6)).await.expect("seek");
        f.write_all(b"world").await.expect("write");
        f.shutdown().await.expect("shutdown");
        let path = f.finish_writing().await.expect("finish");
        files.publish(&path, "1-1-1.snap").expect("publish");
        let mut back = files.open("1-1-1.snap").await.expect("open");
        let mut s = String::new();
        back.read_to_string(&mut s).await.expect("read");
        assert_eq!(s, "hello world");
    }
}
