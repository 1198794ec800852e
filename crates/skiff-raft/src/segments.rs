//! The Raft log's entries in append-only segment files, written once.
//!
//! In RocksDB every entry was written three times (WAL, memtable flush, compaction) and then
//! deleted again when a snapshot covered it; here it is written once and whole files are
//! unlinked when a snapshot covers them.
//!
//! ```text
//! DATA_DIR/log/{seq:016}.seg    segments, in the order of seq; the last one takes appends
//! record = len: u32 LE | crc: u32 LE | index: u64 LE | payload (len bytes)
//! ```
//!
//! `crc` is CRC-32 over the index and the payload.
//!
//! # Contract
//!
//! * [`Segments::append`] writes with `write(2)` and returns what must be synced before the
//!   records are durable (a [`ToSync`]): they are readable at once, and the caller owns the
//!   syncing (it is how several appends share one fsync, off the caller's thread).
//! * A record's index is the one after the last record kept; the first record after an empty
//!   log may have any index.
//! * [`Segments::truncate_from`] is durable when it returns; [`Segments::purge_to`] only unlinks
//!   files, so the caller records the purge point durably first: on open, records at or below it
//!   are skipped wherever they are.
//! * On open, a torn or corrupt record at the end of the last segment (an append that never
//!   reached disk whole, so never acknowledged) is cut off; anywhere else it is an error, since
//!   acknowledged entries would be lost.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

/// A segment takes no more appends once it is this large.
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// The most bytes one read fetches at once (replication reads up to a thousand entries).
const READ_BYTES: usize = 256 << 10;
const HEADER: usize = 16;
const EXTENSION: &str = "seg";

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn checksum(index: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&index.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Where one record is.
#[derive(Debug, Clone, Copy)]
struct Loc {
    seq: u64,
    /// Offset of the record's header in its segment.
    offset: u64,
    /// Header and payload.
    size: u32,
}

/// Records framed for one [`Segments::append`].
#[derive(Default)]
pub struct Batch {
    buf: Vec<u8>,
    /// (index, offset in `buf`, size) of each record.
    records: Vec<(u64, usize, u32)>,
}

impl Batch {
    /// Adds the record of `index`, its payload written by `encode` into the buffer.
    pub fn push(&mut self, index: u64, encode: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> io::Result<()> {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; HEADER]);
        if let Err(e) = encode(&mut self.buf) {
            self.buf.truncate(start);
            return Err(e);
        }
        let payload = &self.buf[start + HEADER..];
        let len = u32::try_from(payload.len()).map_err(|_| invalid(format!("log entry {index} is over 4 GiB")))?;
        let crc = checksum(index, payload);
        self.buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
        self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        self.buf[start + 8..start + 16].copy_from_slice(&index.to_le_bytes());
        self.records.push((index, start, HEADER as u32 + len));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Empties the batch for the next append but keeps its buffer: a buffer allocated afresh for
    /// every append is returned to the system when freed and faulted in again page by page, which
    /// cost followers a tenth of their time. One that grew past `keep` bytes (a catch-up burst)
    /// is let go.
    pub fn clear(&mut self, keep: usize) {
        if self.buf.capacity() > keep {
            *self = Self::default();
        } else {
            self.buf.clear();
            self.records.clear();
        }
    }
}

/// What makes an append durable: its segment's data and, for a segment the append started, the
/// directory entry that names it.
pub struct ToSync {
    pub file: Arc<File>,
    pub new_segment_in: Option<PathBuf>,
    /// Where the append starts and ends in the file.
    pub start: u64,
    pub end: u64,
}

impl ToSync {
    pub fn sync(&self) -> io::Result<()> {
        sync_all([self])
    }
}

/// Makes several appends durable with one sync per segment and per directory they name, then
/// lets the kernel drop what they wrote from its cache (see [`release_cached`]).
pub fn sync_all<'a>(appends: impl IntoIterator<Item = &'a ToSync>) -> io::Result<()> {
    // Each file once, with the span its appends wrote.
    let mut files: Vec<(&Arc<File>, u64, u64)> = Vec::new();
    let mut dirs: Vec<&PathBuf> = Vec::new();
    for append in appends {
        match files.iter_mut().find(|(file, _, _)| Arc::ptr_eq(file, &append.file)) {
            Some((_, start, end)) => (*start, *end) = ((*start).min(append.start), (*end).max(append.end)),
            None => files.push((&append.file, append.start, append.end)),
        }
        if let Some(dir) = append.new_segment_in.as_ref().filter(|d| !dirs.contains(d)) {
            dirs.push(dir);
        }
    }
    files.iter().try_for_each(|(file, _, _)| file.sync_data())?;
    dirs.iter().try_for_each(|d| sync_dir(d))?;
    for (file, start, end) in files {
        release_cached(file, start, end);
    }
    Ok(())
}

