//! The only place that talks to Docker: the [`Engine`] trait the rest of the
//! program sees, and its implementation over bollard ([`DockerEngine`]).
//! Nothing here decides what to remove; it only reads and, later, deletes.

mod api;
pub(crate) mod context;
mod docker;
mod host;
mod raw;
mod system_df;
pub(crate) mod transport;

pub(crate) use api::{
    DiskUsage, Engine, ImageLayers, Refused, Removal, UseEvent, is_refusal, parse_api_version,
};
pub(crate) use context::Endpoint;
pub(crate) use docker::DockerEngine;
pub(crate) use host::Host;
pub(crate) use transport::Tls;
