//! Reads bbolt files, the key/value store containerd keeps its metadata in
//! (`io.containerd.metadata.v1.bolt/meta.db`) and its overlayfs snapshotter
//! its own (`metadata.db`): buckets, keys and values, read-only.
//!
//! Why our own reader: a bbolt library opens the file with a lock, and
//! containerd holds that lock for as long as it runs, so a library would wait
//! for ever. Reading needs no lock: bbolt writes a transaction's pages first and
//! its meta page last, and a page that the latest committed transaction's tree
//! refers to is freed only by the next transaction and reused only by a later
//! one (`freelist.go`: freed pages stay pending until released). So the newest
//! valid meta page gives the tree, its pages are read one at a time as the
//! caller walks it, and the walk is kept only if no transaction committed
//! while it went on (then no page of that tree can have been reused);
//! otherwise it is walked again.
//!
//! Pages are read as they are needed, not the file whole: at 11,000
//! containers containerd's `meta.db` is 151 MB (a page of its own for each
//! lease and snapshot), of which the plan needs a few hundred bytes a
//! container.
//!
//! The layout is bbolt's (go.etcd.io/bbolt `page.go`, `node.go`, `db.go`):
//! pages of `page_size` bytes, each a 16-byte header (id, flags, element count,
//! overflow pages) and 16-byte elements whose key and value lie at an offset
//! from the element. Everything read is bounds-checked: a damaged file is an
//! error, never a panic.

use std::os::unix::fs::FileExt;
use std::path::Path;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
/// A leaf element whose value is a nested bucket.
const BUCKET_LEAF: u32 = 0x01;
const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
/// The meta record: magic, version, page size, flags, root bucket (root page,
/// sequence), freelist page, page count, transaction ID, checksum.
const META_LEN: usize = 64;
/// B+tree depth, and buckets nested in buckets, that no real file reaches.
const MAX_DEPTH: usize = 64;
/// How often a file that keeps changing under the read is read again.
const TRIES: usize = 5;

/// A metadata file larger than this is refused: the containerd metadata of a
/// host with tens of thousands of containers and images is a few hundred MB
/// at most, and a file this size is damage (or a sparse file planted there),
/// not metadata.
pub(crate) const MAX_FILE: u64 = 512 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a bbolt file, or a damaged one ({0})")]
    Corrupt(&'static str),
    #[error("it changed every time it was read")]
    Busy,
    #[error("{0}")]
    Refused(String),
}

/// A page that lies (partly) past the end of the file.
fn short_file() -> Error {
    Error::Corrupt("the file is shorter than its pages")
}

/// Where the pages come from.
enum Pages {
    File(std::fs::File),
    /// A file's bytes already in memory (tests).
    #[cfg(test)]
    Memory(Vec<u8>),
}

impl Pages {
    /// Fills `buf` from `offset`; a file that ends first is damaged.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        match self {
            Pages::File(file) => file.read_exact_at(buf, offset).map_err(|err| {
                if err.kind() == std::io::ErrorKind::UnexpectedEof {
                    short_file()
                } else {
                    Error::Io(err)
                }
            }),
            #[cfg(test)]
            Pages::Memory(data) => {
                let from = usize::try_from(offset).map_err(|_| short_file())?;
                let bytes = from
                    .checked_add(buf.len())
                    .and_then(|to| data.get(from..to))
                    .ok_or_else(short_file)?;
                buf.copy_from_slice(bytes);
                Ok(())
            }
        }
    }

    fn len(&self) -> Result<u64, Error> {
        match self {
            Pages::File(file) => Ok(file.metadata()?.len()),
            #[cfg(test)]
            Pages::Memory(data) => Ok(data.len() as u64),
        }
    }

    /// The newest valid meta page of the two (pages 0 and 1), as bbolt picks it.
    fn latest_meta(&self) -> Option<Meta> {
        let meta_at = |offset: u64| {
            let mut page = [0u8; PAGE_HEADER + META_LEN];
            self.read_at(offset, &mut page).ok()?;
            meta_of(&page)
        };
        let first = meta_at(0);
        // The second meta page lies one page in; the first says how large a
        // page is, and bbolt's default (the OS page size) stands in when it
        // is damaged.
        let size = first.map_or(4096, |meta| meta.page_size);
        let second = meta_at(size as u64);
        match (first, second) {
            (Some(a), Some(b)) => Some(if b.txid > a.txid { b } else { a }),
            (a, b) => a.or(b),
        }
    }
}

