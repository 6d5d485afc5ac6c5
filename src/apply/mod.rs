//! Everything between a shown plan and the report: the prompt, the host lock,
//! the deletions with their re-checks ([`execute`]), progress and the audit
//! log, and the outcome ([`report`]).

pub(crate) mod execute;
pub(crate) mod lock;
pub(crate) mod logs;
pub(crate) mod progress;
pub(crate) mod prompt;
pub(crate) mod report;
