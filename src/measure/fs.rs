//! The filesystem's own figures for the one holding a path: its size and the
//! bytes free on it, as `df` shows them.

use std::path::Path;

/// Bytes available to unprivileged users on the filesystem holding `path`.
pub(crate) fn free_space(path: &Path) -> Option<u64> {
    filesystem_space(path).map(|(_, available)| available)
}

/// The size of the filesystem holding `path`, and the bytes available on it.
pub(crate) fn filesystem_space(path: &Path) -> Option<(u64, u64)> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some((
        stat.f_blocks.saturating_mul(stat.f_frsize),
        stat.f_bavail.saturating_mul(stat.f_frsize),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_filesystem_has_a_size_and_some_free_space() {
        let (total, available) = filesystem_space(Path::new("/")).unwrap();
        assert!(total > 0 && available <= total);
        assert_eq!(free_space(Path::new("/no/such/path")), None);
    }
}