/// One consistent view of a bbolt file: the tree of its newest transaction,
/// read a page at a time.
pub(crate) struct Db {
    pages: Pages,
    page_size: usize,
    root: u64,
    /// Pages in use (the high-water mark): every page the tree names is below.
    in_use: u64,
    /// The file's length when the view was taken: no page read lies beyond.
    len: u64,
    txid: u64,
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    page_size: usize,
    root: u64,
    pages: u64,
    txid: u64,
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// FNV-1a, 64 bits: bbolt's meta checksum.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The meta record of a page's first bytes, if it is one and its checksum holds.
fn meta_of(page: &[u8]) -> Option<Meta> {
    let page = page.get(..PAGE_HEADER + META_LEN)?;
    if u16_at(page, 8)? & META_PAGE == 0 {
        return None;
    }
    let meta = &page[PAGE_HEADER..];
    let valid = u32_at(meta, 0)? == MAGIC
        && u32_at(meta, 4)? == VERSION
        && fnv1a(&meta[..56]) == u64_at(meta, 56)?;
    let page_size = u32_at(meta, 8)? as usize;
    (valid && page_size >= 512 && page_size.is_power_of_two()).then_some(Meta {
        page_size,
        root: u64_at(meta, 16)?,
        pages: u64_at(meta, 40)?,
        txid: u64_at(meta, 48)?,
    })
}

impl Db {
    /// Runs `read` over one consistent view of the file at `path` (never
    /// through a symlink), and gives what it returned. When a transaction
    /// committed while `read` went on, its result (or error) is dropped and
    /// `read` runs again on the newer tree, up to [`TRIES`] times.
    pub(crate) fn read<T>(
        path: &Path,
        mut read: impl FnMut(&Db) -> Result<T, Error>,
    ) -> Result<T, Error> {
        for _ in 0..TRIES {
            // Opened without blocking (a FIFO planted there cannot hang the
            // run) and refused unless a regular file of a sane size.
            let (file, _) =
                crate::files::open_bounded_no_follow(path, MAX_FILE).map_err(|err| match err {
                    crate::files::ReadError::Io(err) => Error::Io(err),
                    refused => Error::Refused(refused.to_string()),
                })?;
            // The kernel reads the file ahead while the tree is walked (into
            // its page cache, not our memory); only a hint.
            let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::WillNeed);
            let db = Db::view(Pages::File(file))?;
            let result = read(&db);
            // A transaction that committed while the tree was walked may have
            // been followed by one that reused its pages: walk it again.
            if db
                .pages
                .latest_meta()
                .is_some_and(|meta| meta.txid == db.txid)
            {
                return result;
            }
        }
        Err(Error::Busy)
    }

    fn view(pages: Pages) -> Result<Db, Error> {
        let meta = pages
            .latest_meta()
            .ok_or(Error::Corrupt("no valid meta page"))?;
        let len = pages.len()?;
        if len > MAX_FILE {
            return Err(Error::Refused(format!("it grew beyond {MAX_FILE} bytes")));
        }
        Ok(Db {
            page_size: meta.page_size,
            root: meta.root,
            in_use: meta.pages,
            len,
            txid: meta.txid,
            pages,
        })
    }

    /// A view of a file's contents already in memory.
    #[cfg(test)]
    pub(crate) fn parse(data: Vec<u8>) -> Result<Db, Error> {
        Db::view(Pages::Memory(data))
    }

