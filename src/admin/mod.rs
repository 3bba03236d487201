//! Admin operations behind the CLI (and, later, the admin API).

pub mod apply;
pub mod clients;
pub mod users;
