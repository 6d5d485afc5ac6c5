//! What `df`, `layers` and a fleet run show, as data: built from the inventory, the plan
//! and the measurement, rendered by [`crate::render`].

pub(crate) mod df;
pub(crate) mod fleet;
pub(crate) mod layers;
pub(crate) mod sources;