    /// The top-level bucket, whose entries are the file's buckets.
    pub(crate) fn root(&self) -> Bucket<'_> {
        Bucket {
            db: self,
            source: Source::Page(self.root),
        }
    }

    /// A page and its overflow pages, read from the file.
    fn page(&self, id: u64) -> Result<Vec<u8>, Error> {
        let out_of_range = || Error::Corrupt("a page number out of range");
        if id < 2 || id >= self.in_use {
            return Err(out_of_range());
        }
        let size = self.page_size as u64;
        let start = id.checked_mul(size).ok_or_else(out_of_range)?;
        // The page's length is in its header: read one page, then its
        // overflow pages if it has any (one read for nearly every page).
        let fits = |len: u64| start.checked_add(len).is_some_and(|end| end <= self.len);
        if !fits(size) {
            return Err(short_file());
        }
        let mut page = vec![0u8; self.page_size];
        self.pages.read_at(start, &mut page)?;
        let overflow = u64::from(u32_at(&page, 12).unwrap_or(0));
        if overflow > 0 {
            let len = (overflow + 1)
                .checked_mul(size)
                .filter(|len| fits(*len))
                .ok_or_else(short_file)?;
            page.resize(usize::try_from(len).map_err(|_| out_of_range())?, 0);
            self.pages
                .read_at(start + size, &mut page[self.page_size..])?;
        }
        Ok(page)
    }

    /// Gives `visit` each entry of the tree under `page`, in key order.
    /// `visited`: the pages of this tree read so far; one named twice is a
    /// loop that only a damaged file has.
    fn visit<'a>(
        &'a self,
        page: &[u8],
        visit: &mut Visitor<'_, 'a>,
        depth: usize,
        visited: &mut std::collections::HashSet<u64>,
    ) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(Error::Corrupt("a tree deeper than any real file"));
        }
        let bad = Error::Corrupt("an element out of its page");
        let flags = u16_at(page, 8).ok_or(Error::Corrupt("a short page"))?;
        let count = u16_at(page, 10).ok_or(Error::Corrupt("a short page"))? as usize;
        for n in 0..count {
            let at = PAGE_HEADER + n * ELEMENT;
            if flags & BRANCH_PAGE != 0 {
                let child = u64_at(page, at + 8).ok_or(Error::Corrupt("a short page"))?;
                if !visited.insert(child) {
                    return Err(Error::Corrupt("a page referred to twice"));
                }
                self.visit(&self.page(child)?, visit, depth + 1, visited)?;
            } else if flags & LEAF_PAGE != 0 {
                let (Some(kind), Some(pos), Some(key_len), Some(value_len)) = (
                    u32_at(page, at),
                    u32_at(page, at + 4),
                    u32_at(page, at + 8),
                    u32_at(page, at + 12),
                ) else {
                    return Err(bad);
                };
                let key_start = at + pos as usize;
                let value_start = key_start + key_len as usize;
                let key = page
                    .get(key_start..value_start)
                    .ok_or(Error::Corrupt("an element out of its page"))?;
                let value = page
                    .get(value_start..value_start + value_len as usize)
                    .ok_or(Error::Corrupt("an element out of its page"))?;
                let entry = if kind & BUCKET_LEAF != 0 {
                    let root = u64_at(value, 0).ok_or(Error::Corrupt("a short bucket"))?;
                    let source = if root == 0 {
                        // An inline bucket: its one leaf page follows the header.
                        Source::Inline(
                            value
                                .get(16..)
                                .ok_or(Error::Corrupt("a short inline bucket"))?
                                .to_vec(),
                            depth,
                        )
                    } else {
                        Source::Page(root)
                    };
                    Entry::Bucket(Bucket { db: self, source })
                } else {
                    Entry::Value(value.to_vec())
                };
                visit(key, entry)?;
            } else {
                return Err(Error::Corrupt("a page that is neither branch nor leaf"));
            }
        }
        Ok(())
    }
}

#[derive(Clone)]
enum Source {
    Page(u64),
    /// A bucket small enough to be stored in its parent's value (its leaf
    /// page, copied), and how deep.
    Inline(Vec<u8>, usize),
}

/// A bucket of the file: keys, each with a value or a nested bucket. Only
/// where it lies; its pages are read by [`Bucket::entries`].
#[derive(Clone)]
pub(crate) struct Bucket<'a> {
    db: &'a Db,
    source: Source,
}

/// What [`Db::visit`] gives each key to.
type Visitor<'v, 'a> = dyn FnMut(&[u8], Entry<'a>) -> Result<(), Error> + 'v;

/// What a key holds.
pub(crate) enum Entry<'a> {
    Value(Vec<u8>),
    Bucket(Bucket<'a>),
}

/// A bucket's keys, read: each with its value or nested bucket, in key order.
pub(crate) struct Entries<'a>(Vec<(Vec<u8>, Entry<'a>)>);