/// Lets the kernel drop the cached pages of `file` that a sync has just written, `start..end`.
///
/// The log is written once and read back only to catch up a lagging follower or on start-up
/// (the newest entries are kept in memory), so its pages in the page cache serve nobody. Left
/// there, every append needs fresh pages, and on a virtual machine that hands free memory back
/// to its host (free page reporting), a fresh page is paid for on first touch: copying appends
/// into new pages was a tenth of a follower's time. Dropped right after the sync, the pages
/// go back to the kernel's per-CPU lists, from which the next appends take them again.
/// The page that `end` falls in is kept: the next append writes into it, and a dropped one
/// would have to be read back from disk first. The page `start` falls in is that page of the
/// sync before, now written to its end or still kept. This is advice; failing it changes nothing.
fn release_cached(file: &File, start: u64, end: u64) {
    let (from, to) = (start & !(CACHE_PAGE - 1), end & !(CACHE_PAGE - 1));
    if let Some(len) = std::num::NonZeroU64::new(to.saturating_sub(from)) {
        let _ = rustix::fs::fadvise(file, from, Some(len), rustix::fs::Advice::DontNeed);
    }
}

/// The page size [`release_cached`] rounds to (on kernels with larger pages, the kernel keeps
/// partial pages itself).
const CACHE_PAGE: u64 = 4096;

/// A run of consecutive records in one segment, to be read without holding the log's lock.
pub struct Span {
    file: Arc<File>,
    seq: u64,
    offset: u64,
    bytes: usize,
    first: u64,
    count: usize,
}

impl Span {
    /// Reads the records and hands each payload to `each`, checking every index and checksum.
    pub fn read(&self, mut each: impl FnMut(u64, &[u8]) -> io::Result<()>) -> io::Result<()> {
        let mut buf = vec![0; self.bytes];
        self.file.read_exact_at(&mut buf, self.offset)?;
        let mut at = 0;
        for i in 0..self.count as u64 {
            let want = self.first + i;
            let record = parse(&buf[at..]).map_err(|why| {
                invalid(format!("log segment {} at offset {}: {why}", self.seq, self.offset + at as u64))
            })?;
            if record.index != want {
                return Err(invalid(format!(
                    "log segment {} holds entry {} where {want} belongs",
                    self.seq, record.index
                )));
            }
            each(record.index, record.payload)?;
            at += record.size;
        }
        Ok(())
    }
}

struct Record<'a> {
    index: u64,
    payload: &'a [u8],
    size: usize,
}

/// The record at the start of `buf`, or why there is none.
fn parse(buf: &[u8]) -> Result<Record<'_>, String> {
    let Some(header) = buf.get(..HEADER) else {
        return Err(format!("{} bytes where a record header needs {HEADER}", buf.len()));
    };
    let mut fields = [0u8; HEADER];
    fields.copy_from_slice(header);
    let [l0, l1, l2, l3, c0, c1, c2, c3, index @ ..] = fields;
    let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    let crc = u32::from_le_bytes([c0, c1, c2, c3]);
    let index = u64::from_le_bytes(index);
    let Some(payload) = buf.get(HEADER..HEADER + len) else {
        return Err(format!("record of entry {index} needs {len} bytes, {} left", buf.len() - HEADER));
    };
    if checksum(index, payload) != crc {
        return Err(format!("record of entry {index} fails its checksum"));
    }
    Ok(Record { index, payload, size: HEADER + len })
}

/// The log's segment files and where each entry is in them.
pub struct Segments {
    dir: PathBuf,
    files: BTreeMap<u64, Arc<File>>,
    /// The segment appends go to (always in `files`) and its length.
    active: u64,
    active_len: u64,
    /// The active segment was created since the last append and its name is not yet durable.
    active_unnamed: bool,
    /// Where entries `first..first + locs.len()` are.
    first: u64,
    locs: VecDeque<Loc>,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016}.{EXTENSION}"))
}

