//! What `df` and `layers` show, as data: built from the inventory, the plan
//! and the measurement, rendered by [`crate::render`].

pub(crate) mod df;
pub(crate) mod layers;
pub(crate) mod sources;
