//! Asking the person: the y/N question ([`confirm`]) and the item checklist
//! ([`checklist`]), both reading keys from the terminal ([`terminal`]).

pub(crate) mod checklist;
pub(crate) mod confirm;
mod terminal;
