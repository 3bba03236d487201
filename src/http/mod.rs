//! axum glue: the path table, the router, error rendering and response headers.

pub mod client_ip;
pub mod cors;
pub mod error;
pub mod headers;
pub mod page_errors;
pub mod paths;
pub mod router;
pub mod server;
