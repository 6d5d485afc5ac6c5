//! The command line: the clap definition ([`args`]), validated once into
//! [`settings::Settings`] together with the [`config`] file; the docker CLI
//! plugin protocol ([`plugin`]); the man page and completions generated from
//! the definition ([`man`]).

pub(crate) mod args;
pub(crate) mod config;
pub(crate) mod man;
pub(crate) mod plugin;
pub(crate) mod settings;