fn open_segment(dir: &Path, seq: u64) -> io::Result<File> {
    OpenOptions::new().read(true).append(true).create(true).open(segment_path(dir, seq))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Segments {
    /// Opens the segments in `dir` (creating it and a first segment when there are none),
    /// skipping entries at or below `purged`.
    pub fn open(dir: &Path, purged: Option<u64>) -> io::Result<Self> {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            // The directory's own name must be durable before anything in it is acknowledged.
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        let mut seqs = Vec::new();
        for item in std::fs::read_dir(dir)? {
            let path = item?.path();
            if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
                continue;
            }
            let seq = path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<u64>().ok());
            match seq {
                Some(seq) => seqs.push(seq),
                None => return Err(invalid(format!("{} is not a log segment name", path.display()))),
            }
        }
        seqs.sort_unstable();
        let mut log = Segments {
            dir: dir.to_path_buf(),
            files: BTreeMap::new(),
            active: 0,
            active_len: 0,
            active_unnamed: false,
            first: 0,
            locs: VecDeque::new(),
        };
        let last = seqs.last().copied();
        for seq in seqs {
            log.load(seq, Some(seq) == last, purged)?;
        }
        if log.files.is_empty() {
            log.files.insert(1, Arc::new(open_segment(dir, 1)?));
            sync_dir(dir)?;
            log.active = 1;
        }
        Ok(log)
    }

    fn load(&mut self, seq: u64, last: bool, purged: Option<u64>) -> io::Result<()> {
        let path = segment_path(&self.dir, seq);
        let bytes = std::fs::read(&path)?;
        let mut at = 0;
        while at < bytes.len() {
            let record = match parse(&bytes[at..]) {
                Ok(record) => record,
                Err(why) if last => {
                    tracing::warn!(segment = seq, offset = at, "cutting off an unfinished log append: {why}");
                    let file = OpenOptions::new().write(true).open(&path)?;
                    file.set_len(at as u64)?;
                    file.sync_data()?;
                    break;
                }
                Err(why) => return Err(invalid(format!("log segment {seq} at offset {at}: {why}"))),
            };
            if purged.is_none_or(|p| record.index > p) {
                if !self.locs.is_empty() && record.index != self.next() {
                    let next = self.next();
                    return Err(invalid(format!("log segment {seq} holds entry {} after {}", record.index, next - 1)));
                }
                if self.locs.is_empty() {
                    self.first = record.index;
                }
                self.locs.push_back(Loc { seq, offset: at as u64, size: record.size as u32 });
            }
            at += record.size;
        }
        self.files.insert(seq, Arc::new(open_segment(&self.dir, seq)?));
        self.active = seq;
        self.active_len = at as u64;
        Ok(())
    }

    /// The index after the last entry (meaningful when there are entries).
    fn next(&self) -> u64 {
        self.first + self.locs.len() as u64
    }

    /// The indexes held: `first..=last`.
    pub fn bounds(&self) -> Option<(u64, u64)> {
        (!self.locs.is_empty()).then(|| (self.first, self.next() - 1))
    }

    /// Writes the batch at the end of the log (see the contract) and returns what to sync.
    pub fn append(&mut self, batch: &Batch) -> io::Result<ToSync> {
        let Some(&(first, _, _)) = batch.records.first() else {
            let at = self.active_len;
            return Ok(ToSync { file: self.active_file()?, new_segment_in: None, start: at, end: at });
        };
        if !self.locs.is_empty() && first != self.next() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("log append at {first}, the log ends at {}", self.next() - 1),
            ));
        }
        if self.active_len >= SEGMENT_BYTES {
            self.rotate()?;
        }
        let file = self.active_file()?;
        if let Err(e) = (&*file).write_all(&batch.buf) {
            // Leave no partial record for the next append to follow: on open it would sit
            // between acknowledged entries.
            let _ = file.set_len(self.active_len);
            return Err(e);
        }
        if self.locs.is_empty() {
            self.first = first;
        }
        for &(_, start, size) in &batch.records {
            self.locs.push_back(Loc { seq: self.active, offset: self.active_len + start as u64, size });
        }
        self.active_len += batch.buf.len() as u64;
        let new_segment_in = std::mem::take(&mut self.active_unnamed).then(|| self.dir.clone());
        Ok(ToSync { file, new_segment_in, start: self.active_len - batch.buf.len() as u64, end: self.active_len })
    }

    fn active_file(&self) -> io::Result<Arc<File>> {
        self.files.get(&self.active).cloned().ok_or_else(|| io::Error::other("the active log segment is not open"))
    }

    /// Starts a new segment. Nothing is synced here: the appends to the full segment are synced
    /// by their own [`ToSync`], and the first append to the new one syncs its name as well.
    fn rotate(&mut self) -> io::Result<()> {
        let seq = self.active + 1;
        self.files.insert(seq, Arc::new(open_segment(&self.dir, seq)?));
        self.active = seq;
        self.active_len = 0;
        self.active_unnamed = true;
        Ok(())
    }

    /// The spans that hold entries `from..to` (clamped to what the log holds), in order.
    pub fn locate(&self, from: u64, to: u64) -> Vec<Span> {
        let (Some((first, last)), true) = (self.bounds(), from < to) else {
            return Vec::new();
        };
        let (from, to) = (from.max(first), to.min(last + 1));
        let mut spans: Vec<Span> = Vec::new();
        for index in from..to {
            let loc = self.locs[(index - first) as usize];
            match spans.last_mut() {
                Some(span)
                    if span.seq == loc.seq
                        && span.offset + span.bytes as u64 == loc.offset
                        && span.bytes + loc.size as usize <= READ_BYTES =>
                {
                    span.bytes += loc.size as usize;
                    span.count += 1;
                }
                _ => {
                    let Some(file) = self.files.get(&loc.seq) else { continue };
                    spans.push(Span {
                        file: file.clone(),
                        seq: loc.seq,
                        offset: loc.offset,
                        bytes: loc.size as usize,
                        first: index,
                        count: 1,
                    });
                }
            }
        }
        spans
    }

    /// Removes entries from `index` on, durably.
    pub fn truncate_from(&mut self, index: u64) -> io::Result<()> {
        let Some((first, last)) = self.bounds() else { return Ok(()) };
        if index > last {
            return Ok(());
        }
        let keep = index.saturating_sub(first) as usize;
        let cut = self.locs[keep];
        let file = self.files.get(&cut.seq).cloned().ok_or_else(|| io::Error::other("log segment not open"))?;
        file.set_len(cut.offset)?;
        file.sync_data()?;
        let later: Vec<u64> = self.files.range(cut.seq + 1..).map(|(seq, _)| *seq).collect();
        for seq in &later {
            self.files.remove(seq);
            std::fs::remove_file(segment_path(&self.dir, *seq))?;
        }
        if !later.is_empty() {
            sync_dir(&self.dir)?;
        }
        self.active = cut.seq;
        self.active_len = cut.offset;
        self.locs.truncate(keep);
        Ok(())
    }

    /// Forgets entries up to and including `index` and unlinks the segments that hold nothing
    /// newer. The caller has recorded the purge durably (see the contract).
    pub fn purge_to(&mut self, index: u64) -> io::Result<()> {
        while self.bounds().is_some_and(|(first, _)| first <= index) {
            self.locs.pop_front();
            self.first += 1;
        }
        if self.locs.is_empty() {
            self.first = index + 1;
        }
        let oldest_needed = self.locs.front().map_or(self.active, |loc| loc.seq);
        let unneeded: Vec<u64> = self.files.range(..oldest_needed).map(|(seq, _)| *seq).collect();
        for seq in unneeded {
            self.files.remove(&seq);
            std::fs::remove_file(segment_path(&self.dir, seq))?;
        }
        Ok(())
    }

    /// How many segment files there are.
    pub fn segment_count(&self) -> usize {
        self.files.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(range: std::ops::Range<u64>) -> Batch {
        let mut b = Batch::default();
        for i in range {
            b.push(i, |buf| {
                buf.extend_from_slice(format!("entry {i}").as_bytes());
                Ok(())
            })
            .expect("push");
        }
        b
    }

    fn read(log: &Segments, from: u64, to: u64) -> Vec<String> {
        let mut out = Vec::new();
        for span in log.locate(from, to) {
            span.read(|_, p| {
                out.push(String::from_utf8_lossy(p).into_owned());
                Ok(())
            })
            .expect("read");
        }
        out
    }

    #[test]
    fn entries_survive_reopening_and_a_torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Segments::open(dir.path(), None).expect("open");
        log.append(&batch(1..6)).expect("append").sync().expect("sync");
        assert_eq!(read(&log, 2, 4), ["entry 2", "entry 3"]);
        drop(log);

        // Half a record at the end: an append the crash interrupted.
        let path = segment_path(dir.path(), 1);
        let whole = std::fs::metadata(&path).expect("stat").len();
        let mut f = OpenOptions::new().append(true).open(&path).expect("open segment");
        f.write_all(&batch(6..7).buf[..10]).expect("torn write");
        drop(f);

        let mut log = Segments::open(dir.path(), None).expect("reopen");
        assert_eq!(log.bounds(), Some((1, 5)));
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), whole, "the torn record was cut off");
        log.append(&batch(6..8)).expect("append after reopen");
        assert_eq!(read(&log, 0, 100).len(), 7);
    }

    #[test]
    fn corruption_before_the_last_segment_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Segments::open(dir.path(), None).expect("open");
        log.append(&batch(1..4)).expect("append");
        log.rotate().expect("rotate");
        log.append(&batch(4..6)).expect("append");
        drop(log);
        let path = segment_path(dir.path(), 1);
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).expect("corrupt");
        let err = Segments::open(dir.path(), None).err().expect("corrupt log must not open");
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn truncation_and_purge_hold_across_segments_and_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Segments::open(dir.path(), None).expect("open");
        log.append(&batch(1..4)).expect("append");
        log.rotate().expect("rotate");
        log.append(&batch(4..7)).expect("append");
        log.rotate().expect("rotate");
        log.append(&batch(7..9)).expect("append");
        assert_eq!(log.segment_count(), 3);
        assert!(log.append(&batch(10..11)).is_err(), "a gap is refused");

        log.truncate_from(5).expect("truncate");
        assert_eq!((log.bounds(), log.segment_count()), (Some((1, 4)), 2));
        log.append(&batch(5..7)).expect("append over the truncated entries");
        assert_eq!(read(&log, 4, 7), ["entry 4", "entry 5", "entry 6"]);

        log.purge_to(3).expect("purge");
        assert_eq!((log.bounds(), log.segment_count()), (Some((4, 6)), 1), "segment 1 held only purged entries");
        drop(log);
        let mut log = Segments::open(dir.path(), Some(3)).expect("reopen");
        assert_eq!(log.bounds(), Some((4, 6)));

        // Purging past the end empties the log; the next entry follows the purge point, after
        // stale entries still in the active segment, which reopening skips.
        log.purge_to(20).expect("purge all");
        assert_eq!(log.bounds(), None);
        log.append(&batch(21..23)).expect("append after purge");
        drop(log);
        let log = Segments::open(dir.path(), Some(20)).expect("reopen");
        assert_eq!(log.bounds(), Some((21, 22)));
        assert_eq!(read(&log, 0, 100), ["entry 21", "entry 22"]);
    }

    /// Pages of `path` in the page cache, as util-linux's `fincore` counts them.
    fn cached_pages(path: &Path) -> u64 {
        let out = std::process::Command::new("fincore")
            .args(["--noheadings", "--output", "PAGES"])
            .arg(path)
            .output()
            .expect("fincore (util-linux)");
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("a page count")
    }

    /// Syncing drops the pages it wrote from the cache except the one the next append continues
    /// in; what was written, and what is appended after it, reads back whole, before and after
    /// reopening. (Needs a file system that honours the advice, as ext4 and xfs do; tmpfs keeps
    /// its pages.)
    #[test]
    fn a_sync_releases_the_pages_it_wrote_and_records_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Segments::open(dir.path(), None).expect("open");
        let path = segment_path(dir.path(), 1);
        let long = |range: std::ops::Range<u64>| {
            let mut b = Batch::default();
            for i in range {
                b.push(i, |buf| {
                    buf.extend_from_slice(format!("entry {i} {}", "x".repeat(300)).as_bytes());
                    Ok(())
                })
                .expect("push");
            }
            b
        };
        let to_sync = log.append(&long(1..400)).expect("append");
        assert!(
            to_sync.end > 30 * CACHE_PAGE && !to_sync.end.is_multiple_of(CACHE_PAGE),
            "spans pages, ends inside one"
        );
        assert!(cached_pages(&path) >= 30, "written pages are cached until the sync");
        to_sync.sync().expect("sync");
        assert_eq!(cached_pages(&path), 1, "only the page the next append continues in stays");
        // The next sync releases from where the last one stopped, the kept page included.
        let more = log.append(&long(400..440)).expect("append");
        assert!(more.end / CACHE_PAGE > more.start / CACHE_PAGE, "fills the kept page");
        more.sync().expect("sync");
        assert!(cached_pages(&path) <= 1, "{} pages still cached", cached_pages(&path));
        let all = read(&log, 0, 1000);
        assert_eq!(all.len(), 439);
        assert!(all.iter().zip(1..).all(|(entry, i)| entry.starts_with(&format!("entry {i} "))));
        drop(log);
        let log = Segments::open(dir.path(), None).expect("reopen");
        assert_eq!(read(&log, 0, 1000), all);
    }
}
