//! The maintenance policy: when each image was last used (from every source
//! there is, remembered between runs in a small state file), which the
//! target modes and `watch` read to take the least recently used first.

pub(crate) mod last_use;
pub(crate) mod state;
