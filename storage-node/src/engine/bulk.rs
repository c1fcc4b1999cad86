//! Bulk loading of a column family from a sorted stream of pairs: the pairs
//! go into SST files written with RocksDB's `SstFileWriter`, which are then
//! ingested (moved into the DB) in one call.
//!
//! Why not write batches: a batch holds every pair in memory until it is
//! written, and a snapshot install of gigabytes must not. An SST writer
//! streams blocks to disk as they fill; only the file's index stays in
//! memory, so files are rolled at [`FILE_BYTES`] to bound that too.

use std::path::{Path, PathBuf};

use super::{cf, Engine, EngineError, WriteBatch};

/// Size at which a new SST file is started (bounds the index a writer
/// keeps in memory).
const FILE_BYTES: u64 = 256 << 20;

/// The options SST files are written with (a writer borrows them, so the
/// caller keeps them alive: `let o = SstOptions::new(); SstBuilder::new(&o, ..)`).
pub struct SstOptions(rocksdb::Options);

impl SstOptions {
    #[allow(clippy::new_without_default)]
    pub fn new() -> SstOptions {
        let mut opts = rocksdb::Options::default();
        // As the column families themselves (see `Engine::open`).
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        SstOptions(opts)
    }
}

/// Writes pairs, in strictly increasing key order, into SST files in one
/// folder, for [`Engine::ingest_cf`].
pub struct SstBuilder<'o> {
    opts: &'o SstOptions,
    dir: PathBuf,
    prefix: String,
    /// The file being written and its path.
    writer: Option<(rocksdb::SstFileWriter<'o>, PathBuf)>,
    written: Vec<PathBuf>,
    last_key: Option<Vec<u8>>,
}

impl<'o> SstBuilder<'o> {
    /// A builder writing `<prefix>-<n>.sst` files into `dir` (which must be
    /// on the DB's file system for ingestion to move rather than copy).
    pub fn new(opts: &'o SstOptions, dir: &Path, prefix: &str) -> SstBuilder<'o> {
        SstBuilder {
            opts,
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            writer: None,
            written: Vec::new(),
            last_key: None,
        }
    }

    /// Adds a pair; keys must strictly increase (a snapshot stream out of
    /// order is corrupt).
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), EngineError> {
        if self.last_key.as_deref().is_some_and(|last| key <= last) {
            return Err(EngineError::Corrupt("keys out of order".into()));
        }
        let (writer, _) = match &mut self.writer {
            Some(w) => w,
            None => {
                let path = self
                    .dir
                    .join(format!("{}-{}.sst", self.prefix, self.written.len()));
                let writer = rocksdb::SstFileWriter::create(&self.opts.0);
                writer.open(&path)?;
                self.writer.insert((writer, path))
            }
        };
        writer.put(key, value)?;
        let full = writer.file_size() >= FILE_BYTES;
        match &mut self.last_key {
            Some(last) => {
                last.clear();
                last.extend_from_slice(key);
            }
            None => self.last_key = Some(key.to_vec()),
        }
        if full {
            self.finish_file()?;
        }
        Ok(())
    }

    fn finish_file(&mut self) -> Result<(), EngineError> {
        if let Some((mut writer, path)) = self.writer.take() {
            writer.finish()?;
            self.written.push(path);
        }
        Ok(())
    }

    /// Closes the last file; returns every file written (none if no pair
    /// was added: RocksDB cannot write an empty SST).
    pub fn finish(mut self) -> Result<Vec<PathBuf>, EngineError> {
        self.finish_file()?;
        Ok(self.written)
    }
}

impl Engine {
    /// Moves the SST `files` (from one [`SstBuilder`], so non-overlapping)
    /// into column family `cf_name` atomically: all or none become visible,
    /// and their pairs shadow older ones of the same keys.
    pub fn ingest_cf(&self, cf_name: &str, files: &[PathBuf]) -> Result<(), EngineError> {
        if files.is_empty() {
            return Ok(());
        }
        let mut opts = rocksdb::IngestExternalFileOptions::default();
        opts.set_move_files(true);
        Ok(self
            .db
            .ingest_external_file_cf_opts(self.cf(cf_name), &opts, files.to_vec())?)
    }

    /// Adds to `batch` the deletion of every pair of the DATA column family
    /// (before ingesting a snapshot's).
    pub fn clear_data_into(&self, batch: &mut WriteBatch<'_>) {
        let (start, end) = super::keys::whole_range();
        batch.delete_range(cf::DATA, start, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_files_are_ingested_over_cleared_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(&dir.path().join("db")).expect("open");
        engine
            .put_cf(cf::DATA, b"old", b"gone", false)
            .expect("put");
        let staging = dir.path().join("staging");
        std::fs::create_dir_all(&staging).expect("mkdir");
        let opts = SstOptions::new();
        let mut builder = SstBuilder::new(&opts, &staging, "data");
        builder.put(b"a", b"1").expect("put");
        builder.put(b"b", b"2").expect("put");
        assert!(builder.put(b"b", b"again").is_err(), "order is enforced");
        let files = builder.finish().expect("finish");
        let mut batch = engine.batch();
        engine.clear_data_into(&mut batch);
        engine.write_batch(batch, true).expect("clear");
        engine.ingest_cf(cf::DATA, &files).expect("ingest");
        let pairs: Vec<_> = engine
            .iter_cf(cf::DATA, b"", None)
            .collect::<Result<_, _>>()
            .expect("scan");
        assert_eq!(
            pairs,
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"2".to_vec())
            ]
        );
        assert!(SstBuilder::new(&opts, &staging, "none")
            .finish()
            .expect("finish")
            .is_empty());
    }
}