impl<'a> Entries<'a> {
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Every key, in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.0.iter().map(|(key, _)| key.as_slice())
    }

    /// The plain values, by key (nested buckets are passed over).
    pub(crate) fn values(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.0.iter().filter_map(|(key, entry)| match entry {
            Entry::Value(value) => Some((key.as_slice(), value.as_slice())),
            Entry::Bucket(_) => None,
        })
    }

    /// The plain value at `key`, if there is one.
    pub(crate) fn value(&self, key: &[u8]) -> Option<&[u8]> {
        self.values().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The nested bucket at `key`, if there is one.
    pub(crate) fn bucket(&self, key: &[u8]) -> Option<&Bucket<'a>> {
        self.0.iter().find_map(|(k, entry)| match entry {
            Entry::Bucket(bucket) if k == key => Some(bucket),
            _ => None,
        })
    }

    /// The nested buckets, by key (values are passed over).
    pub(crate) fn buckets(self) -> impl Iterator<Item = (Vec<u8>, Bucket<'a>)> {
        self.0.into_iter().filter_map(|(key, entry)| match entry {
            Entry::Bucket(bucket) => Some((key, bucket)),
            Entry::Value(_) => None,
        })
    }
}

impl<'a> Bucket<'a> {
    /// Reads the bucket's pages a page at a time, giving `visit` every key
    /// in order: a bucket of 22,000 keys is never held whole.
    pub(crate) fn each(
        &self,
        mut visit: impl FnMut(&[u8], Entry<'a>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut visited = std::collections::HashSet::new();
        match &self.source {
            Source::Page(id) => {
                visited.insert(*id);
                self.db
                    .visit(&self.db.page(*id)?, &mut visit, 0, &mut visited)
            }
            Source::Inline(page, depth) => self.db.visit(page, &mut visit, depth + 1, &mut visited),
        }
    }

    /// Reads the bucket's pages: every key, in order.
    pub(crate) fn entries(&self) -> Result<Entries<'a>, Error> {
        let mut out = Vec::new();
        self.each(|key, entry| {
            out.push((key.to_vec(), entry));
            Ok(())
        })?;
        Ok(Entries(out))
    }

    /// Each nested bucket, by key, as [`Bucket::each`] reads them (values
    /// are passed over).
    pub(crate) fn each_bucket(
        &self,
        mut visit: impl FnMut(&[u8], Bucket<'a>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.each(|key, entry| match entry {
            Entry::Bucket(bucket) => visit(key, bucket),
            Entry::Value(_) => Ok(()),
        })
    }

    /// The nested buckets, by key (values are passed over).
    pub(crate) fn buckets(&self) -> Result<impl Iterator<Item = (Vec<u8>, Bucket<'a>)>, Error> {
        Ok(self.entries()?.buckets())
    }

    /// The nested bucket at `key`, if there is one.
    pub(crate) fn bucket(&self, key: &[u8]) -> Result<Option<Bucket<'a>>, Error> {
        Ok(self.entries()?.bucket(key).cloned())
    }

    /// The bucket at the end of `path`, one key per level.
    pub(crate) fn path(&self, path: &[&str]) -> Result<Option<Bucket<'a>>, Error> {
        let mut bucket = self.clone();
        for key in path {
            match bucket.bucket(key.as_bytes())? {
                Some(next) => bucket = next,
                None => return Ok(None),
            }
        }
        Ok(Some(bucket))
    }
}

