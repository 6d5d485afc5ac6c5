//! Reading keys from the terminal, shared by both prompts.

use dialoguer::console::{Key, Term};

/// The next key; `None` for Ctrl-C (console raises SIGINT and reports it as
/// an interrupted read) or the end of input: both give up.
pub(crate) fn read_key(term: &Term) -> std::io::Result<Option<Key>> {
    match term.read_key() {
        Ok(key) => Ok(Some(key)),
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}
