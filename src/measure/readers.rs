//! Reading many small files of the engine's by several threads at once.

/// How many threads read the engine's small files at once: with the page
/// cache dropped each file waits on the disk, and several threads keep several
/// reads in flight, as the walk's walkers do (measured at 1,000 containers,
/// page cache dropped: the layer store's cross-references took 0.44 s read one
/// at a time).
const READERS: usize = 8;

/// `items` cut into up to [`READERS`] chunks, each given to `read` on a thread
/// of its own (fewer than two per reader: one chunk, read here). Each chunk
/// comes back with what `read` gave for it, in order; `None` for a reader that
/// panicked.
pub(crate) fn in_chunks<T: Sync, U: Send>(
    items: &[T],
    read: impl Fn(&[T]) -> U + Sync,
) -> Vec<(&[T], Option<U>)> {
    if items.len() < 2 * READERS {
        return vec![(items, Some(read(items)))];
    }
    let read = &read;
    std::thread::scope(|scope| {
        let readers: Vec<_> = items
            .chunks(items.len().div_ceil(READERS))
            .map(|chunk| (chunk, scope.spawn(move || read(chunk))))
            .collect();
        readers
            .into_iter()
            .map(|(chunk, reader)| (chunk, reader.join().ok()))
            .collect()
    })
}