/// A Go `binary.Uvarint`, as containerd stores numbers.
pub(crate) fn uvarint(bytes: &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (n, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * n);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // pages built by hand are small
pub(crate) mod tests {
    use super::*;

    /// Builds a small bbolt file the way bbolt lays one out: two meta pages, a
    /// freelist page, then the root bucket's leaf page; nested buckets inline,
    /// except those given as `paged`, which get a leaf page of their own.
    pub(crate) struct Builder {
        page_size: usize,
        pages: Vec<Vec<u8>>,
    }

    /// A tree to write: values and nested buckets.
    pub(crate) enum Node {
        Value(Vec<u8>),
        Bucket(Vec<(Vec<u8>, Node)>),
        /// A bucket stored on a page of its own.
        Paged(Vec<(Vec<u8>, Node)>),
        /// A bucket stored as a branch page over leaf pages of this many
        /// entries each.
        Branched(usize, Vec<(Vec<u8>, Node)>),
    }

    pub(crate) fn bucket(entries: Vec<(&str, Node)>) -> Node {
        Node::Bucket(
            entries
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }

    pub(crate) fn value(text: &str) -> Node {
        Node::Value(text.as_bytes().to_vec())
    }

    impl Builder {
        pub(crate) fn new() -> Builder {
            Builder {
                page_size: 4096,
                // Pages 0-2: metas and freelist, written at the end.
                pages: vec![Vec::new(), Vec::new(), Vec::new()],
            }
        }

        fn leaf(&mut self, entries: &[(Vec<u8>, Node)], id: u64) -> Vec<u8> {
            let mut page = Vec::new();
            page.extend_from_slice(&id.to_le_bytes());
            page.extend_from_slice(&LEAF_PAGE.to_le_bytes());
            page.extend_from_slice(&(entries.len() as u16).to_le_bytes());
            page.extend_from_slice(&0u32.to_le_bytes());
            let mut tail: Vec<u8> = Vec::new();
            let mut elements = Vec::new();
            for (n, (key, node)) in entries.iter().enumerate() {
                let (flags, value) = match node {
                    Node::Value(value) => (0u32, value.clone()),
                    Node::Bucket(children) => {
                        let mut value = vec![0u8; 16];
                        value.extend(self.leaf(children, 0));
                        (BUCKET_LEAF, value)
                    }
                    Node::Paged(children) => {
                        let id = self.pages.len() as u64;
                        self.pages.push(Vec::new());
                        let page = self.leaf(children, id);
                        self.pages[id as usize] = page;
                        let mut value = id.to_le_bytes().to_vec();
                        value.extend_from_slice(&0u64.to_le_bytes());
                        (BUCKET_LEAF, value)
                    }
                    Node::Branched(per_leaf, children) => {
                        let id = self.branch(children, *per_leaf);
                        let mut value = id.to_le_bytes().to_vec();
                        value.extend_from_slice(&0u64.to_le_bytes());
                        (BUCKET_LEAF, value)
                    }
                };
                let at = PAGE_HEADER + n * ELEMENT;
                let pos = PAGE_HEADER + entries.len() * ELEMENT + tail.len() - at;
                elements.extend_from_slice(&flags.to_le_bytes());
                elements.extend_from_slice(&(pos as u32).to_le_bytes());
                elements.extend_from_slice(&(key.len() as u32).to_le_bytes());
                elements.extend_from_slice(&(value.len() as u32).to_le_bytes());
                tail.extend_from_slice(key);
                tail.extend_from_slice(&value);
            }
            page.extend(elements);
            page.extend(tail);
            page
        }

        /// A branch page over leaf pages of `per_leaf` entries each: its id.
        fn branch(&mut self, entries: &[(Vec<u8>, Node)], per_leaf: usize) -> u64 {
            let mut children = Vec::new();
            for chunk in entries.chunks(per_leaf) {
                let id = self.pages.len() as u64;
                self.pages.push(Vec::new());
                let page = self.leaf(chunk, id);
                self.pages[id as usize] = page;
                children.push((chunk[0].0.clone(), id));
            }
            let id = self.pages.len() as u64;
            let mut page = Vec::new();
            page.extend_from_slice(&id.to_le_bytes());
            page.extend_from_slice(&BRANCH_PAGE.to_le_bytes());
            page.extend_from_slice(&(children.len() as u16).to_le_bytes());
            page.extend_from_slice(&0u32.to_le_bytes());
            let mut tail = Vec::new();
            let mut elements = Vec::new();
            for (n, (key, child)) in children.iter().enumerate() {
                let at = PAGE_HEADER + n * ELEMENT;
                let pos = PAGE_HEADER + children.len() * ELEMENT + tail.len() - at;
                elements.extend_from_slice(&(pos as u32).to_le_bytes());
                elements.extend_from_slice(&(key.len() as u32).to_le_bytes());
                elements.extend_from_slice(&child.to_le_bytes());
                tail.extend_from_slice(key);
            }
            page.extend(elements);
            page.extend(tail);
            self.pages.push(page);
            id
        }

        fn meta(&self, id: u64, root: u64, pages: u64, txid: u64) -> Vec<u8> {
            let mut page = Vec::new();
            page.extend_from_slice(&id.to_le_bytes());
            page.extend_from_slice(&META_PAGE.to_le_bytes());
            page.extend_from_slice(&0u16.to_le_bytes());
            page.extend_from_slice(&0u32.to_le_bytes());
            let mut meta = Vec::new();
            meta.extend_from_slice(&MAGIC.to_le_bytes());
            meta.extend_from_slice(&VERSION.to_le_bytes());
            meta.extend_from_slice(&(self.page_size as u32).to_le_bytes());
            meta.extend_from_slice(&0u32.to_le_bytes());
            meta.extend_from_slice(&root.to_le_bytes());
            meta.extend_from_slice(&0u64.to_le_bytes());
            meta.extend_from_slice(&2u64.to_le_bytes());
            meta.extend_from_slice(&pages.to_le_bytes());
            meta.extend_from_slice(&txid.to_le_bytes());
            let sum = fnv1a(&meta);
            meta.extend_from_slice(&sum.to_le_bytes());
            page.extend(meta);
            page
        }

        /// The file's bytes, with `root` as the top-level bucket's entries.
        pub(crate) fn build(mut self, root: Vec<(&str, Node)>) -> Vec<u8> {
            let entries: Vec<(Vec<u8>, Node)> = root
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect();
            let root_id = self.pages.len() as u64;
            self.pages.push(Vec::new());
            let page = self.leaf(&entries, root_id);
            self.pages[root_id as usize] = page;
            let count = self.pages.len() as u64;
            self.pages[0] = self.meta(0, root_id, count, 4);
            // The older meta page: another root, which must not be used.
            self.pages[1] = self.meta(1, 2, count, 3);
            let mut file = Vec::new();
            for page in &self.pages {
                assert!(page.len() <= self.page_size, "test page too large");
                let mut padded = page.clone();
                padded.resize(self.page_size, 0);
                file.extend(padded);
            }
            file
        }
    }

    #[test]
    fn reads_nested_inline_and_paged_buckets() {
        let file = Builder::new().build(vec![(
            "v1",
            Node::Paged(vec![
                (
                    b"moby".to_vec(),
                    bucket(vec![
                        ("images", bucket(vec![("a", value("1")), ("b", value("2"))])),
                        ("version", value("3")),
                    ]),
                ),
                (b"zz".to_vec(), value("last")),
            ]),
        )]);
        let db = Db::parse(file).unwrap();
        let images = db.root().path(&["v1", "moby", "images"]).unwrap().unwrap();
        let images = images.entries().unwrap();
        let values: Vec<(&[u8], &[u8])> = images.values().collect();
        assert_eq!(values, vec![(&b"a"[..], &b"1"[..]), (&b"b"[..], &b"2"[..])]);
        assert_eq!(images.value(b"b"), Some(&b"2"[..]));
        assert_eq!(images.value(b"c"), None);
        let v1 = db.root().bucket(b"v1").unwrap().unwrap();
        assert_eq!(v1.buckets().unwrap().count(), 1);
        let v1 = v1.entries().unwrap();
        assert_eq!(
            v1.values().collect::<Vec<_>>(),
            vec![(&b"zz"[..], &b"last"[..])]
        );
        assert!(v1.bucket(b"moby").is_some());
        assert!(v1.bucket(b"zz").is_none(), "a value is not a bucket");
        assert!(db.root().path(&["v1", "nope"]).unwrap().is_none());
    }

    #[test]
    fn reads_buckets_that_span_branch_and_leaf_pages() {
        let keys: Vec<String> = (0..50).map(|n| format!("sha256:{n:03}")).collect();
        let file = Builder::new().build(vec![(
            "v1",
            Node::Branched(
                7,
                keys.iter()
                    .map(|key| {
                        (
                            key.as_bytes().to_vec(),
                            bucket(vec![("size", value(&key[7..]))]),
                        )
                    })
                    .collect(),
            ),
        )]);
        let db = Db::parse(file.clone()).unwrap();
        let v1 = db.root().bucket(b"v1").unwrap().unwrap();
        let buckets: Vec<_> = v1.buckets().unwrap().collect();
        // A branch that names one leaf twice (a loop in a damaged file) is
        // refused, not followed.
        let branch = (0..file.len() / 4096)
            .find(|n| u16_at(&file, n * 4096 + 8) == Some(BRANCH_PAGE))
            .unwrap();
        let mut looped = file.clone();
        let first = u64_at(&looped, branch * 4096 + PAGE_HEADER + 8).unwrap();
        let second = branch * 4096 + PAGE_HEADER + ELEMENT + 8;
        looped[second..second + 8].copy_from_slice(&first.to_le_bytes());
        let db2 = Db::parse(looped).unwrap();
        let v1_looped = db2.root().bucket(b"v1").unwrap().unwrap();
        assert!(v1_looped.buckets().is_err());
        let read: Vec<String> = buckets
            .iter()
            .map(|(key, _)| String::from_utf8_lossy(key).into_owned())
            .collect();
        assert_eq!(read, keys);
        let last = buckets[49].1.entries().unwrap();
        assert_eq!(
            last.values().collect::<Vec<_>>(),
            vec![(&b"size"[..], &b"049"[..])]
        );
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let many = (0..30)
            .map(|n| (format!("k{n:02}").into_bytes(), value("v")))
            .collect();
        let file = Builder::new().build(vec![
            ("v1", bucket(vec![("k", value("v"))])),
            ("v2", Node::Branched(4, many)),
        ]);
        assert!(Db::parse(Vec::new()).is_err());
        assert!(Db::parse(vec![0xff; 9000]).is_err());
        // Any truncation or single flipped byte: read or refused, never a panic.
        for cut in (0..file.len()).step_by(97) {
            if let Ok(db) = Db::parse(file[..cut].to_vec()) {
                let _ = db
                    .root()
                    .path(&["v1"])
                    .map(|b| b.map(|b| b.entries().map(|e| e.len())));
            }
        }
        for at in (0..file.len()).step_by(13) {
            let mut bad = file.clone();
            bad[at] ^= 0x5a;
            if let Ok(db) = Db::parse(bad) {
                let _ = db
                    .root()
                    .path(&["v1"])
                    .map(|b| b.map(|b| b.entries().map(|e| e.len())));
            }
        }
    }

    /// A value larger than a page lies on a page with overflow pages, read
    /// whole (bbolt `page.overflow`).
    #[test]
    fn reads_a_page_with_overflow_pages() {
        let mut file = Builder::new().build(vec![(
            "v1",
            Node::Paged(vec![(b"big".to_vec(), value("small"))]),
        )]);
        // The paged bucket is the last page, 4: make it two pages long.
        assert_eq!(file.len(), 5 * 4096);
        file.truncate(4 * 4096);
        let big = vec![b'x'; 6000];
        let mut page = Vec::new();
        page.extend_from_slice(&4u64.to_le_bytes());
        page.extend_from_slice(&LEAF_PAGE.to_le_bytes());
        page.extend_from_slice(&1u16.to_le_bytes());
        page.extend_from_slice(&1u32.to_le_bytes());
        for field in [0u32, ELEMENT as u32, 3, big.len() as u32] {
            page.extend_from_slice(&field.to_le_bytes());
        }
        page.extend_from_slice(b"big");
        page.extend_from_slice(&big);
        page.resize(2 * 4096, 0);
        file.extend(page);
        // The newest meta page counts the extra page.
        let meta = &mut file[PAGE_HEADER..PAGE_HEADER + META_LEN];
        meta[40..48].copy_from_slice(&6u64.to_le_bytes());
        let sum = fnv1a(&meta[..56]);
        meta[56..64].copy_from_slice(&sum.to_le_bytes());

        let read = |db: &Db| -> Result<Option<usize>, Error> {
            let v1 = db.root().bucket(b"v1")?.ok_or(Error::Corrupt("no v1"))?;
            Ok(v1.entries()?.value(b"big").map(<[u8]>::len))
        };
        assert_eq!(read(&Db::parse(file.clone()).unwrap()).unwrap(), Some(6000));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        std::fs::write(&path, &file).unwrap();
        assert_eq!(Db::read(&path, read).unwrap(), Some(6000));
        // Cut inside the overflow page: damaged, not a short value.
        std::fs::write(&path, &file[..file.len() - 100]).unwrap();
        assert!(matches!(Db::read(&path, read), Err(Error::Corrupt(_))));
    }

    /// Writes a commit into the file's older meta page: the same tree, the
    /// next transaction ID.
    fn commit(path: &Path) {
        let mut file = std::fs::read(path).unwrap();
        let newest = latest_meta(&file).unwrap();
        let (from, to) = if meta_of(&file).is_some_and(|m| m.txid == newest.txid) {
            (0, 4096)
        } else {
            (4096, 0)
        };
        let mut page = file[from..from + PAGE_HEADER + META_LEN].to_vec();
        page[..8].copy_from_slice(&((to / 4096) as u64).to_le_bytes());
        let meta = &mut page[PAGE_HEADER..];
        meta[48..56].copy_from_slice(&(newest.txid + 1).to_le_bytes());
        let sum = fnv1a(&meta[..56]);
        meta[56..64].copy_from_slice(&sum.to_le_bytes());
        file[to..to + page.len()].copy_from_slice(&page);
        std::fs::write(path, file).unwrap();
    }

    fn latest_meta(file: &[u8]) -> Option<Meta> {
        Pages::Memory(file.to_vec()).latest_meta()
    }

    /// The walk is kept only when no transaction committed while it went on;
    /// otherwise it runs again, and a file that never holds still is an error.
    #[test]
    fn a_walk_is_kept_only_when_no_commit_came_during_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        let file = Builder::new().build(vec![(
            "v1",
            Node::Branched(
                3,
                (0..10)
                    .map(|n| (format!("k{n}").into_bytes(), value("v")))
                    .collect(),
            ),
        )]);
        std::fs::write(&path, &file).unwrap();
        let keys = |db: &Db| -> Result<usize, Error> {
            let v1 = db.root().bucket(b"v1")?.ok_or(Error::Corrupt("no v1"))?;
            Ok(v1.entries()?.len())
        };
        assert_eq!(Db::read(&path, keys).unwrap(), 10, "read from the file");

        let mut walks = 0;
        let read = Db::read(&path, |db| {
            walks += 1;
            if walks == 1 {
                commit(&path);
            }
            keys(db)
        });
        assert_eq!(
            (read.unwrap(), walks),
            (10, 2),
            "walked again after a commit"
        );

        let mut walks = 0;
        let read = Db::read(&path, |db| {
            walks += 1;
            commit(&path);
            keys(db)
        });
        assert!(matches!(read, Err(Error::Busy)), "{read:?}");
        assert_eq!(walks, TRIES);

        // An error met while a commit came is not kept either: the next walk
        // decides.
        let mut walks = 0;
        let read = Db::read(&path, |db| {
            walks += 1;
            if walks == 1 {
                commit(&path);
                return Err(Error::Corrupt("torn"));
            }
            keys(db)
        });
        assert_eq!(read.unwrap(), 10);
    }

    #[test]
    fn uvarints_as_go_writes_them() {
        assert_eq!(uvarint(&[0x05]), Some(5));
        assert_eq!(uvarint(&[0x96, 0x01]), Some(150));
        assert_eq!(uvarint(&[0x80]), None);
        assert_eq!(uvarint(&[]), None);
    }

    /// Safety round 2, finding 8 and 10: a FIFO at meta.db blocked the run;
    /// an 8 GB sparse meta.db was read whole.
    #[test]
    fn a_fifo_or_a_huge_file_is_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("meta.db");
        crate::files::make_fifo(&fifo);
        let never = |_: &Db| -> Result<(), Error> { panic!("read") };
        assert!(matches!(Db::read(&fifo, never), Err(Error::Refused(_))));
        let sparse = dir.path().join("big.db");
        std::fs::File::create(&sparse)
            .unwrap()
            .set_len(MAX_FILE + 1)
            .unwrap();
        let started = std::time::Instant::now();
        assert!(matches!(Db::read(&sparse, never), Err(Error::Refused(_))));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 1000,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Any bytes written over a well-formed file, anywhere: read or
        /// refused, never a panic, every bucket walk bounded (safety round 2,
        /// finding 10).
        #[test]
        fn arbitrary_damage_is_read_or_refused(
            edits in proptest::collection::vec((0usize..20_000, proptest::num::u8::ANY), 1..24),
            cut in proptest::option::of(0usize..20_000),
        ) {
            let many = (0..30)
                .map(|n| (format!("k{n:02}").into_bytes(), value("v")))
                .collect();
            let mut file = Builder::new().build(vec![
                ("v1", bucket(vec![("k", value("v"))])),
                ("v2", Node::Branched(4, many)),
            ]);
            for (at, byte) in edits {
                let at = at % file.len();
                file[at] = byte;
            }
            if let Some(cut) = cut {
                file.truncate(cut % (file.len() + 1));
            }
            if let Ok(db) = Db::parse(file) {
                for name in ["v1", "v2"] {
                    if let Ok(Some(bucket)) = db.root().path(&[name]) {
                        let _ = bucket.entries().map(|entries| entries.len());
                    }
                }
            }
        }
    }
}
